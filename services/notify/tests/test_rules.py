"""Who is told what, the robots' limit and the contacts' checks: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from notify import rules
from notify.contacts import Endpoint, TownContacts, load_contacts
from notify.senders import dingtalk_sign
from townflow_shared.events import (
    CaseFlaggedData,
    ExtensionRequestedData,
    PlannedTarget,
    PlanPublishedData,
    SuspensionRequestedData,
    TaskDispatchedData,
    TaskSupervisedData,
)
from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import TownConfigError, load_town

TOWN = load_town(DEMO_TOWN_DIR)
AT = datetime(2026, 11, 23, 1, tzinfo=UTC)


def dispatched(**overrides: object) -> TaskDispatchedData:
    fields: dict[str, object] = dict(
        task_id="t1", request_id="r1", item_code="S002", kind="service", colour="red", village="V01",
        location="青禾村3组", lead_module="service_centre", post="social-security", assignee="s010",
        assigned_via="A", respond_by=AT, resolve_by=AT, dispatched_at=AT)
    return TaskDispatchedData.model_validate(fields | overrides)


def test_a_dispatched_task_tells_its_assignee_in_the_towns_words() -> None:
    [notice] = rules.dispatched_notices(dispatched(), TOWN)
    assert notice.recipient == "s010"
    assert notice.title == "新任务：城乡居民医保参保"
    assert "红色" in notice.text and "青禾村 青禾村3组" in notice.text
    assert "2026-11-23 09:00" in notice.text  # the town's time, not UTC


def test_a_redispatch_says_so() -> None:
    [notice] = rules.dispatched_notices(dispatched(redispatch_of="t0", assignee="s011"), TOWN)
    assert (notice.recipient, notice.title) == ("s011", "改派任务：城乡居民医保参保")


@pytest.mark.parametrize(("level", "expected"), [
    ("reminder", ["s010"]),
    ("overdue", ["s010", "s005"]),  # the post's module (service_centre) is led by s005
    ("escalated", ["s010", "s005", "s030", "s031", "s000"]),
])
def test_supervision_climbs_the_ladder(level: str, expected: list[str]) -> None:
    task = rules.known_task(dispatched())
    assert rules.supervision_recipients(level, task, ["ignored"], TOWN) == expected  # type: ignore[arg-type]


def test_supervision_of_a_task_notify_never_saw_goes_to_whom_dispatch_named() -> None:
    data = TaskSupervisedData(task_id="t9", request_id="r9", level="escalated", notified=["s030", "s000"], at=AT)
    assert [n.recipient for n in rules.supervised_notices(data, None, TOWN)] == ["s030", "s000"]


def test_a_plan_tells_each_officer_their_own_targets() -> None:
    data = PlanPublishedData(plan_id="p1", seed=1, published_at=AT, targets=[
        PlannedTarget(target="甲厂", officers=["s026", "s027"]), PlannedTarget(target="乙店", officers=["s026"])])
    notices = {n.recipient: n for n in rules.plan_notices(data, TOWN)}
    assert notices["s026"].title == "抽查计划：2 个对象" and "乙店" in notices["s026"].text
    assert "乙店" not in notices["s027"].text


def test_each_notice_goes_to_each_of_its_recipients_channels_or_the_towns_default() -> None:
    contacts = TownContacts(default_channels=[Endpoint(robot="duty")], people=[
        {"staff": "s010", "channels": [{"robot": "duty"}, {"email": "s010@qinghe.example.cn"}]}])  # type: ignore[list-item]
    notices = [rules.Notice("s010", "t", "x"), rules.Notice("s011", "t", "x")]
    assert [(d.recipient, d.channel) for d in rules.deliveries_of(notices, contacts, "321003104")] == [
        ("s010", "robot:321003104/duty"), ("s010", "email:s010@qinghe.example.cn"), ("s011", "robot:321003104/duty")]


@pytest.mark.parametrize(("due", "in_window", "singles", "folded"), [
    (5, 0, 5, 0),      # all fit
    (20, 0, 20, 0),    # exactly the limit
    (25, 0, 19, 6),    # 19 alone, one digest of 6: 20 messages
    (25, 15, 4, 21),   # 4 alone, one digest of 21: the minute's 20
    (3, 20, 0, 0),     # the minute is full: wait
])
def test_a_robots_limit_is_kept_by_folding_the_excess_into_one_digest(due: int, in_window: int, singles: int,
                                                                      folded: int) -> None:
    plan = rules.robot_sends(list(range(due)), in_window, 20)
    assert (len(plan.singles), len(plan.folded)) == (singles, folded)
    assert in_window + len(plan.singles) + (1 if plan.folded else 0) <= 20
    assert plan.singles + plan.folded == (list(range(due)) if singles or folded else [])


def test_a_robot_without_a_limit_is_sent_each_delivery_alone() -> None:
    plan = rules.robot_sends(list(range(500)), 480, None)
    assert (plan.singles, plan.folded) == (list(range(500)), [])


def test_only_the_vendors_robots_are_held_to_20_a_minute() -> None:
    from pydantic import ValidationError

    from notify.contacts import Robot

    dingtalk = Robot(name="d", kind="dingtalk", url="http://x/send?access_token=t", secret="SECx")
    wecom = Robot(name="w", kind="wecom", url="http://x/send?key=k")
    assert dingtalk.minute_limit() == wecom.minute_limit() == 20
    assert Robot(name="d", kind="dingtalk", url="http://x/send", secret="S", per_minute=5).minute_limit() == 5
    with pytest.raises(ValidationError, match="at most 20"):
        Robot(name="w", kind="wecom", url="http://x/send?key=k", per_minute=21)
    # The county's own receiver: no vendor's limit, unless it sets one (any).
    assert Robot(name="h", kind="webhook", url="http://x/hook", secret="k").minute_limit() is None
    assert Robot(name="h", kind="webhook", url="http://x/hook", secret="k", per_minute=600).minute_limit() == 600


def test_a_digest_lists_what_it_folds() -> None:
    title, text = rules.digest([f"新任务：{i}" for i in range(40)])
    assert title == "汇总提醒：40 条通知"
    assert "新任务：29" in text and "新任务：30" not in text and "另有 10 条" in text


def test_retries_back_off_doubling_to_a_cap() -> None:
    assert [rules.retry_delay(n, 2, 60) for n in (1, 2, 3, 6, 10)] == [2, 4, 8, 60, 60]


def test_dingtalks_signature_is_the_documented_one() -> None:
    # DingTalk's documented steps, by hand: HMAC-SHA256(secret, "ts\nsecret") → base64 → urlencode.
    import base64
    import hashlib
    import hmac
    import urllib.parse

    secret, ts = "SEC0123456789abcdef", 1700000000000
    expected = urllib.parse.quote_plus(base64.b64encode(
        hmac.new(secret.encode("utf-8"), f"{ts}\n{secret}".encode(), digestmod=hashlib.sha256).digest()))
    assert dingtalk_sign(secret, ts) == expected
    assert "%" in expected or "+" not in expected  # base64's + / = are escaped for the URL


def _town_dir(tmp_path: Path, notify_yaml: str) -> Path:
    for f in DEMO_TOWN_DIR.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "notify.yaml").write_text(notify_yaml, encoding="utf-8")
    return tmp_path


def test_a_wrong_notify_yaml_names_its_file_and_field(tmp_path: Path) -> None:
    folder = _town_dir(tmp_path, "robots: [{name: duty, kind: dingtalk, url: 'http://x/robot/send'}]\n")
    with pytest.raises(TownConfigError, match=r"notify.yaml: field robots.0: .*needs its secret"):
        load_contacts(folder, TOWN)
    (folder / "notify.yaml").write_text("people: [{staff: s999, channels: [{email: a@b.cn}]}]\n")
    with pytest.raises(TownConfigError, match=r"notify.yaml: field people.0.staff: unknown staff id 's999'"):
        load_contacts(folder, TOWN)
    (folder / "notify.yaml").write_text("default_channels: [{robot: nobody}]\n")
    with pytest.raises(TownConfigError, match=r"field default_channels.0.robot: unknown robot 'nobody'"):
        load_contacts(folder, TOWN)


def test_a_secret_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _town_dir(tmp_path, "robots: [{name: duty, kind: dingtalk, url: 'http://x/send?access_token=t',"
                                 " secret: '${DUTY_SECRET}'}]\n")
    with pytest.raises(TownConfigError, match=r"field robots.0.secret: environment variable DUTY_SECRET is not set"):
        load_contacts(folder, TOWN)
    monkeypatch.setenv("DUTY_SECRET", "SECabc")
    robot = load_contacts(folder, TOWN).robot("duty")
    assert robot is not None and robot.secret == "SECabc"


def test_a_vendors_error_code_is_a_failure_named_and_its_zero_a_success() -> None:
    import httpx

    from notify.senders import SendFailed, _cut, _vendor_answer

    _vendor_answer(httpx.Response(200, json={"errcode": 0, "errmsg": "ok"}))
    for answer, why in [(httpx.Response(200, json={"errcode": 310000, "errmsg": "sign not match"}),
                         "errcode 310000: sign not match"),
                        (httpx.Response(503, text="busy"), "HTTP 503"),
                        (httpx.Response(200, text="<html>"), "the answer is not JSON")]:
        with pytest.raises(SendFailed, match=why):
            _vendor_answer(answer)
    cut = _cut("汇" * 2000, 4096)  # 3 bytes a character: WeCom's 4096-byte limit, cut between characters
    assert len(cut.encode()) <= 4096 and cut == "汇" * 1365


def test_an_extension_or_suspension_request_tells_the_command_centre_on_duty() -> None:
    task = rules.known_task(dispatched())
    extension = ExtensionRequestedData(extension_id="e1", task_id="t1", request_id="r1", days=2, reason="需补充材料",
                                       requested_by="s010", requested_at=AT, resolve_by=AT)
    notices = rules.extension_requested_notices(extension, task, TOWN)
    assert [n.recipient for n in notices] == ["s030", "s031"]  # command_centre_duty in town.yaml
    assert notices[0].title == "延期申请：城乡居民医保参保"
    assert "2 个工作日" in notices[0].text and "2026-11-23 09:00" in notices[0].text
    suspension = SuspensionRequestedData(suspension_id="x1", task_id="t9", request_id="r9",
                                         category="awaiting_citizen", reason="等补正", requested_by="s010",
                                         requested_at=AT, resolve_by=AT)
    [first, _] = rules.suspension_requested_notices(suspension, None, TOWN)  # a task notify never saw: its id
    assert first.title == "挂起申请：t9" and "等待申请人补正材料" in first.text


def test_a_flagged_case_tells_its_officers_or_else_the_enforcement_leader() -> None:
    data = CaseFlaggedData(case_id="c1", task_id="t1", request_id="r1", item_code="E003", target="91321003MA0001",
                           officers=["s026", "s027", "s026"], flag="warning", filed_at=AT, decision_due=AT,
                           extended=False, at=AT)
    notices = rules.case_flagged_notices(data, TOWN)
    assert [n.recipient for n in notices] == ["s026", "s027"]
    assert notices[0].title.startswith("案件临近办案期限：") and "91321003MA0001" in notices[0].text
    overdue = rules.case_flagged_notices(data.model_copy(update={"flag": "overdue", "officers": []}), TOWN)
    assert [(n.recipient, n.title.split("：")[0]) for n in overdue] == [("s006", "案件已超办案期限")]
