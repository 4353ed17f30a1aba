"""A stand-in for the county's OIDC issuer in local runs and tests: signing keys made at start-up
(RSA for RS256, P-256 for ES256), their public halves served as a JWKS on loopback, and tokens
signed with them. The services verify these exactly as they would an issuer's in production
(`TOWNFLOW_JWT_JWKS_URL`, `TOWNFLOW_JWT_ISSUER`, one audience per service)."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from townflow_shared.auth import issue_token

JWKS_PATH = "/.well-known/jwks.json"


def audience_of(service: str) -> str:
    """Each service accepts only tokens meant for it."""
    return f"townflow-{service}"


def _public_jwk(kid: str, private: Any) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
    return json.loads(algorithm.to_jwk(private.public_key())) | {"kid": kid, "use": "sig"}


class LocalIssuer:
    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.signing_kid = self.rotate()
        self.ec_kid = self._add(ec.generate_private_key(ec.SECP256R1()))
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the issuer first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    def _add(self, private: Any) -> str:
        kid = secrets.token_hex(4)
        self.keys[kid] = private
        return kid

    def rotate(self) -> str:
        """A new RSA key signs from now on; the old ones stay published (tokens already out)."""
        self.signing_kid = self._add(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return self.signing_kid

    def jwks(self) -> dict[str, Any]:
        return {"keys": [_public_jwk(kid, key) for kid, key in self.keys.items()]}

    def token(self, sub: str, roles: Iterable[str], service: str, ttl_seconds: int = 3600,
              algorithm: str = "RS256", **claims: Any) -> str:
        kid = self.signing_kid if algorithm == "RS256" else self.ec_kid
        return issue_token(self.keys[kid], sub, roles, ttl_seconds, audience=audience_of(service), issuer=self.url,
                           algorithm=algorithm, key_id=kid, **claims)

    def signing_key_pem(self) -> str:
        """For `python -m devstack token` to sign with, kept in the stack's private state file."""
        return self.keys[self.signing_kid].private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()

    def start(self) -> LocalIssuer:
        issuer = self

        class Serve(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path == JWKS_PATH
                body = json.dumps(issuer.jwks() if found else {"error": "not found"}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # quiet: a request per new key id
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Serve)
        threading.Thread(target=self._server.serve_forever, name="local-issuer", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
