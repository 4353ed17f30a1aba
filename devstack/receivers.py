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
- SMTP on its own port: aiosmtpd, a real SMTP server (aio-libs), keeping each mail.

`GET /received` answers what arrived (and what was refused, with why) as JSON; the state lives in
this process: a test stops it to make every receiver "down" and starts it again on the same ports.

    python -m devstack.receivers --http-port 8025 --smtp-port 8026 --dingtalk TOKEN=SECRET --wecom KEY \
        --webhook NAME=SECRET
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import signal
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Mapping, Sequence
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


class Received:
    def __init__(self, dingtalk: dict[str, str], wecom: set[str], webhooks: dict[str, str]) -> None:
        self.dingtalk, self.wecom, self.webhooks = dingtalk, wecom, webhooks
        self.messages: dict[str, list[dict[str, Any]]] = {"dingtalk": [], "wecom": [], "webhook": [], "email": []}
        self.refused: list[dict[str, Any]] = []
        self.minute: dict[str, deque[float]] = {}

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


def app_of(received: Received) -> web.Application:
    from aiohttp import web

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
        received.messages["dingtalk"].append({"access_token": token, "title": markdown["title"],
                                              "text": markdown["text"], "at": time.time()})
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
        received.messages["wecom"].append({"key": key, "content": content, "at": time.time()})
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
        received.messages["webhook"].append({"name": name, **json.loads(body), "at": time.time()})
        return web.Response(status=204)

    async def everything(_: web.Request) -> web.Response:
        return web.json_response({**received.messages, "refused": received.refused})

    app = web.Application()
    app.router.add_post("/robot/send", dingtalk)
    app.router.add_post("/cgi-bin/webhook/send", wecom)
    app.router.add_post("/webhook/{name}", webhook)
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
        self.received.messages["email"].append({
            "from": envelope.mail_from, "to": list(envelope.rcpt_tos), "subject": str(mail["Subject"]),
            "text": body.get_content() if body is not None else "", "at": time.time()})
        return "250 Message accepted for delivery"


async def serve(args: argparse.Namespace) -> None:
    from aiohttp import web
    from aiosmtpd.smtp import SMTP

    received = Received(dict(pair.split("=", 1) for pair in args.dingtalk), set(args.wecom),
                        dict(pair.split("=", 1) for pair in args.webhook))
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
                 webhooks: Mapping[str, str] = {}) -> None:
        self.workdir = workdir
        self.http_port, self.smtp_port = free_port(), free_port()
        self.argv = [sys.executable, "-m", "devstack.receivers", "--http-port", str(self.http_port),
                     "--smtp-port", str(self.smtp_port),
                     *(a for token, secret in dingtalk.items() for a in ("--dingtalk", f"{token}={secret}")),
                     *(a for key in wecom for a in ("--wecom", key)),
                     *(a for name, secret in webhooks.items() for a in ("--webhook", f"{name}={secret}"))]
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
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
