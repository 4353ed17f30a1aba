"""Who is told what (issue #31), and how a robot's per-minute limit is kept: pure functions, no I/O,
no clock reads.

- a task dispatched (new, or redispatched after a return) → its assignee;
- supervision by level: reminder → the assignee; overdue → the assignee and the leader of the
  post's module; escalated → also the command centre on duty and the party secretary;
- a task returned, an extension or a suspension asked for → the command centre on duty;
- a task reopened by an unsatisfied callback (重办) → its assignee;
- a random inspection plan published → each officer, with the targets they visit;
- a case near its legal decision limit (day 60) or past it → the officers of its inspection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from townflow_shared.events import (
    CaseFlaggedData,
    ExtensionRequestedData,
    PlanPublishedData,
    SupervisionLevel,
    SuspensionRequestedData,
    TaskCallbackData,
    TaskDispatchedData,
    TaskReturnedData,
    TaskSupervisedData,
)
from townflow_shared.town import Town

from .contacts import TownContacts

COLOUR = {"red": "红", "orange": "橙", "yellow": "黄"}
LEVEL = {"reminder": "催办提醒", "overdue": "已超期", "escalated": "升级督办"}
SUSPENSION_CATEGORY = {"awaiting_citizen": "等待申请人补正材料", "awaiting_third_party": "等待其他单位答复"}
CASE_FLAG = {"warning": "案件临近办案期限", "overdue": "案件已超办案期限"}
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
    events (supervision, a return) that name only the task; its state and deadlines, kept by the
    task's later events, for the daily digest."""

    task_id: str
    assignee: str
    post: str
    item_code: str
    village: str
    location: str
    state: str = "dispatched"  # dispatched (待签收), accepted, rework, suspended, closed
    respond_by: datetime | None = None
    resolve_by: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    """A notice on one channel: one message per (event, recipient, channel)."""

    recipient: str
    channel: str
    title: str
    text: str


def staff_name(town: Town, staff_id: str) -> str:
    person = town.staff.get(staff_id)
    return f"{person.name}（{staff_id}）" if person else staff_id


def local_time(town: Town, moment: datetime) -> str:
    return moment.astimezone(town.calendar.tz).strftime("%Y-%m-%d %H:%M")


def item_name(town: Town, code: str) -> str:
    item = town.catalog.get(code)
    return item.name if item else code


def village_name(town: Town, code: str) -> str:
    village = town.villages.get(code)
    return village.name if village else code


def known_task(data: TaskDispatchedData) -> KnownTask:
    return KnownTask(data.task_id, data.assignee, data.post, data.item_code, data.village, data.location,
                     "dispatched", data.respond_by, data.resolve_by)


def state_after(status: str) -> str:
    """A task's state in notify's memory for a status dispatch names (a merge undone, a resumption):
    a status it does not know, or one that leaves the holder nothing to do, is closed."""
    return status if status in ("dispatched", "accepted", "rework") else "closed"


