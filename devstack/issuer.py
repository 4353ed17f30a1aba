"""A stand-in for the county's OIDC issuer in local runs and tests: signing keys made at start-up
(RSA for RS256, P-256 for ES256), their public halves served as a JWKS on loopback, and tokens
signed with them. The services verify these exactly as they would an issuer's in production
(`TOWNFLOW_JWT_JWKS_URL`, `TOWNFLOW_JWT_ISSUER`, one audience per service)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
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

    def token(self, sub: str, roles: Iterable[str], audience: str | list[str], ttl_seconds: int = 3600,
              algorithm: str = "RS256", **claims: Any) -> str:
        """Signed with the current RSA key (RS256) or the EC key (ES256), for `audience`."""
        kid = self.signing_kid if algorithm == "RS256" else self.ec_kid
        return issue_token(self.keys[kid], sub, roles, ttl_seconds, audience=audience, issuer=self.url,
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

    def forgeries(self, audience: str) -> dict[str, str]:
        """Every token a service expecting `audience` from this issuer must refuse (401), by what
        is wrong with it: the attacks and mistakes of SPEC §6.1, for the tests."""
        now = int(time.time())
        kid = self.signing_kid
        key = self.keys[kid]
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        admin = {"sub": "s000", "roles": ["admin"], "exp": now + 300, "iss": self.url, "aud": audience}
        public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)

        def signed(claims: dict[str, Any], with_key: Any = key, key_id: str = kid) -> str:
            return jwt.encode(claims, with_key, algorithm="RS256", headers={"kid": key_id})

        return {
            "alg none": _hand_made({"alg": "none", "typ": "JWT"}, admin),
            # HS256 "signed" with the issuer's public key (anyone can fetch it) as the secret
            "algorithm confusion": _hand_made({"alg": "HS256", "typ": "JWT", "kid": kid}, admin,
                                              lambda data: hmac.new(public_pem, data, hashlib.sha256).digest()),
            "a key not in the JWKS": signed(admin, stranger),
            "an unknown key id": signed(admin, stranger, "nobody"),
            "another service's audience": signed(admin | {"aud": "townflow-elsewhere"}),
            "no audience": signed({k: v for k, v in admin.items() if k != "aud"}),
            "another issuer": signed(admin | {"iss": "https://elsewhere.example"}),
            "no expiry": signed({k: v for k, v in admin.items() if k != "exp"}),
            "expired": signed(admin | {"exp": now - 10}),
            "roles not a list": signed(admin | {"roles": "admin"}),
            "HS256 with a guessed secret": issue_token("secret" * 6, "s000", ["admin"], audience=audience,
                                                       issuer=self.url),
            "garbage": "garbage",
        }


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hand_made(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A token built by hand, as an attacker would: PyJWT itself refuses to make these."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode())) if sign else ''}"
