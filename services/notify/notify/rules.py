"""Who is told what (issue #31), and how a robot's per-minute limit is kept: pure functions, no I/O,
no clock reads.

- a task dispatched (new, or redispatched after a return) → its assignee;
- supervision by level: reminder → the assignee; overdue → the assignee and the leader of the
  post's module; escalated → also the command centre on duty and the party secretary;
- a task returned → the command centre on duty;
- a task reopened by an unsatisfied callback (重办) → its assignee;
- a random inspection plan published → each officer, with the targets they visit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from townflow_shared.events import (
    PlanPublishedData,
    SupervisionLevel,
    TaskCallbackData,
    TaskDispatchedData,
    TaskReturnedData,
    TaskSupervisedData,
)
from townflow_shared.town import Town

from .contacts import TownContacts

COLOUR = {"red": "红", "orange": "橙", "yellow": "黄"}
LEVEL = {"reminder": "催办提醒", "overdue": "已超期", "escalated": "升级督办"}
# A digest lists this many of the notices it folds by title; the rest are counted.
DIGEST_LISTED = 30


@dataclass(frozen=True)
class Notice:
    """One message to one person: a title and a Markdown text (both robots render Markdown)."""

    recipient: str  # a staff id
    title: str
    text: str


@dataclass(frozen=True)
class KnownTask:
    """What notify remembers of a dispatched task: who holds it and what it is, for the later
    events (supervision, a return) that name only the task."""

    task_id: str
    assignee: str
    post: str
    item_code: str
    village: str
    location: str


@dataclass(frozen=True)
class Delivery:
    """A notice on one channel: one message per (event, recipient, channel)."""

    recipient: str
    channel: str
    title: str
    text: str


def _name(town: Town, staff_id: str) -> str:
    person = town.staff.get(staff_id)
    return f"{person.name}（{staff_id}）" if person else staff_id


def _local(town: Town, moment: datetime) -> str:
    return moment.astimezone(town.calendar.tz).strftime("%Y-%m-%d %H:%M")


def _item(town: Town, code: str) -> str:
    item = town.catalog.get(code)
    return item.name if item else code


def _village(town: Town, code: str) -> str:
    village = town.villages.get(code)
    return village.name if village else code


def known_task(data: TaskDispatchedData) -> KnownTask:
    return KnownTask(data.task_id, data.assignee, data.post, data.item_code, data.village, data.location)


def dispatched_notices(data: TaskDispatchedData, town: Town) -> list[Notice]:
    """To the assignee: a new task, or one redispatched to them after a return (改派)."""
    what = "改派任务" if data.redispatch_of else "新任务"
    title = f"{what}：{_item(town, data.item_code)}"
    text = "\n".join([
        f"### {title}（{COLOUR[data.colour]}色）",
        f"- 地点：{_village(town, data.village)} {data.location}",
        *([f"- 对象：{data.target}"] if data.target else []),
        f"- 签收时限：{_local(town, data.respond_by)}",
        f"- 办结时限：{_local(town, data.resolve_by)}",
        f"- 任务号：{data.task_id}",
        "",
        "请登录镇务通签收。",
    ])
    return [Notice(data.assignee, title, text)]


def supervision_recipients(level: SupervisionLevel, task: KnownTask | None, notified: Sequence[str],
                           town: Town) -> list[str]:
    """Who a supervision level reaches, each once, in ladder order. Without the task in notify's
    memory (dispatched before notify ran) the people dispatch named in the event."""
    if task is None:
        return list(dict.fromkeys(notified))
    post = town.posts.get(task.post)
    leader = town.modules[post.module].leader if post and post.module in town.modules else None
    ladder = [task.assignee]
    if level in ("overdue", "escalated") and leader:
        ladder.append(leader)
    if level == "escalated":
        ladder += [*town.info.command_centre_duty, town.info.party_secretary]
    return list(dict.fromkeys(ladder))


def supervised_notices(data: TaskSupervisedData, task: KnownTask | None, town: Town) -> list[Notice]:
    title = f"{LEVEL[data.level]}：{_item(town, task.item_code) if task else '任务'}"
    lines = [f"### {title}"]
    if task is not None:
        lines += [f"- 承办人：{_name(town, task.assignee)}",
                  f"- 地点：{_village(town, task.village)} {task.location}"]
    lines += [f"- 任务号：{data.task_id}", f"- 时间：{_local(town, data.at)}"]
    text = "\n".join(lines)
    return [Notice(r, title, text) for r in supervision_recipients(data.level, task, data.notified, town)]


def returned_notices(data: TaskReturnedData, task: KnownTask | None, town: Town) -> list[Notice]:
    """To the command centre on duty: a returned task waits for them to redispatch it."""
    title = f"任务退回：{_item(town, task.item_code) if task else data.task_id}"
    text = "\n".join([
        f"### {title}",
        f"- 退回人：{_name(town, data.by)}",
        f"- 理由：{data.reason}",
        f"- 任务号：{data.task_id}",
        "",
        "请在镇务通改派。",
    ])
    return [Notice(r, title, text) for r in dict.fromkeys(town.info.command_centre_duty)]


def reopened_notices(data: TaskCallbackData, task: KnownTask | None, town: Town) -> list[Notice]:
    """重办: an unsatisfied callback reopens the task for the same assignee. Only a task notify saw
    dispatched has one it knows of (the callback names none)."""
    if not data.reopened or task is None:
        return []
    title = f"重办：{_item(town, task.item_code)}"
    text = "\n".join([
        f"### {title}",
        f"- 地点：{_village(town, task.village)} {task.location}",
        f"- 回访意见：{data.note or '不满意'}",
        *([f"- 办结时限：{_local(town, data.resolve_by)}"] if data.resolve_by else []),
        f"- 任务号：{data.task_id}",
    ])
    return [Notice(task.assignee, title, text)]


def plan_notices(data: PlanPublishedData, town: Town) -> list[Notice]:
    """To each officer of a random inspection plan (双随机), the targets they visit."""
    targets: dict[str, list[str]] = {}
    for planned in data.targets:
        for officer in planned.officers:
            targets.setdefault(officer, []).append(planned.target)
    notices = []
    for officer, theirs in targets.items():
        title = f"抽查计划：{len(theirs)} 个对象"
        text = "\n".join([f"### {title}", *(f"- {t}" for t in theirs), "", f"计划号：{data.plan_id}"])
        notices.append(Notice(officer, title, text))
    return notices


def deliveries_of(notices: Iterable[Notice], contacts: TownContacts, town_code: str) -> list[Delivery]:
    """Each notice on each of its recipient's channels; a person with none is not told."""
    return [Delivery(n.recipient, channel, n.title, n.text)
            for n in notices for channel in contacts.channels_of(n.recipient, town_code)]


