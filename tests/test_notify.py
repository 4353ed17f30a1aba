"""Notify on the real stack (issue #31): the session's Kafka, PostgreSQL, intake, dispatch and
enforcement, with two notify replicas started for this module (`notify_stack`), sending to the real
local receivers (devstack/receivers.py: DingTalk and WeCom robots that check the request as
the vendors document it, aiosmtpd for e-mail). No message leaves the machine. The citizens' SMS from
intake (item 3) on the same stack, through the receivers' SMS gateway stand-in, which checks each
request's signature, template and number as a provider does."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from devstack.receivers import Receivers
from devstack.stack import ServiceProcess, Stack
from dispatch.rules import OPEN_STATUSES

from .conftest import (
    CLERK,
    COMMAND,
    Api,
    advance_clocks,
    eventually,
    file_matter,
    http_client,
    set_clocks,
    task_of,
    town_dir_of,
)
from .kafka_tools import (
    event_of,
    group_caught_up,
    place_group_at_the_ends,
    produce,
    read_all,
    topics_consumed_by,
)

DUTY_SECRET = "SEC" + secrets.token_hex(16)
BURST_SECRET = "SEC" + secrets.token_hex(16)
FEED_SECRET = secrets.token_hex(16)
SMS_KEY = ("LTAI-test-" + secrets.token_hex(4), secrets.token_hex(16))
OFFICERS_SECRET = secrets.token_hex(16)
# S001 (newborn registration) goes to the household post, A holder s049 (廖凡); S002 (medical
# insurance) to social-security, s010 then s011: each post's people on a robot of their own. The
# officer s026 has a signed webhook of their own; s027, the other officer, the town's default. Only
# s012 (employment, S010) gets a daily digest, due from 00:00: whatever a test clock says, their
# first open task brings the day's digest, and no other test's messages are joined by digests.
NOTIFY_YAML = f"""
robots:
  - {{name: duty, kind: dingtalk, secret: {DUTY_SECRET},
     url: "${{TOWNFLOW_RECEIVERS_URL}}/robot/send?access_token=duty-token"}}
  - {{name: burst, kind: dingtalk, secret: {BURST_SECRET},
     url: "${{TOWNFLOW_RECEIVERS_URL}}/robot/send?access_token=burst-token"}}
  - {{name: centre, kind: wecom, url: "${{TOWNFLOW_RECEIVERS_URL}}/cgi-bin/webhook/send?key=centre-key"}}
  - {{name: police-feed, kind: webhook, secret: {FEED_SECRET}, url: "${{TOWNFLOW_RECEIVERS_URL}}/webhook/police-feed"}}
  - {{name: officers, kind: webhook, secret: {OFFICERS_SECRET}, url: "${{TOWNFLOW_RECEIVERS_URL}}/webhook/officers"}}
default_channels: [{{robot: centre}}]
digest_at: null
people:
  - {{staff: s049, channels: [{{robot: duty}}, {{email: s049@qinghe.example.cn}}]}}
  - {{staff: s010, channels: [{{robot: burst}}]}}
  - {{staff: s011, channels: [{{robot: burst}}]}}
  - {{staff: s048, channels: [{{robot: police-feed}}]}}
  - {{staff: s026, channels: [{{robot: officers}}]}}
  - {{staff: s012, channels: [{{email: s012@qinghe.example.cn}}], digest_at: "00:00"}}
"""


# The module's settings beyond the stack's: quick retries and digest passes for notify, quick
# retries and the status page's address (the filing's SMS links to it) for intake.
NOTIFY_SETTINGS = {"TOWNFLOW_SEND_RETRY_BASE_SECONDS": "0.5", "TOWNFLOW_SEND_RETRY_MAX_SECONDS": "2",
                   "TOWNFLOW_DIGEST_POLL_SECONDS": "1"}
SMS_SETTINGS = {"TOWNFLOW_SMS_RETRY_BASE_SECONDS": "0.5", "TOWNFLOW_SMS_RETRY_MAX_SECONDS": "2",
                "TOWNFLOW_SMS_STATUS_URL": "https://zwt.example.cn/status"}
# Whom the module's tasks go to (S001's household post, S002's social security, S010's employment)
# and the tests expect: the session's other modules leave them open tasks (S001 is every default
# filing), and at a load cap of 20 the next task would go to the B holder or the module's leader.
HOLDERS = ("s049", "s010", "s011", "s012")


@pytest.fixture(scope="module")
async def notify_stack(stack: Stack) -> AsyncIterator[Stack]:
    """The session's stack, with notify and its receivers for this module: notify.yaml added to the
    stack's town, two notify replicas (each event's deliveries recorded and sent once whichever
    replica has it), intake started again with the receivers' SMS gateway. After the module, notify
    is stopped and dropped, intake runs as it did, the receivers and notify.yaml are gone: the
    session's other modules see the stack they saw before. Started here, not with the session:
    notify would tell and intake text every other module's matters, at a cost to all of them."""
    contacts = town_dir_of(stack) / "notify.yaml"
    intake = stack.services["intake"]
    as_found = dict(intake.env)
    receivers = Receivers(stack.workdir, dingtalk={"duty-token": DUTY_SECRET, "burst-token": BURST_SECRET},
                          wecom=["centre-key"], webhooks={"police-feed": FEED_SECRET, "officers": OFFICERS_SECRET},
                          sms=SMS_KEY)
    try:
        completed = await _free(stack)
        contacts.write_text(NOTIFY_YAML, encoding="utf-8")
        stack.use_receivers(await asyncio.to_thread(receivers.start))
        await asyncio.gather(_start_notify(stack), _intake_texting(stack, completed))
        yield stack
    finally:
        stack.use_receivers(None)
        await asyncio.gather(asyncio.to_thread(stack.remove_service, "notify"), _intake_as(intake, as_found),
                             _free(stack))
        receivers.stop()
        contacts.unlink(missing_ok=True)