def dispatched_notices(data: TaskDispatchedData, town: Town) -> list[Notice]:
    """To the assignee: a new task, or one redispatched to them after a return (改派)."""
    what = "改派任务" if data.redispatch_of else "新任务"
    title = f"{what}：{item_name(town, data.item_code)}"
    text = "\n".join([
        f"### {title}（{COLOUR[data.colour]}色）",
        f"- 地点：{village_name(town, data.village)} {data.location}",
        *([f"- 对象：{data.target}"] if data.target else []),
        f"- 签收时限：{local_time(town, data.respond_by)}",
        f"- 办结时限：{local_time(town, data.resolve_by)}",
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
    title = f"{LEVEL[data.level]}：{item_name(town, task.item_code) if task else '任务'}"
    lines = [f"### {title}"]
    if task is not None:
        lines += [f"- 承办人：{staff_name(town, task.assignee)}",
                  f"- 地点：{village_name(town, task.village)} {task.location}"]
    lines += [f"- 任务号：{data.task_id}", f"- 时间：{local_time(town, data.at)}"]
    text = "\n".join(lines)
    return [Notice(r, title, text) for r in supervision_recipients(data.level, task, data.notified, town)]


def returned_notices(data: TaskReturnedData, task: KnownTask | None, town: Town) -> list[Notice]:
    """To the command centre on duty: a returned task waits for them to redispatch it."""
    title = f"任务退回：{item_name(town, task.item_code) if task else data.task_id}"
    text = "\n".join([
        f"### {title}",
        f"- 退回人：{staff_name(town, data.by)}",
        f"- 理由：{data.reason}",
        f"- 任务号：{data.task_id}",
        "",
        "请在镇务通改派。",
    ])
    return [Notice(r, title, text) for r in dict.fromkeys(town.info.command_centre_duty)]


def _to_command_centre(town: Town, title: str, lines: Sequence[str]) -> list[Notice]:
    text = "\n".join([f"### {title}", *lines])
    return [Notice(r, title, text) for r in dict.fromkeys(town.info.command_centre_duty)]


def extension_requested_notices(data: ExtensionRequestedData, task: KnownTask | None, town: Town) -> list[Notice]:
    """To the command centre on duty: a holder asks for more days; approve or refuse it."""
    return _to_command_centre(town, f"延期申请：{item_name(town, task.item_code) if task else data.task_id}", [
        f"- 申请人：{staff_name(town, data.requested_by)}",
        f"- 延期：{data.days} 个工作日",
        f"- 理由：{data.reason}",
        f"- 现办结时限：{local_time(town, data.resolve_by)}",
        f"- 任务号：{data.task_id}",
        "",
        "请在镇务通审批。",
    ])


def suspension_requested_notices(data: SuspensionRequestedData, task: KnownTask | None,
                                 town: Town) -> list[Notice]:
    """To the command centre on duty: a holder asks to suspend (挂起) a task; approve or refuse it."""
    return _to_command_centre(town, f"挂起申请：{item_name(town, task.item_code) if task else data.task_id}", [
        f"- 申请人：{staff_name(town, data.requested_by)}",
        f"- 类别：{SUSPENSION_CATEGORY[data.category]}",
        f"- 理由：{data.reason}",
        f"- 现办结时限：{local_time(town, data.resolve_by)}",
        f"- 任务号：{data.task_id}",
        "",
        "请在镇务通审批。",
    ])


def case_flagged_notices(data: CaseFlaggedData, town: Town) -> list[Notice]:
    """To the officers of the case's inspection: its decision limit is near (the town's warning
    day), or passed. A case whose inspection named none tells the enforcement module's leader."""
    title = f"{CASE_FLAG[data.flag]}：{item_name(town, data.item_code)}"
    text = "\n".join([
        f"### {title}",
        f"- 对象：{data.target}",
        f"- 立案时间：{local_time(town, data.filed_at)}",
        f"- 作出决定期限：{local_time(town, data.decision_due)}{'（已延长）' if data.extended else ''}",
        f"- 案件号：{data.case_id}",
        "",
        "请及时作出处理决定。" if data.flag == "warning" else "已超过法定期限，请立即处理并说明原因。",
    ])
    return [Notice(r, title, text) for r in case_recipients(data, town)]


def case_recipients(data: CaseFlaggedData, town: Town) -> list[str]:
    """The officers of the case's inspection, each once; none named: the enforcement module's leader."""
    officers = data.officers or [m.leader for m in town.modules.values() if m.kind == "enforcement"]
    return list(dict.fromkeys(officers))


def reopened_notices(data: TaskCallbackData, task: KnownTask | None, town: Town) -> list[Notice]:
    """重办: an unsatisfied callback reopens the task for the same assignee. Only a task notify saw
    dispatched has one it knows of (the callback names none)."""
    if not data.reopened or task is None:
        return []
    title = f"重办：{item_name(town, task.item_code)}"
    text = "\n".join([
        f"### {title}",
        f"- 地点：{village_name(town, task.village)} {task.location}",
        f"- 回访意见：{data.note or '不满意'}",
        *([f"- 办结时限：{local_time(town, data.resolve_by)}"] if data.resolve_by else []),
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


def robot_sends(due: Sequence[int], sent_in_window: int, per_minute: int | None) -> RobotSends:
    """What a robot is sent now, its limit kept: `sent_in_window` messages went to it in the last
    minute. All due deliveries fit: each its own message. More: the budget less one in their own
    messages and the rest folded into one digest, so nothing waits for later minutes. None fits:
    nothing now. No limit (`per_minute` None): each its own message."""
    if per_minute is None:
        return RobotSends(list(due), [])
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
