"""The channels' adapters: one message out, or `SendFailed` saying why. Thin: no decisions here
(who, when, how often: rules.py and scheduled.py).

- DingTalk / 浙政钉 custom robot: JSON `{"msgtype": "markdown", …}`, signed as DingTalk documents
  it (加签): `timestamp` (ms) and `sign` = urlencode(base64(HMAC-SHA256(key=secret,
  msg=f"{timestamp}\\n{secret}"))) added to the URL's query; the answer's `errcode` 0 is success.
- WeCom group robot: JSON `{"msgtype": "markdown", "markdown": {"content": …}}` to its URL (which
  carries `key=`); `errcode` 0 is success. Its content is at most 4096 bytes.
- A generic webhook: JSON with the delivery's id, title and text, `X-Townflow-Signature:
  sha256=<hex HMAC-SHA256(key=secret, msg=body)>`; any 2xx is success. The id lets a receiver drop
  a message sent twice (a replica that died between sending and recording it).
- E-mail over SMTP with the stdlib's smtplib, in a thread: one session per channel and wake-up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote_plus

import httpx

from .contacts import Robot
from .settings import NotifySettings

WECOM_MAX_BYTES = 4096


class SendFailed(Exception):
    """The receiver did not take the message (down, refused, an error code): tried again later."""


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: urlencode(base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>")))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _cut(text: str, max_bytes: int) -> str:
    """At most `max_bytes` of UTF-8, cut between characters."""
    encoded = text.encode()
    return text if len(encoded) <= max_bytes else encoded[:max_bytes].decode(errors="ignore")


def _vendor_answer(response: httpx.Response) -> None:
    """DingTalk and WeCom answer 200 with `errcode`; anything else is a failure, named."""
    if response.status_code != 200:
        raise SendFailed(f"HTTP {response.status_code}")
    try:
        answer: Any = response.json()
    except ValueError as exc:
        raise SendFailed("the answer is not JSON") from exc
    if not isinstance(answer, dict) or answer.get("errcode") != 0:
        errcode = answer.get("errcode") if isinstance(answer, dict) else None
        errmsg = answer.get("errmsg") if isinstance(answer, dict) else None
        raise SendFailed(f"errcode {errcode}: {errmsg}")


class RobotSender:
    """Sends to the robots over one HTTP client (its connections kept between messages)."""

    def __init__(self, timeout_seconds: float) -> None:
        self.client = httpx.AsyncClient(timeout=timeout_seconds, trust_env=False)

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, robot: Robot, delivery_id: int, title: str, text: str, now_ms: int) -> None:
        secret = robot.secret or ""  # never empty for the signed kinds: checked at start-up (contacts.Robot)
        try:
            if robot.kind == "dingtalk":
                joiner = "&" if "?" in robot.url else "?"
                url = f"{robot.url}{joiner}timestamp={now_ms}&sign={dingtalk_sign(secret, now_ms)}"
                _vendor_answer(await self.client.post(url, json={
                    "msgtype": "markdown", "markdown": {"title": title, "text": text}}))
            elif robot.kind == "wecom":
                _vendor_answer(await self.client.post(robot.url, json={
                    "msgtype": "markdown", "markdown": {"content": _cut(text, WECOM_MAX_BYTES)}}))
            else:
                body = json.dumps({"id": delivery_id, "title": title, "text": text}, ensure_ascii=False).encode()
                response = await self.client.post(robot.url, content=body, headers={
                    "Content-Type": "application/json", "X-Townflow-Signature": webhook_signature(secret, body)})
                if not response.is_success:
                    raise SendFailed(f"HTTP {response.status_code}")
        except httpx.HTTPError as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__) from exc


class SmtpSession:
    """One channel's mail of a wake-up through one SMTP session with the deployment's relay
    (blocking smtplib, in a thread): connected at the first message, closed by `close` (and after a
    failure, so a broken session is never reused). A session per channel rather than per message:
    connect, EHLO, STARTTLS and login once, not for every mail."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None

    def _connect(self, host: str) -> smtplib.SMTP:
        settings = self.settings
        smtp = smtplib.SMTP(host, settings.smtp_port, timeout=settings.send_timeout_seconds)
        try:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username and settings.smtp_password:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        return smtp

    async def send(self, to: str, title: str, text: str) -> None:
        host = self.settings.smtp_host
        if not host:
            raise SendFailed("no SMTP server is set (TOWNFLOW_SMTP_HOST)")
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = to
        message["Subject"] = title
        message.set_content(text)

        def send() -> None:
            if self.smtp is None:
                self.smtp = self._connect(host)
            self.smtp.send_message(message)

        try:
            await asyncio.to_thread(send)
        except (smtplib.SMTPException, OSError) as exc:
            await self.close()
            raise SendFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc

    async def close(self) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is not None:
            await asyncio.to_thread(_quit, smtp)


def _quit(smtp: smtplib.SMTP) -> None:
    """QUIT, or just the socket closed when the session is broken (what was sent is sent)."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