async def _free(stack: Stack) -> set[str]:
    """Every open task of HOLDERS completed by its holder (their ids are returned): before the
    module, each is under the load cap and takes the module's tasks; after it, the module leaves
    them so."""
    dispatch = Api(stack, "dispatch")

    async def open_tasks(staff_id: str, status: str) -> list[dict[str, Any]]:
        listed = await dispatch.call("GET", "/v1/tasks", as_=COMMAND,
                                     params={"assignee": staff_id, "status": status, "limit": 1000})
        assert listed.status_code == 200, listed.text
        return list(listed.json())

    async def complete(task: dict[str, Any]) -> str:
        done = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/complete", as_=(task["assignee"], "staff"),
                                   json={"resolution": "已办结", "reply": "已为您办理完毕。"})
        assert done.status_code == 200, done.text
        return str(task["task_id"])

    found = await asyncio.gather(*(open_tasks(s, status) for s in HOLDERS for status in OPEN_STATUSES))
    return set(await asyncio.gather(*(complete(task) for tasks in found for task in tasks)))


async def _start_notify(stack: Stack) -> None:
    """Notify's two replicas, its group first placed at the ends of its topics: it joins a running
    town, and the session's earlier events are not its to tell."""
    assert stack.kafka is not None
    await place_group_at_the_ends(stack.kafka.bootstrap, "notify", topics_consumed_by("notify"))

    def start() -> None:
        stack.add_service("notify")
        stack.add_replica("notify")
        for replica in stack.replicas["notify"]:
            replica.env |= NOTIFY_SETTINGS
            # No test reads notify's spans; exporting costs a fifth more of a service's CPU (conftest).
            replica.env.pop("TOWNFLOW_OTLP_ENDPOINT", None)
        stack.start_services(["notify"])

    await asyncio.to_thread(start)


async def _intake_texting(stack: Stack, completed: set[str]) -> None:
    """Intake started again with the receivers' SMS gateway, once the intake without one has handled
    the completions of `completed`: those matters are other modules', and their citizens are not
    the module's to text (nor are their numbers all mobile ones the gateway takes)."""
    assert stack.kafka is not None
    bootstrap, topic = stack.kafka.bootstrap, "dispatch.task.completed.v1"

    async def published() -> bool:
        return completed <= {event_of(r)["data"]["task_id"] for r in await read_all(bootstrap, topic)}

    await eventually(published, what="the completions on their topic")
    await eventually(lambda: group_caught_up(bootstrap, "intake", [topic]), what="intake to handle them")
    intake = stack.services["intake"]
    await _intake_as(intake, intake.env | stack.service_env("intake") | SMS_SETTINGS)


async def _intake_as(intake: ServiceProcess, env: dict[str, str]) -> None:
    """Intake started again with `env`, unless it runs with it."""
    if intake.env != env:
        intake.env = env
        await asyncio.to_thread(intake.stop)
        await asyncio.to_thread(intake.start)


def receivers_of(stack: Stack) -> Receivers:
    assert stack.receivers is not None
    return stack.receivers


