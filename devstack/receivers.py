"""Local stand-ins for the places notify sends to, run as their own process by the stack tests
and `make up`: no vendor server can be reached from a county's intranet (政务外网) or from these
machines, and no message may leave the machine.

- `/robot/send?access_token=…&timestamp=…&sign=…`: a DingTalk / 浙政钉 custom robot. It checks the
  request exactly as DingTalk documents 加签: the timestamp within an hour of now, and `sign` equal
  to base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")); the body a `markdown` message
  with a title and a text. It answers as DingTalk does (HTTP 200, `errcode` 0, or 310000 for a sign
  that does not match, 130101 past 20 messages a minute).
- `/cgi-bin/webhook/send?key=…`: a WeCom group robot: a known key, `{"msgtype": "markdown",
  "markdown": {"content": …}}` of at most 4096 bytes; `errcode` 0, 93000 for an unknown key, 45009
  past 20 messages a minute.
- `/webhook/<name>`: a generic signed webhook: `X-Townflow-Signature: sha256=<hex HMAC-SHA256 of
  the body>`; 204, or 401.
- `/sms/send`: an SMS provider's gateway, for intake's citizens' SMS (issue #31 item 3), checking a
  request as Alibaba Cloud's SendSms does: the V3 signature (ACS3-HMAC-SHA256 over the canonical
  request, recomputed here independently of intake's adapter) by a known access key id, its time
  within 15 minutes, its nonce never seen before, the body's SHA-256; then the sign name, the
  template code, every variable of the template (a reply within 35 characters) and a mainland
  mobile number. It answers with the provider's codes (`OK` and a BizId, `SignatureDoesNotMatch`,
  `isv.SMS_TEMPLATE_ILLEGAL`, `isv.TEMPLATE_MISSING_PARAMETERS`, `isv.MOBILE_NUMBER_ILLEGAL`, …).
- SMTP on its own port: aiosmtpd, a real SMTP server (aio-libs), keeping each mail.

`GET /received` answers what arrived (and what was refused, with why) as JSON; the state lives in
this process: a test stops it to make every receiver "down" and starts it again on the same ports.
With `--journal FILE` every message accepted is also appended to FILE (a JSON line, written before
the answer), so what arrived is known across such a stop (`make chaos`, bench/notify_chaos.py).

    python -m devstack.receivers --http-port 8025 --smtp-port 8026 --dingtalk TOKEN=SECRET --wecom KEY \
        --webhook NAME=SECRET --sms KEY_ID=SECRET --sms-sign 青禾镇人民政府
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import re
import signal
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .processes import Child, free_port, wait_for_port

if TYPE_CHECKING:  # the server's packages are imported by the process that serves, not by the stack
    from aiohttp import web
    from aiosmtpd.smtp import SMTP, Envelope, Session

PER_MINUTE = 20  # both vendors' documented limit for one robot
HOUR_MS = 3600 * 1000
# The SMS gateway's approved templates (a provider's console holds them): code -> text, whose
# ${name}s are the variables a request must give. Intake is started with these codes.
SMS_TEMPLATES = {
    "SMS_TF_FILED": "您的诉求已受理，编号${ticket}，查询码${code}，办理进度：${url}",
    "SMS_TF_COMPLETED": "您的诉求${ticket}已办结：${reply}",
    "SMS_TF_CALLBACK": "您的诉求${ticket}已办结，请对办理结果作出评价：${url}",
}
SMS_TEMPLATE_OF = {"filed": "SMS_TF_FILED", "completed": "SMS_TF_COMPLETED", "callback": "SMS_TF_CALLBACK"}
SMS_VARIABLE_MAX = {"reply": 35}  # a variable's length limit (a link's is the provider's own)
SMS_WINDOW_SECONDS = 15 * 60
_VARIABLE = re.compile(r"\$\{(\w+)\}")
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_AUTHORIZATION = re.compile(r"^ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})$")


class Received:
    def __init__(self, dingtalk: dict[str, str], wecom: set[str], webhooks: dict[str, str],
                 sms_keys: dict[str, str] | None = None, sms_signs: set[str] | None = None,
                 journal: Path | None = None) -> None:
        self.dingtalk, self.wecom, self.webhooks = dingtalk, wecom, webhooks
        self.sms_keys, self.sms_signs = sms_keys or {}, sms_signs or set()
        self.sms_nonces: set[str] = set()
        self.messages: dict[str, list[dict[str, Any]]] = {"dingtalk": [], "wecom": [], "webhook": [], "email": [],
                                                          "sms": []}
        self.refused: list[dict[str, Any]] = []
        self.minute: dict[str, deque[float]] = {}
        self.journal = journal.open("a", encoding="utf-8") if journal is not None else None

    def accept(self, kind: str, message: dict[str, Any]) -> None:
        """A message taken: kept, and journalled (flushed) before the sender hears it was taken."""
        self.messages[kind].append(message)
        if self.journal is not None:
            self.journal.write(json.dumps({"kind": kind, **message}, ensure_ascii=False) + "\n")
            self.journal.flush()

    def within_limit(self, robot: str) -> bool:
        """One more message to `robot` in its sliding minute, or False past the limit."""
        now = time.monotonic()
        recent = self.minute.setdefault(robot, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= PER_MINUTE:
            return False
        recent.append(now)
        return True

    def refuse(self, where: str, why: str, errcode: int) -> web.Response:
        from aiohttp import web

        self.refused.append({"where": where, "why": why, "errcode": errcode})
        return web.json_response({"errcode": errcode, "errmsg": why})


def dingtalk_expected_sign(secret: str, timestamp: str) -> str:
    """DingTalk's server side of 加签: the sign it computes to compare (before URL encoding)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), digestmod=hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def sms_expected_signature(secret: str, method: str, path: str, query: Mapping[str, str],
                           headers: Mapping[str, str], signed: Sequence[str], body: bytes) -> str:
    """The provider's side of the V3 signature (ACS3-HMAC-SHA256): the canonical request (method,
    path, the query sorted and percent-encoded, each signed header as `name:value` on its line, the
    signed headers' names, the body's hex SHA-256), its hex SHA-256 after the algorithm's name,
    signed with HMAC-SHA256 by the access key secret, in hex."""
    def encode(text: str) -> str:
        return urllib.parse.quote(text, safe="-_.~")

    canonical = "\n".join([
        method, path or "/", "&".join(f"{encode(k)}={encode(v)}" for k, v in sorted(query.items())),
        "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed), ";".join(signed),
        hashlib.sha256(body).hexdigest()])
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def app_of(received: Received) -> web.Application:
    from aiohttp import web

    def sms_refused(code: str, message: str, status: int = 200) -> web.Response:
        received.refused.append({"where": "sms", "why": message, "code": code})
        return web.json_response({"Code": code, "Message": message, "RequestId": str(uuid.uuid4())}, status=status)

    async def sms(request: web.Request) -> web.Response:
        body = await request.read()
        found = _AUTHORIZATION.match(request.headers.get("Authorization", ""))
        if found is None:
            return sms_refused("IncompleteSignature", "the Authorization header is not ACS3-HMAC-SHA256", 400)
        key_id, signed, given = found.group(1), found.group(2).split(";"), found.group(3)
        secret = received.sms_keys.get(key_id)
        if secret is None:
            return sms_refused("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        headers = {name.lower(): value for name, value in request.headers.items()}
        if not {"host", "x-acs-action", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"} <= set(signed):
            return sms_refused("IncompleteSignature", "the host, action, date, nonce and body hash must be signed", 400)
        try:
            stamped = datetime.strptime(headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return sms_refused("InvalidTimeStamp.Format", "x-acs-date is not YYYY-MM-DDThh:mm:ssZ", 400)
        if abs(time.time() - stamped.timestamp()) > SMS_WINDOW_SECONDS:
            return sms_refused("InvalidTimeStamp.Expired", "the request's time is more than 15 minutes off", 400)
        if headers.get("x-acs-content-sha256") != hashlib.sha256(body).hexdigest():
            return sms_refused("SignatureDoesNotMatch", "x-acs-content-sha256 is not the body's", 400)
        expected = sms_expected_signature(secret, request.method, request.path, request.query, headers, signed, body)
        if not hmac.compare_digest(given, expected):
            return sms_refused("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.", 403)
        nonce = headers.get("x-acs-signature-nonce", "")
        if not nonce or nonce in received.sms_nonces:
            return sms_refused("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
        received.sms_nonces.add(nonce)
        if headers.get("x-acs-action") != "SendSms":
            return sms_refused("InvalidAction.NotFound", "Specified api is not found", 404)
        try:
            sent = json.loads(body)
            params = json.loads(sent.get("TemplateParam") or "{}")
        except (ValueError, AttributeError):
            return sms_refused("isv.INVALID_JSON_PARAM", "the body or TemplateParam is not JSON")
        if sent.get("SignName") not in received.sms_signs:
            return sms_refused("isv.SMS_SIGNATURE_ILLEGAL", "the sign name is not approved")
        template = SMS_TEMPLATES.get(str(sent.get("TemplateCode")))
        if template is None:
            return sms_refused("isv.SMS_TEMPLATE_ILLEGAL", "the template code is not approved")
        missing = [name for name in _VARIABLE.findall(template) if not isinstance(params.get(name), str) or not params[name]]
        if missing:
            return sms_refused("isv.TEMPLATE_MISSING_PARAMETERS", f"missing: {', '.join(missing)}")
        if any(len(params[name]) > limit for name, limit in SMS_VARIABLE_MAX.items() if name in params):
            return sms_refused("isv.PARAM_LENGTH_LIMIT", "a variable is longer than its limit")
        phone = str(sent.get("PhoneNumbers", ""))
        if not _MOBILE.fullmatch(phone):
            return sms_refused("isv.MOBILE_NUMBER_ILLEGAL", "the number is not a mainland mobile number")
        biz_id = uuid.uuid4().hex
        received.accept("sms", {
            "phone": phone, "sign_name": sent["SignName"], "template": sent["TemplateCode"], "params": params,
            "text": f"【{sent['SignName']}】" + _VARIABLE.sub(lambda m: params[m.group(1)], template),
            "out_id": sent.get("OutId"), "biz_id": biz_id, "at": time.time()})
        return web.json_response({"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": str(uuid.uuid4())})

    async def dingtalk(request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        secret = received.dingtalk.get(token)
        if secret is None:
            return received.refuse(f"dingtalk:{token}", "token is not exist", 300005)
        timestamp, sign = request.query.get("timestamp", ""), request.query.get("sign", "")
        if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > HOUR_MS:
            return received.refuse(f"dingtalk:{token}", "timestamp is out of range", 310000)
        # aiohttp has decoded the query once: `sign` is the base64 text, as DingTalk compares it.
        if not hmac.compare_digest(sign, dingtalk_expected_sign(secret, timestamp)):
            return received.refuse(f"dingtalk:{token}", "sign not match", 310000)
        body = await request.json()
        markdown = body.get("markdown") if isinstance(body, dict) else None
        if (body.get("msgtype") != "markdown" or not isinstance(markdown, dict)
                or not markdown.get("title") or not markdown.get("text")):
            return received.refuse(f"dingtalk:{token}", "markdown message needs title and text", 400105)
        if not received.within_limit(f"dingtalk:{token}"):
            return received.refuse(f"dingtalk:{token}", "send too fast, exceed 20 times per minute", 130101)
        received.accept("dingtalk", {"access_token": token, "title": markdown["title"], "text": markdown["text"],
                                     "at": time.time()})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def wecom(request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in received.wecom:
            return received.refuse(f"wecom:{key}", "invalid webhook url", 93000)
        body = await request.json()
        markdown = body.get("markdown") if isinstance(body, dict) else None
        content = markdown.get("content") if isinstance(markdown, dict) else None
        if body.get("msgtype") != "markdown" or not isinstance(content, str) or not content:
            return received.refuse(f"wecom:{key}", "markdown.content missing", 44004)
        if len(content.encode()) > 4096:
            return received.refuse(f"wecom:{key}", "content exceed max length", 40058)
        if not received.within_limit(f"wecom:{key}"):
            return received.refuse(f"wecom:{key}", "api freq out of limit", 45009)
        received.accept("wecom", {"key": key, "content": content, "at": time.time()})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def webhook(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        secret = received.webhooks.get(name)
        body = await request.read()
        if secret is None:
            received.refused.append({"where": f"webhook:{name}", "why": "unknown webhook"})
            return web.Response(status=404)
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Townflow-Signature", ""), expected):
            received.refused.append({"where": f"webhook:{name}", "why": "bad signature"})
            return web.Response(status=401)
        received.accept("webhook", {"name": name, **json.loads(body), "at": time.time()})
        return web.Response(status=204)

    async def everything(_: web.Request) -> web.Response:
        return web.json_response({**received.messages, "refused": received.refused})

    app = web.Application()
    app.router.add_post("/robot/send", dingtalk)
    app.router.add_post("/cgi-bin/webhook/send", wecom)
    app.router.add_post("/webhook/{name}", webhook)
    app.router.add_post("/sms/send", sms)
    app.router.add_get("/received", everything)
    return app


class Mailbox:
    """aiosmtpd's handler: every mail accepted is kept."""

    def __init__(self, received: Received) -> None:
        self.received = received

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        mail = message_from_bytes(content, policy=policy.default)
        body = mail.get_body(("plain",)) if isinstance(mail, EmailMessage) else None
        self.received.accept("email", {
            "from": envelope.mail_from, "to": list(envelope.rcpt_tos), "subject": str(mail["Subject"]),
            "text": body.get_content() if body is not None else "", "at": time.time()})
        return "250 Message accepted for delivery"


async def serve(args: argparse.Namespace) -> None:
    from aiohttp import web
    from aiosmtpd.smtp import SMTP

    received = Received(dict(pair.split("=", 1) for pair in args.dingtalk), set(args.wecom),
                        dict(pair.split("=", 1) for pair in args.webhook),
                        dict(pair.split("=", 1) for pair in args.sms), set(args.sms_sign), args.journal)
    runner = web.AppRunner(app_of(received), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.http_port).start()
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(lambda: SMTP(Mailbox(received), hostname="receivers.local"),
                                    "127.0.0.1", args.smtp_port)
    print(f"receivers: http on {args.http_port}, smtp on {args.smtp_port}", flush=True)
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    await stopping.wait()
    smtp.close()
    await runner.cleanup()


class Receivers:
    """This module run as a child process of the stack (its state dies with it: `stop` then
    `start` is every receiver down, then back, on the same ports)."""

    def __init__(self, workdir: Path, *, dingtalk: Mapping[str, str] = {}, wecom: Sequence[str] = (),
                 webhooks: Mapping[str, str] = {}, sms: tuple[str, str] | None = None,
                 sms_sign: str = "青禾镇人民政府", journal: bool = False) -> None:
        """`sms`: the (access key id, secret) the SMS gateway knows, and intake is given; None: no
        SMS gateway here, and intake sends none."""
        self.workdir = workdir
        self.sms, self.sms_sign = sms, sms_sign
        # What arrived across stops (`journalled`): the process's own state dies with it.
        self.journal_path = workdir / "receivers.jsonl" if journal else None
        self.http_port, self.smtp_port = free_port(), free_port()
        self.argv = [sys.executable, "-m", "devstack.receivers", "--http-port", str(self.http_port),
                     "--smtp-port", str(self.smtp_port),
                     *(a for token, secret in dingtalk.items() for a in ("--dingtalk", f"{token}={secret}")),
                     *(a for key in wecom for a in ("--wecom", key)),
                     *(a for name, secret in webhooks.items() for a in ("--webhook", f"{name}={secret}")),
                     *(("--sms", f"{sms[0]}={sms[1]}", "--sms-sign", sms_sign) if sms is not None else ()),
                     *(("--journal", str(self.journal_path)) if self.journal_path is not None else ())]
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> Receivers:
        self.child = Child("receivers", self.argv, log=self.workdir / "logs" / "receivers.log",
                           cwd=Path(__file__).resolve().parent.parent).start()
        wait_for_port(self.child, self.http_port, 30, "the receivers' HTTP port")
        wait_for_port(self.child, self.smtp_port, 30, "the receivers' SMTP port")
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()

    def received(self) -> dict[str, list[dict[str, Any]]]:
        with urllib.request.urlopen(f"{self.url}/received", timeout=5) as answer:  # noqa: S310 - our loopback receiver
            found: dict[str, list[dict[str, Any]]] = json.load(answer)
            return found

    def intake_env(self) -> dict[str, str]:
        """What intake is started with: the SMS gateway here, its key pair, sign name and
        templates (none when this runs no SMS gateway)."""
        if self.sms is None:
            return {}
        return {"TOWNFLOW_SMS_URL": f"{self.url}/sms/send", "TOWNFLOW_SMS_ACCESS_KEY_ID": self.sms[0],
                "TOWNFLOW_SMS_ACCESS_KEY_SECRET": self.sms[1], "TOWNFLOW_SMS_SIGN_NAME": self.sms_sign,
                **{f"TOWNFLOW_SMS_TEMPLATE_{kind.upper()}": code for kind, code in SMS_TEMPLATE_OF.items()}}

    def journalled(self) -> list[dict[str, Any]]:
        """Every message accepted since the journal began, across stops, each with its `kind`."""
        if self.journal_path is None or not self.journal_path.exists():
            return []
        lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]  # a line cut by a kill is left out

    def notify_env(self) -> dict[str, str]:
        """What notify is started with: the SMTP relay, and the receivers' address for the
        `${TOWNFLOW_RECEIVERS_URL}` of a town's notify.yaml."""
        return {"TOWNFLOW_SMTP_HOST": "127.0.0.1", "TOWNFLOW_SMTP_PORT": str(self.smtp_port),
                "TOWNFLOW_RECEIVERS_URL": self.url}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--dingtalk", action="append", default=[], help="ACCESS_TOKEN=SECRET of a robot")
    parser.add_argument("--wecom", action="append", default=[], help="KEY of a robot")
    parser.add_argument("--webhook", action="append", default=[], help="NAME=SECRET of a webhook")
    parser.add_argument("--sms", action="append", default=[], help="ACCESS_KEY_ID=SECRET of the SMS gateway")
    parser.add_argument("--sms-sign", action="append", default=[], help="an approved SMS sign name (签名)")
    parser.add_argument("--journal", type=Path, default=None, help="append every message accepted to this file")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
