"""The SMS gateway adapter (issue #31 item 3): one signed HTTPS call per message, as the Chinese
providers take them (Alibaba Cloud SMS's SendSms: a sign name, a template code and its variables as
JSON; Tencent Cloud SMS has the same shape). The request is signed as Alibaba Cloud's V3 signature
(ACS3-HMAC-SHA256): HMAC-SHA256 with the access key secret over a canonical request that covers the
method, the path, the query, the signed headers (a timestamp and a nonce among them) and the body's
SHA-256. docs/notify.md "Citizens' SMS" has the exact form.

httpx, which intake has already, and no vendor SDK: one POST with a signature is all a message
takes; an SDK would pin a vendor (the provider is a setting: a province's 统一短信平台 or a county's
own gateway speak this shape too) and bring its own HTTP stack and retries, where the sender loop's
leases and back-off are what decide when a message is tried again.

The citizen's phone is in the request's body and nowhere else: not in the URL, not in an
exception's text, not in a log line. What the gateway answers is kept only as its code and message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

ALGORITHM = "ACS3-HMAC-SHA256"
ACTION = "SendSms"
SIGNED_HEADERS = ("content-type", "host", "x-acs-action", "x-acs-content-sha256", "x-acs-date",
                  "x-acs-signature-nonce")
# Codes a provider answers that no retry can change (the number itself refused): the message is
# failed for good, logged with the code. Every other refusal (a signature, a template, a limit, a
# 5xx) is the deployment's or the provider's to fix, and the message waits and is tried again.
FINAL_CODES = frozenset({"isv.MOBILE_NUMBER_ILLEGAL", "isv.BLACK_KEY_CONTROL_LIMIT", "isv.MOBILE_COUNT_OVER_LIMIT"})


@dataclass(frozen=True)
class Gateway:
    url: str
    access_key_id: str
    access_key_secret: str
    sign_name: str


@dataclass(frozen=True)
class Sent:
    biz_id: str  # the provider's id of the message (BizId)


@dataclass(frozen=True)
class Refused:
    code: str
    message: str
    final: bool  # the number is refused: no retry will do


class Unavailable(Exception):
    """The gateway did not answer, or answered a 5xx: the message waits and is tried again."""


def canonical_request(method: str, url: str, headers: dict[str, str], body_sha256: str) -> str:
    """Alibaba Cloud V3's canonical request: method, path, sorted query, the signed headers
    (lower-case name:trimmed value, one a line), their names, the body's hex SHA-256."""
    parts = urllib.parse.urlsplit(url)
    query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                     for k, v in sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))
    lines = "".join(f"{name}:{headers[name].strip()}\n" for name in SIGNED_HEADERS)
    return "\n".join([method, parts.path or "/", query, lines, ";".join(SIGNED_HEADERS), body_sha256])


def signature(secret: str, canonical: str) -> str:
    """hex(HMAC-SHA256(secret, "ACS3-HMAC-SHA256\\n" + hex(SHA-256(canonical request))))."""
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def signed_request(gateway: Gateway, phone: str, template: str, params: dict[str, str], out_id: str,
                   *, now: float | None = None, nonce: str | None = None) -> tuple[dict[str, str], bytes]:
    """The headers and body of one SendSms call, signed (a new nonce and the wall clock's time each
    call: a retry is a new request, as the provider refuses a nonce it has seen)."""
    body = json.dumps({"PhoneNumbers": phone, "SignName": gateway.sign_name, "TemplateCode": template,
                       "TemplateParam": json.dumps(params, ensure_ascii=False, sort_keys=True), "OutId": out_id},
                      ensure_ascii=False).encode()
    body_sha256 = hashlib.sha256(body).hexdigest()
    headers = {
        "content-type": "application/json; charset=utf-8",
        "host": urllib.parse.urlsplit(gateway.url).netloc,
        "x-acs-action": ACTION,
        "x-acs-content-sha256": body_sha256,
        "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now)),
        "x-acs-signature-nonce": nonce or secrets.token_hex(16),
    }
    sign = signature(gateway.access_key_secret, canonical_request("POST", gateway.url, headers, body_sha256))
    headers["authorization"] = (f"{ALGORITHM} Credential={gateway.access_key_id},"
                                f"SignedHeaders={';'.join(SIGNED_HEADERS)},Signature={sign}")
    return headers, body


async def send(client: httpx.AsyncClient, gateway: Gateway, phone: str, template: str, params: dict[str, str],
               out_id: str) -> Sent | Refused:
    """One message: Sent (the provider's `Code` OK), Refused (its code and message), or raises
    Unavailable (no answer, a 5xx, an answer that is not the provider's JSON)."""
    headers, body = signed_request(gateway, phone, template, params, out_id)
    try:
        response = await client.post(gateway.url, content=body, headers=headers)
    except httpx.HTTPError as exc:  # its text names the URL at most, never the body
        raise Unavailable(f"{type(exc).__name__}: {exc}") from None
    if response.status_code >= 500:
        raise Unavailable(f"HTTP {response.status_code}")
    try:
        answer: Any = response.json()
    except ValueError:
        raise Unavailable(f"HTTP {response.status_code}, not the gateway's JSON") from None
    code = str(answer.get("Code", "")) if isinstance(answer, dict) else ""
    if not code:
        raise Unavailable(f"HTTP {response.status_code}, no Code in the answer")
    if code == "OK" and response.status_code == 200:
        return Sent(str(answer.get("BizId", "")))
    return Refused(code, str(answer.get("Message", ""))[:200], code in FINAL_CODES)
