"""Citizens' SMS (issue #31 item 3): what is queued, in the transaction that learns of it. The
filing's message is queued by the filing writer (flows._file_new); the completion's and the
callback invitation's by the consumer of `dispatch.task.completed` (flows.follow_task_completed),
for the matter and each one merged into it, each once per (source, kind, matter) whichever replica
or however often the event comes. The sender loop (scheduled.SmsSender) sends them. No phone
here: the sender opens it from the sealed citizen."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from townflow_shared import events
from townflow_shared.town import Town

from . import rules
from .settings import IntakeSettings
from .store import UnitOfWork

# A completion without the holder's answer (a release before v1.2 completed it): the SMS still says so.
NO_REPLY = "已办结，答复详见办理进度页面"


def status_address(status_url: str, ticket_no: str) -> str:
    """The citizen's status page for the ticket (the console's /status; the code is asked there)."""
    return f"{status_url}?ticket={ticket_no}"


def message(request_id: uuid.UUID, town_code: str, kind: str, source_id: uuid.UUID, template: str,
            colour: str, now: datetime, params: dict[str, str], hold_until: datetime | None = None) -> dict[str, Any]:
    """A row of `sms_outbox`."""
    return {"request_id": request_id, "town_code": town_code, "kind": kind, "source_id": source_id,
            "template": template, "params": params, "red": colour == "red", "created_at": now,
            "hold_until": hold_until}


async def queue_completion(settings: IntakeSettings, uow: UnitOfWork, town: Town,
                           completed: events.TaskCompletedData, event_id: uuid.UUID) -> None:
    """The completion's SMS (the answer, in short) and the callback invitation (回访: rate it on
    the status page), `sms_callback_after_hours` later, to the matter's citizen and to the citizen
    of each matter merged into it (重复件: theirs follows the primary's outcome, and they rate their
    own ticket), each with their own ticket. Nothing for a citizen who opted out, for a matter filed
    before the choice existed, or when the deployment sends no SMS."""
    if not settings.sms_enabled:
        return
    at, reply = completed.completed_at, rules.short_param(completed.reply or NO_REPLY)
    completion, callback = settings.sms_template("completed"), settings.sms_template("callback")
    queued = []
    for recipient in await uow.store.sms_recipients(town.code, uuid.UUID(completed.request_id)):
        request_id, ticket, colour = recipient["request_id"], recipient["ticket_no"], recipient["colour"]
        if completion is not None:
            queued.append(message(request_id, town.code, "completed", event_id, completion, colour, at,
                                  {"ticket": ticket, "reply": reply}))
        if callback is not None:
            queued.append(message(request_id, town.code, "callback", event_id, callback, colour, at,
                                  {"ticket": ticket, "url": status_address(settings.sms_status_url, ticket)},
                                  hold_until=at + timedelta(hours=settings.sms_callback_after_hours)))
    await uow.store.enqueue_sms(queued)