async def received(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    return await asyncio.to_thread(receivers_of(stack).received)


async def deliveries(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    response = await Api(stack, "notify").call("GET", "/v1/deliveries", as_=COMMAND, params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


async def dingtalk_about(stack: Stack, task_id: str) -> list[dict[str, Any]]:
    return [m for m in (await received(stack))["dingtalk"] if task_id in m["text"]]


async def test_a_dispatched_task_reaches_its_assignees_dingtalk_robot_signed_and_their_mail(
        notify_stack: Stack) -> None:
    ticket = await file_matter(Api(notify_stack, "intake"), item_code="S001")
    task = await task_of(Api(notify_stack, "dispatch"), ticket["request_id"])
    assert task["assignee"] == "s049"
    [message] = await eventually(lambda: dingtalk_about(notify_stack, task["task_id"]), what="the robot's message")
    assert message["access_token"] == "duty-token" and message["title"] == "新任务：新生儿落户"
    mails = await eventually(lambda: _mails_about(notify_stack, task["task_id"]), what="the e-mail")
    assert [(m["to"], m["subject"]) for m in mails] == [(["s049@qinghe.example.cn"], "新任务：新生儿落户")]
    assert not [r for r in (await received(notify_stack))["refused"] if r["where"] == "dingtalk:duty-token"]


    async def logged_sent() -> set[str]:  # recorded just after the receiver took it
        log = await deliveries(notify_stack, recipient="s049", status="sent")
        channels = {d["channel"] for d in log if d["event_type"] == "dispatch.task.dispatched"}
        return channels if len(channels) >= 2 else set()

    assert await eventually(logged_sent, what="the log to say sent") == {
        "robot:321003104/duty", "email:s049@qinghe.example.cn"}


async def _mails_about(stack: Stack, task_id: str) -> list[dict[str, Any]]:
    return [m for m in (await received(stack))["email"] if task_id in m["text"]]


async def test_an_event_delivered_twice_sends_one_message(notify_stack: Stack) -> None:
    ticket = await file_matter(Api(notify_stack, "intake"), item_code="S001")
    task = await task_of(Api(notify_stack, "dispatch"), ticket["request_id"])
    await eventually(lambda: dingtalk_about(notify_stack, task["task_id"]), what="the first message")
    assert notify_stack.kafka is not None
    bootstrap = notify_stack.kafka.bootstrap
    [record] = [r for r in await read_all(bootstrap, "dispatch.task.dispatched.v1") if task["task_id"].encode() in r.value]
    # The same record again, as a producer's retry or a rewound consumer would deliver it.
    await produce(bootstrap, record.topic, record.value, record.key)
    await eventually(lambda: _duplicates_seen(notify_stack), what="notify to skip the duplicate")
    await passes_go_by(notify_stack, 'townflow_sender_passes_total{sender="notify"}')
    assert len(await dingtalk_about(notify_stack, task["task_id"])) == 1
    assert len(await _mails_about(notify_stack, task["task_id"])) == 1


async def _gauge(stack: Stack, series: str, service: str = "notify") -> float:
    """The series' value on the replica that reports the group's gauges (0: none reports it yet)."""
    for replica in stack.replicas[service]:
        async with http_client(base_url=replica.url, timeout=10) as http:
            text = (await http.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith(series + " ") and float(line.rsplit(" ", 1)[1]) > 0:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _passes(stack: Stack, series: str, service: str) -> list[float]:
    """Each replica's count of `series` (a loop's passes) on its /metrics."""
    counts = []
    for replica in stack.replicas[service]:
        async with http_client(base_url=replica.url, timeout=10) as http:
            text = (await http.get("/metrics")).text
        counts.append(next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                            if line.startswith(series + " ")), 0.0))
    return counts


async def passes_go_by(stack: Stack, series: str, service: str = "notify", passes: int = 3) -> None:
    """Until every replica's loop has made `passes` more passes: what it would have done more (a
    second message, a second digest) it has had the chance to do, waited for as a condition."""
    before = await _passes(stack, series, service)

    async def gone_by() -> bool:
        return all(now >= then + passes for now, then in zip(await _passes(stack, series, service), before, strict=True))

    await eventually(gone_by, what=f"{passes} passes of {series} on every {service} replica")


async def _duplicates_seen(stack: Stack) -> bool:
    """A notify replica's inbox skipped a redelivered dispatch (whichever replica reads its partition)."""
    for replica in stack.replicas["notify"]:
        async with http_client(base_url=replica.url, timeout=10) as http:
            text = (await http.get("/metrics")).text
        if any(line.startswith("townflow_inbox_duplicates_total") and 'topic="dispatch.task.dispatched.v1"' in line
               and not line.rstrip().endswith(" 0.0") for line in text.splitlines()):
            return True
    return False


async def test_a_receiver_down_gets_the_message_once_it_is_back_and_nothing_is_dead_lettered(
        notify_stack: Stack) -> None:
    receivers = receivers_of(notify_stack)
    receivers.stop()
    try:
        ticket = await file_matter(Api(notify_stack, "intake"), item_code="S001")
        task = await task_of(Api(notify_stack, "dispatch"), ticket["request_id"])

        both = {"robot:321003104/duty", "email:s049@qinghe.example.cn"}

        async def failing() -> list[dict[str, Any]] | None:
            # Each channel is sent by its own lease, so one may have failed twice before the other
            # has once (seen in make test): waited for until both have.
            found = [d for d in await deliveries(notify_stack, recipient="s049", status="pending")
                     if d["attempts"] >= 2 and d["last_error"]]
            return found if {d["channel"] for d in found} == both else None

        waiting = await eventually(failing, what="the deliveries on both channels to fail and wait")
        assert {d["channel"] for d in waiting} == both
        await eventually(lambda: _gauge(notify_stack, 'townflow_notify_deliveries_failing{town="321003104"}'),
                         what="the failing gauge (for an alert)")
    finally:
        receivers.start()
    [message] = await eventually(lambda: dingtalk_about(notify_stack, task["task_id"]), what="the message, later")
    assert message["title"] == "新任务：新生儿落户"
    await eventually(lambda: _mails_about(notify_stack, task["task_id"]), what="the e-mail, later")
    assert notify_stack.kafka is not None
    dead = await read_all(notify_stack.kafka.bootstrap, "dispatch.task.dispatched.v1.dlq")
    assert not [r for r in dead if task["task_id"].encode() in r.value]


async def test_a_burst_beyond_a_robots_minute_becomes_one_digest(notify_stack: Stack) -> None:
    """Notify catching up after a stop with 25 tasks for one robot: 20 messages in the minute at
    most (the receiver refuses the 21st as DingTalk does), the excess in one digest. One replica
    catches up (all 25 in one batch: a second one joining would split them across a rebalance and
    let singles trickle out first); the other starts again once they are sent."""
    first, second = notify_stack.replicas["notify"]
    for replica in (first, second):
        replica.stop()
    try:
        tickets = await asyncio.gather(*(file_matter(Api(notify_stack, "intake"), item_code="S002")
                                         for _ in range(25)))
        for ticket in tickets:
            await task_of(Api(notify_stack, "dispatch"), ticket["request_id"])
        first.start()

        async def all_sent() -> list[dict[str, Any]]:
            log = [d for d in await deliveries(notify_stack, limit=1000) if d["channel"] == "robot:321003104/burst"]
            return log if len(log) == 25 and all(d["status"] == "sent" for d in log) else []

        log = await eventually(all_sent, timeout=60, what="the burst's deliveries to be sent")
    finally:
        if not first.running:
            first.start()
        second.start()
    messages = [m for m in (await received(notify_stack))["dingtalk"] if m["access_token"] == "burst-token"]
    digests = [m for m in messages if m["title"].startswith("汇总提醒")]
    assert len(messages) <= 20 and len(digests) == 1
    folded = [d for d in log if d["in_digest"]]
    assert digests[0]["title"] == f"汇总提醒：{len(folded)} 条通知" and len(messages) - 1 + len(folded) == 25
    assert not [r for r in (await received(notify_stack))["refused"] if r["where"] == "dingtalk:burst-token"]


async def test_a_returned_task_reaches_the_command_centre_on_duty_in_their_wecom_group(notify_stack: Stack) -> None:
    ticket = await file_matter(Api(notify_stack, "intake"), item_code="S001")
    task = await task_of(Api(notify_stack, "dispatch"), ticket["request_id"])
    response = await Api(notify_stack, "dispatch").call("POST", f"/v1/tasks/{task['task_id']}/return",
                                                        as_=("s049", "staff"), json={"reason": "不属本岗职责"})
    assert response.status_code == 200, response.text

    async def wecom_about() -> list[dict[str, Any]]:
        return [m for m in (await received(notify_stack))["wecom"] if task["task_id"] in m["content"]]

    # s030 and s031 are on duty (town.yaml); neither is listed in notify.yaml: the town's default, WeCom.
    messages = await eventually(lambda: _at_least(wecom_about, 2), what="the command centre's messages")
    assert len(messages) == 2 and all("不属本岗职责" in m["content"] and m["key"] == "centre-key" for m in messages)
    log = await deliveries(notify_stack, event_id=await _returned_event_id(notify_stack, task["task_id"]))
    assert sorted(d["recipient"] for d in log) == ["s030", "s031"]


async def _at_least(read: Any, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await read()
    return found if len(found) >= count else []


async def _returned_event_id(stack: Stack, task_id: str) -> str:
    assert stack.kafka is not None
    [record] = [r for r in await read_all(stack.kafka.bootstrap, "dispatch.task.returned.v1") if task_id.encode() in r.value]
    return str(event_of(record)["id"])


async def test_a_task_redispatched_after_its_return_reaches_its_new_holder_as_redispatched(
        notify_stack: Stack) -> None:
    dispatch = Api(notify_stack, "dispatch")
    ticket = await file_matter(Api(notify_stack, "intake"), item_code="S001")
    task = await task_of(dispatch, ticket["request_id"])
    returned = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/return", as_=("s049", "staff"),
                                   json={"reason": "不属本岗职责"})
    assert returned.status_code == 200, returned.text
    redispatched = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/redispatch", as_=COMMAND,
                                       json={"assignee": "s048"})
    assert redispatched.status_code == 201, redispatched.text
    new_task = redispatched.json()["task_id"]

    async def to_s048() -> list[dict[str, Any]]:  # the station leader's signed webhook
        return [m for m in (await received(notify_stack))["webhook"] if new_task in m["text"]]

    [message] = await eventually(to_s048, what="the new holder's message")
    assert message["title"] == "改派任务：新生儿落户" and message["name"] == "police-feed"


async def test_an_unsatisfied_callback_reopens_the_task_and_its_holder_is_told(notify_stack: Stack) -> None:
    dispatch = Api(notify_stack, "dispatch")
    ticket = await file_matter(Api(notify_stack, "intake"), item_code="S001")
    task = await task_of(dispatch, ticket["request_id"])
    holder = ("s049", "staff")
    completed = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/complete", as_=holder,
                                    json={"resolution": "已办理", "reply": "已为您办理完毕。"})
    assert completed.status_code == 200, completed.text
    verified = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/verify", as_=COMMAND,
                                   json={"passed": True, "note": "核实"})
    assert verified.status_code == 200, verified.text
    called = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/callback", as_=COMMAND,
                                 json={"reached": True, "rating": "unsatisfied", "note": "材料仍未办好"})
    assert called.status_code == 200 and called.json()["status"] == "rework", called.text

    async def reopened() -> list[dict[str, Any]]:  # s049's mail (their robot may be busy with others)
        return [m for m in await _mails_about(notify_stack, task["task_id"]) if m["subject"].startswith("重办")]

    [mail] = await eventually(reopened, what="the holder's 重办 mail")
    assert mail["subject"] == "重办：新生儿落户" and "材料仍未办好" in mail["text"]