def retry_delay(attempts: int, base_seconds: float, max_seconds: float) -> float:
    """After the `attempts`-th failure: base, doubling, at most max."""
    return min(max_seconds, base_seconds * 2 ** max(0, attempts - 1))


@dataclass(frozen=True)
class RobotSends:
    singles: list[int]  # deliveries sent one message each
    folded: list[int]   # deliveries folded into one digest message (empty: no digest)


def robot_sends(due: Sequence[int], sent_in_window: int, per_minute: int) -> RobotSends:
    """What a robot is sent now, its limit kept: `sent_in_window` messages went to it in the last
    minute. All due deliveries fit: each its own message. More: the budget less one in their own
    messages and the rest folded into one digest, so nothing waits for later minutes. None fits:
    nothing now."""
    budget = per_minute - sent_in_window
    if budget <= 0 or not due:
        return RobotSends([], [])
    if len(due) <= budget:
        return RobotSends(list(due), [])
    return RobotSends(list(due[:budget - 1]), list(due[budget - 1:]))


def digest(titles: Sequence[str]) -> tuple[str, str]:
    """The one message that carries what exceeded a robot's limit: its title and text."""
    title = f"汇总提醒：{len(titles)} 条通知"
    listed = [f"- {t}" for t in titles[:DIGEST_LISTED]]
    more = [f"- 另有 {len(titles) - DIGEST_LISTED} 条，请登录镇务通查看"] if len(titles) > DIGEST_LISTED else []
    return title, "\n".join([f"### {title}", "超出机器人每分钟的发送上限，以下通知合并为一条：", *listed, *more])
