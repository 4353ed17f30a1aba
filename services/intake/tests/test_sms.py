"""Citizens' SMS (issue #31 item 3) in the unit tier: the rules (quiet hours, a mobile number, a
variable's length), the gateway's signature, what the filing and the completion queue, and the
sender's decisions on a fake store and a gateway answered in memory (httpx's MockTransport: no
socket), the phone in no log line and no row."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx
import pytest

from intake import flows, gateway, rules
from intake.scheduled import SMS, SmsSender
from intake.settings import IntakeSettings
from services.intake.tests.fakes import KEYRING, FakeDatabase, deps
from services.intake.tests.test_flows import BAILU_COMMAND, CLERK, COMMAND, NOW, answered, completed, filing
from townflow_shared.db import Database
from townflow_shared.problems import Refusal

SHANGHAI = ZoneInfo("Asia/Shanghai")
PHONE = "13812345678"
SMS_SETTINGS = {"sms_url": "http://gateway.test/", "sms_access_key_id": "LTAI-test",
                "sms_access_key_secret": "secret-of-the-test", "sms_sign_name": "青禾镇",
                "sms_template_filed": "SMS_FILED", "sms_template_completed": "SMS_DONE",
                "sms_template_callback": "SMS_CALLBACK", "sms_status_url": "https://zwt.example/status"}


def local(hour: int, minute: int = 0, day: int = 15) -> datetime:
    return datetime(2027, 3, day, hour, minute, tzinfo=SHANGHAI)


# --- rules ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("at", "red", "until"), [
    (local(8, 0), False, None),                 # the morning's first minute: sent
    (local(20, 59), False, None),               # the evening's last
    (local(21, 0), False, local(8, 0, day=16)),  # quiet: held until tomorrow 08:00
    (local(23, 30), False, local(8, 0, day=16)),
    (local(0, 5), False, local(8, 0)),          # after midnight: this morning's 08:00
    (local(7, 59), False, local(8, 0)),
    (local(23, 30), True, None),                # red: at any hour
    (local(3, 0), True, None),
])
def test_quiet_hours_hold_what_is_not_red_until_eight(at: datetime, red: bool, until: datetime | None) -> None:
    assert rules.quiet_until(at, red) == until


@pytest.mark.parametrize(("phone", "mobile"), [
    ("13812345678", "13812345678"), ("+86 138-1234-5678", "13812345678"), ("138 1234 5678", "13812345678"),
    ("0838-6000123", None), ("12812345678", None), ("1381234567", None), (None, None), ("", None)])
def test_only_a_mainland_mobile_number_is_texted(phone: str | None, mobile: str | None) -> None:
    assert rules.mobile_number(phone) == mobile


def test_a_long_reply_is_cut_to_the_providers_variable_length() -> None:
    assert rules.short_param("已为您办理完毕。") == "已为您办理完毕。"
    cut = rules.short_param("已" * 50)
    assert len(cut) == rules.SMS_PARAM_MAX and cut.endswith("…")


def test_the_gateways_settings_are_all_given_or_none() -> None:
    assert not IntakeSettings().sms_enabled and IntakeSettings().sms_template("filed") is None
    with pytest.raises(ValueError, match="TOWNFLOW_SMS_ACCESS_KEY_SECRET"):
        IntakeSettings(sms_url="http://gateway.test/", sms_access_key_id="k", sms_sign_name="s")


# --- the signature ----------------------------------------------------------------------------------
def test_the_request_is_signed_over_its_canonical_form_as_the_provider_recomputes_it() -> None:
    gw = gateway.Gateway("http://gateway.test/sms?Region=cn-hangzhou", "LTAI-test", "secret-of-the-test", "青禾镇")
    headers, body = gateway.signed_request(gw, PHONE, "SMS_FILED", {"ticket": "T1", "code": "ABC"}, "7",
                                           now=1_800_000_000, nonce="n0nce")
    sent = json.loads(body)
    assert sent == {"PhoneNumbers": PHONE, "SignName": "青禾镇", "TemplateCode": "SMS_FILED",
                    "TemplateParam": '{"code": "ABC", "ticket": "T1"}', "OutId": "7"}
    assert headers["x-acs-date"] == "2027-01-15T08:00:00Z" and headers["x-acs-signature-nonce"] == "n0nce"
    # Written out by hand, as the provider's side computes it.
    digest = hashlib.sha256(body).hexdigest()
    canonical = (f"POST\n/sms\nRegion=cn-hangzhou\ncontent-type:application/json; charset=utf-8\nhost:gateway.test\n"
                 f"x-acs-action:SendSms\nx-acs-content-sha256:{digest}\nx-acs-date:2027-01-15T08:00:00Z\n"
                 f"x-acs-signature-nonce:n0nce\n\ncontent-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;"
                 f"x-acs-signature-nonce\n{digest}")
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(b"secret-of-the-test", to_sign.encode(), hashlib.sha256).hexdigest()
    assert headers["authorization"] == (
        "ACS3-HMAC-SHA256 Credential=LTAI-test,SignedHeaders=content-type;host;x-acs-action;"
        f"x-acs-content-sha256;x-acs-date;x-acs-signature-nonce,Signature={expected}")
    again, _ = gateway.signed_request(gw, PHONE, "SMS_FILED", {"ticket": "T1", "code": "ABC"}, "7")
    assert again["x-acs-signature-nonce"] != "n0nce"  # a retry is a new request


# --- what is queued -----------------------------------------------------------------------------------
def sms_deps(db: FakeDatabase, **settings: Any) -> flows.Deps:
    d = deps(db, NOW)
    chosen = IntakeSettings(**(SMS_SETTINGS | settings))
    return dataclasses.replace(d, settings=chosen, filing_writer=flows.filing_writer(db.unit_of_work, d.clock, KEYRING))


async def file_with(d: flows.Deps, **overrides: Any) -> dict[str, Any]:
    status, answer = await d.filing_writer.submit(flows.validated_filing(d, CLERK, flows.FileMatter(filing(**overrides), None)))
    assert status == 201
    return answer


async def test_a_filing_queues_its_ticket_code_and_status_page_never_the_phone() -> None:
    db = FakeDatabase()
    ticket = await file_with(sms_deps(db))
    [queued] = db.tables.sms.values()
    assert (queued["kind"], queued["template"], queued["red"], queued["hold_until"]) == ("filed", "SMS_FILED", False, None)
    assert queued["params"] == {"ticket": ticket["ticket_no"], "code": ticket["access_code"],
                                "url": f"https://zwt.example/status?ticket={ticket['ticket_no']}"}
    assert "13800000000" not in json.dumps(queued, default=str)


async def test_an_opted_out_citizen_and_a_deployment_without_sms_queue_nothing() -> None:
    db = FakeDatabase()
    opted_out = await file_with(sms_deps(db), sms_opt_out=True)
    assert not db.tables.sms and db.tables.sms_choices == {uuid.UUID(opted_out["request_id"]): True}
    d = sms_deps(db)
    async with db.unit_of_work() as uow:
        await flows.follow_task_completed(d, uow, completed(opted_out["request_id"], NOW + timedelta(hours=1)))
    assert not db.tables.sms
    plain = FakeDatabase()
    await file_with(deps(plain, NOW))  # no gateway settings
    assert not plain.tables.sms and list(plain.tables.sms_choices.values()) == [False]


async def test_the_completion_queues_the_reply_and_a_callback_invitation_a_day_later_once() -> None:
    db = FakeDatabase()
    d = sms_deps(db)
    ticket = await file_with(d)
    reply = "路灯已修复，感谢您的反映。今后如再有问题请随时联系村便民服务站或拨打镇服务热线。"
    done = answered(ticket["request_id"], NOW + timedelta(hours=1), reply)
    for _ in range(2):  # delivered twice: one message of each kind
        async with db.unit_of_work() as uow:
            await flows.follow_task_completed(d, uow, done)
    kinds = {kind: row for (_, kind, _), row in db.tables.sms.items()}
    assert sorted(kinds) == ["callback", "completed", "filed"] and len(db.tables.sms) == 3
    assert kinds["completed"]["params"] == {"ticket": ticket["ticket_no"], "reply": rules.short_param(reply)}
    assert kinds["callback"]["hold_until"] == NOW + timedelta(hours=25)
    assert kinds["callback"]["params"]["url"].endswith(f"?ticket={ticket['ticket_no']}")


async def test_the_citizens_of_merged_matters_are_texted_the_primarys_completion_each_once() -> None:
    """重复件: each merged matter's citizen gets the primary's answer and an invitation to rate their
    own ticket; one who opted out, and a matter unmerged before the completion, get nothing."""
    db = FakeDatabase()
    d = sms_deps(db)
    primary, duplicate, quiet, unmerged = (await file_with(d), await file_with(d),
                                           await file_with(d, sms_opt_out=True), await file_with(d))
    for ticket in (duplicate, quiet, unmerged):
        await flows.merge(d, COMMAND, flows.MergeMatter(ticket["ticket_no"], primary["ticket_no"]))
    await flows.unmerge(d, COMMAND, flows.UnmergeMatter(unmerged["ticket_no"]))
    done = answered(primary["request_id"], NOW + timedelta(hours=1), "路灯已修复")
    for _ in range(2):  # delivered twice: one message of each kind per matter
        async with db.unit_of_work() as uow:
            await flows.follow_task_completed(d, uow, done)
    after = sorted((row["params"]["ticket"], kind) for (source, kind, _), row in db.tables.sms.items()
                   if source == done.id)
    assert after == sorted((t["ticket_no"], kind) for t in (primary, duplicate) for kind in ("callback", "completed"))
    [theirs] = [r for r in db.tables.sms.values() if r["kind"] == "completed" and r["params"]["ticket"] == duplicate["ticket_no"]]
    assert theirs["request_id"] == uuid.UUID(duplicate["request_id"]) and theirs["params"]["reply"] == "路灯已修复"


# --- the sender -------------------------------------------------------------------------------------
class FakeSmsStore:
    """The sender's statements over one message's row, in memory."""

    def __init__(self, request: dict[str, Any], sealed: dict[str, Any] | None) -> None:
        self.request, self.sealed = request, sealed
        self.calls: list[tuple[str, Any]] = []

    async def request_by_id(self, request_id: uuid.UUID) -> dict[str, Any]:
        return self.request

    async def sealed_citizen(self, request_id: uuid.UUID) -> dict[str, Any] | None:
        return self.sealed

    async def sms_still_held(self, message_id: int, holder: str, for_seconds: float = 0) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:  # sms_sent, sms_retry, sms_ended, sms_hold: recorded
        async def record(*args: Any) -> None:
            self.calls.append((name, args))
        return record


class InMemorySender(SmsSender):
    def __init__(self, d: flows.Deps, store: FakeSmsStore, answer: Any) -> None:
        super().__init__(d, cast(Database, None), httpx.AsyncClient(transport=httpx.MockTransport(answer)), "me")
        self.store = store

    async def _store(self, work: Any) -> Any:
        return await work(self.store)


def message_row(kind: str = "filed", red: bool = False) -> dict[str, Any]:
    return {"id": 7, "request_id": uuid.uuid4(), "town_code": "321003104", "kind": kind, "template": "SMS_FILED",
            "params": {"ticket": "T1", "code": "ABC", "url": "u"}, "red": red, "attempts": 0}


def store_with(phone: str | None = "+86 138-1234-5678", rating: str | None = None) -> FakeSmsStore:
    request_id = uuid.uuid4()
    _, sealed = KEYRING.sealed(request_id, "321003104", "测试群众", phone, None)
    return FakeSmsStore({"request_id": request_id, "rating": rating}, sealed)


def at(moment: datetime, db: FakeDatabase) -> flows.Deps:
    d = sms_deps(db)
    d.clock.set(moment)
    return d


async def test_the_sender_sends_the_opened_phone_and_records_the_providers_id(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[dict[str, Any]] = []

    def provider(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"Code": "OK", "Message": "OK", "BizId": "biz-1", "RequestId": "r"})

    store = store_with()
    caplog.set_level(logging.DEBUG)
    sender = InMemorySender(at(local(9, 0).astimezone(UTC), FakeDatabase()), store, provider)
    assert await sender.send_one(message_row()) == 1
    assert seen[0]["PhoneNumbers"] == PHONE and json.loads(seen[0]["TemplateParam"])["ticket"] == "T1"
    before = SMS.labels("filed", "sent")._value.get()
    assert await sender.send_one(message_row()) == 1
    assert SMS.labels("filed", "sent")._value.get() == before + 1
    assert [c[0] for c in store.calls] == ["sms_sent", "sms_sent"] and store.calls[0][1][1] == "biz-1"
    assert PHONE not in caplog.text and "1234-5678" not in caplog.text


async def test_the_phone_is_in_no_log_line_or_row_whatever_the_gateway_does(caplog: pytest.LogCaptureFixture) -> None:
    """Down, a 5xx, a refusal that echoes the number, a refusal for good, a bug: each logged and
    recorded without the phone (masked as everywhere: 138****5678)."""
    answers = [
        lambda r: (_ for _ in ()).throw(httpx.ConnectError(f"cannot reach {r.url}", request=r)),
        lambda r: httpx.Response(503, text=f"busy {PHONE}"),
        lambda r: httpx.Response(200, json={"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": f"limit for {PHONE}"}),
        lambda r: httpx.Response(200, json={"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": f"{PHONE} is illegal"}),
        lambda r: (_ for _ in ()).throw(RuntimeError(f"a bug with {PHONE}")),
    ]
    caplog.set_level(logging.DEBUG)
    recorded = []
    for answer in answers:
        store = store_with()
        sender = InMemorySender(at(local(9, 0).astimezone(UTC), FakeDatabase()), store, answer)
        assert await sender.send_rows([message_row()]) == 0
        recorded += store.calls
    assert [c[0] for c in recorded] == ["sms_retry", "sms_retry", "sms_retry", "sms_ended", "sms_retry"]
    assert recorded[3][1][1:3] == ("failed", "isv.MOBILE_NUMBER_ILLEGAL: 138****5678 is illegal")
    assert PHONE not in caplog.text and PHONE not in repr(recorded)
    assert "gateway unavailable" in caplog.text and "a bug with 138****5678" in caplog.text


async def test_quiet_hours_hold_a_yellow_matters_message_and_not_a_red_ones() -> None:
    def provider(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"Code": "OK", "BizId": "b"})

    night = local(22, 30).astimezone(UTC)
    store = store_with()
    assert await InMemorySender(at(night, FakeDatabase()), store, provider).send_one(message_row()) == 0
    assert store.calls == [("sms_hold", (7, local(8, 0, day=16), "quiet hours: held until 08:00"))]
    red = store_with()
    assert await InMemorySender(at(night, FakeDatabase()), red, provider).send_one(message_row(red=True)) == 1


async def test_no_mobile_an_erased_citizen_and_a_rated_matter_are_skipped_with_why() -> None:
    def provider(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing is sent")

    day = local(10, 0).astimezone(UTC)
    landline = store_with(phone="0838-6000123")
    await InMemorySender(at(day, FakeDatabase()), landline, provider).send_one(message_row())
    rated = store_with(rating="satisfied")
    await InMemorySender(at(day, FakeDatabase()), rated, provider).send_one(message_row(kind="callback"))
    erased = store_with()
    assert erased.sealed is not None
    erased.sealed = {**erased.sealed, "erased_at": day}
    await InMemorySender(at(day, FakeDatabase()), erased, provider).send_one(message_row())
    assert [c[1][1:3] for s in (landline, rated, erased) for c in s.calls] == [
        ("skipped", "no mobile number"), ("skipped", "already rated"), ("skipped", "personal data erased")]


async def test_the_sms_log_is_the_towns_own_and_says_no_phone() -> None:
    db = FakeDatabase()
    ticket = await file_with(sms_deps(db))
    [logged] = await flows.sms_log(sms_deps(db), CLERK, ticket["ticket_no"])
    assert (logged.kind, logged.status, logged.attempts) == ("filed", "pending", 0)
    for who, number in ((BAILU_COMMAND, ticket["ticket_no"]), (CLERK, ticket["ticket_no"][:-1] + "9")):
        with pytest.raises(Refusal) as refused:
            await flows.sms_log(sms_deps(db), who, number)
        assert (refused.value.code.name, refused.value.field) == ("sms.ticket_not_found", "ticket_no")


async def test_a_gateway_that_does_not_answer_is_called_once_a_wake_up_the_rest_given_back() -> None:
    calls: list[httpx.Request] = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectTimeout("timed out", request=request)

    store = store_with()
    sender = InMemorySender(at(local(9, 0).astimezone(UTC), FakeDatabase()), store, down)
    rows = [message_row() | {"id": n} for n in (7, 8, 9)]
    assert await sender.send_rows(rows) == 0
    assert len(calls) == 1
    assert [(name, args[0]) for name, args in store.calls] == [("sms_retry", 7), ("sms_release", [8, 9])]