async def test_a_random_inspection_plan_reaches_each_of_its_officers_with_their_targets(notify_stack: Stack) -> None:
    targets = [f"91321003MA{secrets.token_hex(4).upper()}" for _ in range(6)]
    published = await Api(notify_stack, "enforcement").call(
        "POST", "/v1/random-plans", as_=OFFICER, json={"targets": targets, "sample_size": 3, "seed": 11})
    assert published.status_code == 201, published.text
    plan_id = str(published.json()["plan_id"])
    assert notify_stack.kafka is not None
    [record] = await eventually(lambda: _records_with(notify_stack, "enforcement.plan.published.v1", plan_id),
                                what="the plan's event")
    event = event_of(record)
    theirs: dict[str, list[str]] = {}
    for planned in event["data"]["targets"]:
        for officer in planned["officers"]:
            theirs.setdefault(officer, []).append(planned["target"])

    async def all_sent() -> list[dict[str, Any]]:
        log = await deliveries(notify_stack, event_id=str(event["id"]))
        return log if len(log) == len(theirs) and all(d["status"] == "sent" for d in log) else []

    # Each officer once, on their own channel (s026's webhook, the others the town's WeCom robot).
    log = await eventually(all_sent, timeout=90, what="each officer's plan message")
    assert sorted((d["recipient"], d["title"]) for d in log) == sorted(
        (officer, f"抽查计划：{len(t)} 个对象") for officer, t in theirs.items())


async def _records_with(stack: Stack, topic: str, needle: str) -> list[Any]:
    assert stack.kafka is not None
    return [r for r in await read_all(stack.kafka.bootstrap, topic) if needle.encode() in r.value]


async def test_extension_and_suspension_requests_reach_the_command_centre_on_duty(notify_stack: Stack) -> None:
    ticket = await file_matter(Api(notify_stack, "intake"), item_code="S001")
    task = await task_of(Api(notify_stack, "dispatch"), ticket["request_id"])
    dispatch = Api(notify_stack, "dispatch")
    holder = ("s049", "staff")
    extend = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/extend", as_=holder,
                                 json={"days": 2, "reason": "需补充材料，电话13912345678"})
    assert extend.status_code == 202, extend.text
    suspend = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/suspend", as_=holder,
                                  json={"category": "awaiting_citizen", "reason": "等群众补正材料"})
    assert suspend.status_code == 202, suspend.text
    # s030 and s031 are on duty, both on the town's default WeCom robot: one message each per request.
    # Before the supervision test here: its move of the clock three weeks on escalates every open task
    # of the stack (the session's other modules' too) at once, which fills that robot's minute. Should the minute be full all the same
    # (another order), a request's message goes folded into its digest (汇总提醒, titles only) when
    # the minute ends, so what is checked is the log (each sent, alone or folded) and the titles.
    for topic, title in (("dispatch.extension.requested.v1", "延期申请：新生儿落户"),
                         ("dispatch.suspension.requested.v1", "挂起申请：新生儿落户")):
        [event_id] = await eventually(lambda: _event_ids(notify_stack, topic, task["task_id"]),  # noqa: B023
                                      what=f"the event on {topic}")

        async def all_sent() -> list[dict[str, Any]]:
            log = await deliveries(notify_stack, event_id=event_id)  # noqa: B023
            return log if len(log) == 2 and all(d["status"] == "sent" for d in log) else []

        log = await eventually(all_sent, timeout=90, what=f"the command centre's messages of {topic}")
        assert sorted((d["recipient"], d["title"]) for d in log) == [("s030", title), ("s031", title)]
        assert [m for m in (await received(notify_stack))["wecom"] if title in m["content"]]
    alone = [m for m in (await received(notify_stack))["wecom"] if task["task_id"] in m["content"]]
    assert all("13912345678" not in m["content"] for m in alone)  # the reason left dispatch masked


async def test_supervision_climbs_the_towns_ladder_each_level_to_its_people(notify_stack: Stack) -> None:
    await set_clocks(notify_stack, "2026-11-23T10:00:00+08:00")  # Monday
    ticket = await file_matter(Api(notify_stack, "intake"), item_code="S001")
    task = await task_of(Api(notify_stack, "dispatch"), ticket["request_id"])
    await set_clocks(notify_stack, "2026-12-14T10:00:00+08:00")  # every level due: caught up at once
    assert notify_stack.kafka is not None

    async def levels() -> dict[str, str]:
        found = {event_of(r)["data"]["level"]: str(event_of(r)["id"])
                 for r in await read_all(notify_stack.kafka.bootstrap, "dispatch.task.supervised.v1")  # type: ignore[union-attr]
                 if task["task_id"].encode() in r.value}
        return found if len(found) == 3 else {}

    event_ids = await eventually(levels, what="the three levels")

    async def told(level: str) -> set[str]:
        return {d["recipient"] for d in await deliveries(notify_stack, event_id=event_ids[level])}

    # The post (household) is the police station's, led by s048; s030 and s031 are on duty, s000 is secretary.
    assert await eventually(lambda: told("reminder"), what="the reminder's people") == {"s049"}
    assert await eventually(lambda: told("overdue"), what="the overdue notice's people") == {"s049", "s048"}
    # 60 s: the escalation is the third event of the clock's move through two notify replicas, and on a
    # loaded machine (make test's three lanes) its people were not recorded within 30 s once.
    assert await eventually(lambda: _at_least_people(told, "escalated", 5), timeout=60,
                            what="the escalation's people") == {
        "s049", "s048", "s030", "s031", "s000"}

    async def reminders() -> list[dict[str, Any]]:
        return [m for m in await dingtalk_about(notify_stack, task["task_id"]) if m["title"].startswith("催办提醒")]

    [reminder] = await eventually(reminders, what="the reminder on the assignee's robot")
    assert (reminder["access_token"], reminder["title"]) == ("duty-token", "催办提醒：新生儿落户")

    async def to_the_leader() -> list[str]:  # the station leader's signed webhook (checked by the receiver)
        titles = [m["title"] for m in (await received(notify_stack))["webhook"] if task["task_id"] in m["text"]]
        return sorted(titles) if len(titles) >= 2 else []

    assert await eventually(to_the_leader, what="the leader's webhook") == ["升级督办：新生儿落户", "已超期：新生儿落户"]


async def _at_least_people(told: Any, level: str, count: int) -> set[str]:
    found: set[str] = await told(level)
    return found if len(found) >= count else set()



# --- citizens' SMS from intake (issue #31 item 3) ---------------------------------------------------
# Each test sets the town's clock (10:00 on a Monday, or 22:00 for quiet hours); conftest's
# `_clocks_as_found` puts every clock back after it.
DAY, NIGHT = "2026-12-07T10:00:00+08:00", "2026-12-07T22:00:00+08:00"


def a_phone() -> str:
    return f"139{secrets.randbelow(10**8):08d}"


async def file_for(stack: Stack, phone: str, **overrides: Any) -> dict[str, Any]:
    return await file_matter(Api(stack, "intake"), citizen={"name": "测试群众", "phone": phone}, **overrides)


async def texts_to(stack: Stack, phone: str, count: int = 1) -> list[dict[str, Any]]:
    found = [m for m in (await received(stack))["sms"] if m["phone"] == phone]
    return found if len(found) >= count else []


async def sms_log(stack: Stack, ticket_no: str) -> list[dict[str, Any]]:
    response = await Api(stack, "intake").call("GET", f"/v1/requests/{ticket_no}/sms", as_=CLERK)
    assert response.status_code == 200, response.text
    return list(response.json())


async def test_a_filing_texts_the_citizen_the_ticket_the_code_and_the_status_page(notify_stack: Stack) -> None:
    await set_clocks(notify_stack, DAY)
    phone = a_phone()
    ticket = await file_for(notify_stack, "+86 " + phone[:3] + "-" + phone[3:7] + "-" + phone[7:])  # as typed
    [text] = await eventually(lambda: texts_to(notify_stack, phone), what="the filing's SMS at the gateway")
    assert text["template"] == "SMS_TF_FILED" and text["sign_name"] == "青禾镇人民政府"
    assert text["params"] == {"ticket": ticket["ticket_no"], "code": ticket["access_code"],
                              "url": f"https://zwt.example.cn/status?ticket={ticket['ticket_no']}"}
    [logged] = await eventually(lambda: _sent(notify_stack, ticket["ticket_no"]), what="the log to say sent")
    assert logged["kind"] == "filed" and logged["attempts"] == 1
    assert not [r for r in (await received(notify_stack))["refused"] if r["where"] == "sms"]


async def _sent(stack: Stack, ticket_no: str, count: int = 1) -> list[dict[str, Any]]:
    sent = [m for m in await sms_log(stack, ticket_no) if m["status"] == "sent"]
    return sent if len(sent) >= count else []


async def test_completion_texts_the_reply_and_a_day_later_the_callback_invitation(notify_stack: Stack) -> None:
    await set_clocks(notify_stack, DAY)
    phone = a_phone()
    ticket = await file_for(notify_stack, phone, item_code="S001")
    task = await task_of(Api(notify_stack, "dispatch"), ticket["request_id"])
    holder = (task["assignee"], "staff")
    dispatch = Api(notify_stack, "dispatch")
    assert (await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/accept", as_=holder)).status_code == 200
    response = await dispatch.call("POST", f"/v1/tasks/{task['task_id']}/complete", as_=holder,
                                   json={"resolution": "办结", "reply": "户口已登记，请携带身份证到派出所窗口领取户口簿。"})
    assert response.status_code == 200, response.text
    texts = await eventually(lambda: texts_to(notify_stack, phone, 2), what="the completion's SMS")
    assert [t["template"] for t in texts] == ["SMS_TF_FILED", "SMS_TF_COMPLETED"]
    assert texts[1]["params"]["reply"] == "户口已登记，请携带身份证到派出所窗口领取户口簿。"
    callback = [m for m in await sms_log(notify_stack, ticket["ticket_no"]) if m["kind"] == "callback"]
    assert [(m["status"], m["hold_until"]) for m in callback] == [("pending", "2026-12-08T10:00:00+08:00")]
    await advance_clocks(notify_stack, "PT25H")  # the next day, 11:00
    texts = await eventually(lambda: texts_to(notify_stack, phone, 3), what="the callback invitation")
    assert texts[2]["template"] == "SMS_TF_CALLBACK" and texts[2]["params"]["url"].endswith(ticket["ticket_no"])


async def test_a_citizen_who_opted_out_is_sent_nothing(notify_stack: Stack) -> None:
    await set_clocks(notify_stack, DAY)
    quiet, other = a_phone(), a_phone()
    ticket = await file_for(notify_stack, quiet, sms_opt_out=True)
    await file_for(notify_stack, other)
    await eventually(lambda: texts_to(notify_stack, other), what="the next filing's SMS (sent after)")
    assert await texts_to(notify_stack, quiet) == [] and await sms_log(notify_stack, ticket["ticket_no"]) == []


async def test_quiet_hours_hold_a_yellow_matters_sms_until_eight_and_not_a_red_ones(notify_stack: Stack) -> None:
    await set_clocks(notify_stack, NIGHT)
    yellow, red = a_phone(), a_phone()
    held = await file_for(notify_stack, yellow)
    await file_for(notify_stack, red, colour="red", location="青禾村七组")
    await eventually(lambda: texts_to(notify_stack, red), what="the red matter's SMS at 22:00")

    async def waiting() -> list[dict[str, Any]]:
        return [m for m in await sms_log(notify_stack, held["ticket_no"]) if m["hold_until"] is not None]

    [logged] = await eventually(waiting, what="the yellow matter's SMS held")
    assert (logged["status"], logged["hold_until"], logged["attempts"]) == ("pending", "2026-12-08T08:00:00+08:00", 0)
    assert await texts_to(notify_stack, yellow) == []
    await set_clocks(notify_stack, "2026-12-08T08:00:00+08:00")
    await eventually(lambda: texts_to(notify_stack, yellow), what="the held SMS at 08:00")


async def test_a_gateway_down_gets_the_sms_once_it_is_back_and_only_once(notify_stack: Stack) -> None:
    await set_clocks(notify_stack, DAY)
    receivers = receivers_of(notify_stack)
    phone = a_phone()
    receivers.stop()
    try:
        ticket = await file_for(notify_stack, phone)

        async def failing() -> list[dict[str, Any]]:
            return [m for m in await sms_log(notify_stack, ticket["ticket_no"])
                    if m["status"] == "pending" and m["attempts"] >= 2 and "gateway unavailable" in (m["last_error"] or "")]

        await eventually(failing, what="the SMS to fail twice and wait")
        await eventually(lambda: _gauge(notify_stack, 'townflow_intake_sms_failing{town="321003104"}', "intake"),
                         what="intake's failing gauge (for TownflowIntakeSmsWaiting)")
    finally:
        receivers.start()
    await eventually(lambda: _sent(notify_stack, ticket["ticket_no"]), what="the SMS, later")
    await passes_go_by(notify_stack, 'townflow_sender_passes_total{sender="sms"}', "intake")
    assert len(await texts_to(notify_stack, phone)) == 1


# --- staff: a holder's requests, the daily digest, a case near its limit (issue #31) ------------------
async def _wecom_about(stack: Stack, task_id: str, title: str) -> list[dict[str, Any]]:
    return [m for m in (await received(stack))["wecom"] if task_id in m["content"] and title in m["content"]]


async def _event_ids(stack: Stack, topic: str, needle: str) -> list[str]:
    assert stack.kafka is not None
    return [str(event_of(r)["id"]) for r in await read_all(stack.kafka.bootstrap, topic) if needle.encode() in r.value]

async def test_the_daily_digest_lists_a_persons_open_tasks_once_a_day_on_two_replicas(notify_stack: Stack) -> None:
    ticket = await file_matter(Api(notify_stack, "intake"), item_code="S010")
    task = await task_of(Api(notify_stack, "dispatch"), ticket["request_id"])
    assert task["assignee"] == "s012"

    async def digests() -> list[dict[str, Any]]:
        return [m for m in (await received(notify_stack))["email"]
                if m["to"] == ["s012@qinghe.example.cn"] and m["subject"].startswith("每日待办")]

    mails = await eventually(digests, what="s012's digest")
    respond_by = task["respond_by"][:16].replace("T", " ")  # the town's time, as dispatch answers it
    assert all(task["task_id"] in m["text"] and "【待签收】就业失业登记" in m["text"] for m in mails)
    assert all(f"签收时限 {respond_by}" in m["text"] for m in mails)
    await passes_go_by(notify_stack, "townflow_notify_digest_passes_total")
    # One digest a day: the module's other tests set the first notify replica's test clock only, so
    # the two replicas may see two days (the other one's is the real one): never two of one day.
    days = [DIGEST_DAY.search(m["text"]).group(1) for m in await digests()]  # type: ignore[union-attr]
    assert len(days) == len(set(days)) <= 2, days
    log = [d for d in await deliveries(notify_stack, recipient="s012") if d["event_type"] == "notify.digest.daily"]
    assert [(d["channel"], d["status"]) for d in log] == [("email:s012@qinghe.example.cn", "sent")] * len(days)


DIGEST_DAY = re.compile(r"截至 (\d{4}-\d{2}-\d{2}) ")


async def test_a_case_near_its_legal_limit_and_past_it_reaches_its_officers(notify_stack: Stack) -> None:
    """Last in the module: it moves the clocks 91 days on (the case's decision limit is 90 days)."""
    await set_clocks(notify_stack, "2027-03-01T09:00:00+08:00")
    enforcement = Api(notify_stack, "enforcement")
    target = f"91321003MA{secrets.token_hex(4).upper()}"
    ticket = await file_matter(Api(notify_stack, "intake"), item_code="E001", target=target)
    task = await task_of(Api(notify_stack, "dispatch"), ticket["request_id"])

    async def planned() -> dict[str, Any] | None:
        rows = (await enforcement.call("GET", "/v1/inspections", as_=OFFICER,
                                       params={"target": target, "status": "planned"})).json()
        return next((r for r in rows if r["needs"]), None)

    inspection = await eventually(planned, what="the planned inspection")
    path = f"/v1/inspections/{inspection['inspection_id']}"
    assert (await enforcement.call("POST", f"{path}/start", as_=OFFICER, json={"officers": OFFICERS})).status_code == 200
    result = await enforcement.call("POST", f"{path}/result", as_=OFFICER, json={
        "officers": OFFICERS, "present_units": inspection["units"],
        "findings": [{"task_id": task["task_id"], "outcome": "violation"}]})
    assert result.status_code == 200, result.text
    [case_id] = [str(c) for c in result.json()["cases"]]

    async def to_s026(title: str) -> list[dict[str, Any]]:
        return [m for m in (await received(notify_stack))["webhook"] if case_id in m["text"] and m["title"].startswith(title)]

    await set_clocks(notify_stack, "2027-05-01T09:00:00+08:00")  # day 61: near the limit
    [near] = await eventually(lambda: to_s026("案件临近办案期限"), what="the officer's warning")
    assert "占道经营查处" in near["title"] and "2027-05-30 09:00" in near["text"]  # the limit, in the town's time
    await set_clocks(notify_stack, "2027-06-01T09:00:00+08:00")  # day 92: past it
    await eventually(lambda: to_s026("案件已超办案期限"), what="the officer's overdue notice")

    async def told() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for event_id in await _event_ids(notify_stack, "enforcement.case.flagged.v1", case_id):
            for d in await deliveries(notify_stack, event_id=event_id):
                found.setdefault(d["title"].split("：")[0], set()).add(d["recipient"])
        return found if len(found) == 2 and all(len(r) == 2 for r in found.values()) else {}

    assert await eventually(told, what="both officers told of both flags") == {
        "案件临近办案期限": {"s026", "s027"}, "案件已超办案期限": {"s026", "s027"}}
    assert len(await to_s026("案件临近办案期限")) == 1  # one message per case and flag


OFFICER = ("s026", "officer")
OFFICERS = ["s026", "s027"]
