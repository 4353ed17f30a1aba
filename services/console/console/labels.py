"""The services' codes in the words a town's staff use on screen: one table per kind of code.
The town's own codes (items, villages, staff, units) are names.py's."""

import re
from collections.abc import Mapping
from typing import Any

COLOURS = {"red": "红", "orange": "橙", "yellow": "黄"}
TASK_STATUSES = {
    "dispatched": "待签收", "accepted": "办理中", "completed": "待核查", "closed": "已结案",
    "returned": "已退回", "redispatched": "已改派", "rework": "返工", "merged": "已合并",
    "suspended": "已挂起",
}
REQUEST_STATUSES = {
    "filed": "已受理", "dispatched": "已派单", "accepted": "办理中", "returned": "退回改派中",
    "supervised": "督办中", "inspected": "已检查", "completed": "已办结", "closed": "已办结",
    "verified": "已核查", "rated": "已评价", "rework": "返工办理中", "in_progress": "办理中",
    "reopened": "重办中",
    "suspended": "暂停办理",
}
TIMELINE_STEPS = {
    "filed": "受理", "dispatched": "派单", "accepted": "签收", "returned": "退回", "supervised": "督办",
    "inspected": "现场检查", "completed": "办结", "verified": "核查", "rated": "评价", "extended": "延期",
    "merged": "合并办理", "unmerged": "撤销合并", "callback": "回访",
    "suspended": "暂停办理", "resumed": "恢复办理",
}
# Where a citizen's matter is (intake's `stage`), as the status page tells the citizen.
CITIZEN_STAGES = {"received": "已受理，正在分派承办部门", "handling": "正在办理", "answered": "已办结并答复，待核查",
                  "closed": "已办结", "suspended": "暂停办理，等待补正材料或其他单位答复"}
DUPLICATE_REASONS = {"same_target": "同一检查对象", "nearby": "同一事项、位置相近",
                     "similar_location": "同一事项、同村、地点相近"}
CHANNELS = {
    "window": "窗口", "proxy": "代办员代办", "village_station": "村便民服务站", "hotline": "热线",
    "online": "网上", "self_service": "自助终端",
}
RATINGS = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
OUTCOMES = {
    "compliant": "合规", "rectify": "限期整改", "violation": "违法立案", "not_delegated": "移交县级部门",
    "criminal": "移送司法机关",
}
CASE_STEPS = {
    "filed": "立案", "investigated": "调查取证", "reviewed": "法制审核", "decided": "作出决定",
    "closed": "结案", "transferred": "移送",
}
INSPECTION_STATUSES = {"planned": "待检查", "started": "检查中", "done": "已完成"}
ALERT_LEVELS = {"reminder": "提醒", "talk": "约谈", "accountability": "问责"}
SUPERVISION_LEVELS = {"reminder": "提醒", "overdue": "超期", "escalated": "升级督办"}
RATES = {"response": "响应率", "resolution": "办结率", "satisfaction": "满意率"}
# Every rate appraisal gives a subject (its scores' `rates`), named as the monthly bulletin names them.
APPRAISAL_RATES = RATES | {"rework": "返工率", "extension": "延期率", "reopen": "重办率", "suspension": "挂起率"}
SUBJECT_TYPES = {"staff": "个人", "module": "模块", "village": "村（社区）", "seconded_unit": "派驻机构"}
ROLES = {
    "clerk": "窗口人员", "proxy_agent": "代办员", "village_station": "村便民服务站", "command_centre": "指挥中心",
    "staff": "岗位人员", "module_leader": "模块长", "officer": "执法人员", "appraisal_admin": "绩效督查室",
    "admin": "管理员", "county_reader": "县级部门", "county_admin": "县级管理员", "auditor": "审计员",
}
# The audit trail's actions (townflow_shared.audit.action_of names them after the services' routes;
# console/tests/test_audit_page.py holds this table to every route that changes state).
AUDIT_ACTIONS = {
    "request.create": "受理登记", "request.rating": "群众评价", "request.merge": "合并重复件",
    "request.unmerge": "撤销合并", "matter.citizen_read": "查看群众姓名电话", "request.citizen_read": "查看群众姓名电话（办理进度）",
    "task.accept": "签收", "task.complete": "办结", "task.return": "退回", "task.redispatch": "改派",
    "task.extend": "申请延期", "task.extension.approve": "批准延期", "task.extension.refuse": "不批准延期",
    "task.suspend": "申请挂起", "task.suspension.approve": "批准挂起", "task.suspension.refuse": "不批准挂起",
    "task.resume": "恢复办理", "task.verify": "核查", "task.callback": "回访", "staff.off_post": "离岗登记",
    "inspection.start": "开始检查", "inspection.result": "录入检查结果", "case.steps": "案件办理",
    "case.extension": "案件延期", "random_plan.create": "双随机抽查", "seconded_score.create": "派驻机构评分",
    "what_if.run": "考核规则试算", "rehearsal.run": "改革预演", "admin.clock": "调整测试时钟", "audit.prune": "清理过期审计记录",
    # the console's own (session_audit.py; console/tests/test_audit_page.py holds them to its actions)
    "session.sign_in": "登录（本地账号）", "session.oidc_sign_in": "登录（统一身份认证）",
    "session.account_lock": "账号因登录失败暂停登录", "session.address_lock": "地址因登录失败暂停登录",
    "session.sign_out": "退出登录", "session.idle_timeout": "会话闲置超时结束",
    "session.lifetime_end": "会话到达最长时长结束", "session.provider_end": "统一身份认证会话已结束",
    # Photos (issue #29): a filing with photos, and each read of a photo.
    "filing.create": "带照片受理登记", "attachment.read": "查看照片",
    # Evidence (执法全过程记录): recorded on an inspection or a case's step, and each read of it.
    "inspection.evidence": "记录检查证据", "case.evidence": "记录案件证据", "evidence.read": "查看执法证据",
}
AUDIT_TARGETS = {
    "request": "受理件", "task": "任务", "staff": "人员", "inspection": "检查", "case": "案件",
    "random_plan": "抽查计划", "seconded_score": "派驻机构评分", "what_if": "试算", "rehearsal": "改革预演",
    "admin": "系统",
    "audit_log": "审计记录", "account": "账号", "address": "客户端地址", "attachment": "照片",
    "filing": "受理件（带照片）",
}
# Which system a record is of: the four services' and the console's own chain.
AUDIT_SYSTEMS = {"intake": "受理", "dispatch": "派单", "enforcement": "执法", "appraisal": "考核", "console": "工作台"}
AUDIT_OUTCOMES = {
    "ok": "成功", "error": "出错",
    # a refused sign-in's, in the console's chain (session_audit.py)
    "sign_in.wrong_password": "口令错误", "sign_in.unknown_account": "账号不存在",
    "sign_in.account_waiting": "账号暂停登录中，已拒绝", "sign_in.address_waiting": "地址暂停登录中，已拒绝",
    "sign_in.oidc_refused": "统一身份认证未通过", "sign_in.oidc_unavailable": "统一身份认证无法连接",
}  # any other outcome is a refusal's code: 已拒绝


def audit_outcome(outcome: str) -> str:
    return AUDIT_OUTCOMES.get(outcome, "已拒绝")
# When a photo was taken (issue #29; a `stage` of intake's status view and of dispatch's task read):
# at filing, by the task's holder on completion (处置后照片), by the command centre at the closure check.
def cell_name(village: str, cell: str) -> str:
    """A grid cell's name as the console says it: its village's name and the cell's own 3 digits
    (the last of its 15-digit code), `青禾村网格003`; the GeoJSON gives cells codes, not names."""
    return f"{village}网格{cell[-3:]}"


PHOTO_STAGES = {"filed": "反映问题时的照片", "after": "办理后的照片", "check": "核查时的照片"}
TASK_KINDS = {"service": "服务事项", "enforcement": "执法事项", "joint_visit": "联合踏勘"}
ASSIGNED_VIA = {"A": "A岗", "B": "B岗", "leader": "模块长", "command_centre": "指挥中心指派"}
EXTENSION_STATUSES = {"pending": "待审批", "approved": "已批准", "refused": "未批准"}
# 挂起: why a task waits (the citizen reads this, never the holder's words) and where its request stands.
SUSPENSION_CATEGORIES = {"awaiting_citizen": "等待申请人补正材料", "awaiting_third_party": "等待其他单位答复"}
SUSPENSION_STATUSES = {"pending": "待审批", "refused": "未批准", "suspended": "挂起中", "resumed": "已恢复办理"}
NEED_SOURCES = {"task": "派单任务", "rectify": "整改复查"}
LIMIT_UNITS = {"wd": "个工作日", "wh": "个工作小时", "h": "小时"}
_LIMIT = re.compile(r"^(\d+)(wd|wh|h)$")


def time_limit(text: str) -> str:
    """A time limit as the catalog writes it ("3wd", "24h") in words: 3个工作日, 24小时."""
    match = _LIMIT.match(text)
    return f"{match.group(1)}{LIMIT_UNITS[match.group(2)]}" if match else text


def stopped_deadline(task: Mapping[str, Any]) -> str | None:
    """办结时限 of a suspended task (挂起), which does not run: 已暂停计时, with the working time it
    had left when suspended if the task's read gives it (dispatch's one-task read lists its
    suspensions; its lists do not). None while the deadline runs (every other status)."""
    if task.get("status") != "suspended":
        return None
    in_force = [s for s in task.get("suspensions") or () if s.get("status") == "suspended"]
    hours = in_force[-1].get("working_left_hours") if in_force else None
    if not isinstance(hours, int | float) or isinstance(hours, bool):
        return "已暂停计时"
    shown = f"{max(hours, 0):.2f}".rstrip("0").rstrip(".")  # 16, 2.5, 0.25: never an exponent
    return f"已暂停计时（剩余 {shown} 个工作小时）"


# 短信记录 (issue #31): intake's log of the SMS to a matter's citizen, in words. Why one was not sent is
# intake's `last_error` (skipped) or the provider's code (failed for good: the number refused).
SMS_KINDS = {"filed": "受理短信", "completed": "办结短信", "callback": "回访邀请"}
SMS_NOT_SENT = {"already rated": "群众已评价", "personal data erased": "群众个人信息已按期删除",
                "no mobile number": "未留手机号码", "no such matter in a town served": "本镇无此诉求",
                "isv.MOBILE_NUMBER_ILLEGAL": "号码无效", "isv.BLACK_KEY_CONTROL_LIMIT": "号码被短信平台列入黑名单",
                "isv.MOBILE_COUNT_OVER_LIMIT": "号码数量超过短信平台的限制"}


def sms_status(message: Mapping[str, Any]) -> str:
    """A message's status as the log says it: 已发送, 等待发送 (with the tries so far, when the
    gateway was down or refused), 静默时段暂缓 (quiet hours: held until 08:00), 未发送：why."""
    status, why = message.get("status"), str(message.get("last_error") or "")
    if status == "sent":
        return "已发送"
    if status == "pending":
        if message.get("hold_until") and why.startswith("quiet hours"):
            return "静默时段暂缓"
        attempts = message.get("attempts") or 0
        return f"等待发送（已尝试 {attempts} 次）" if attempts else "等待发送"
    reason = SMS_NOT_SENT.get(why) or SMS_NOT_SENT.get(why.split(":", 1)[0])
    return f"未发送：{reason or ('短信平台拒收' if status == 'failed' else '其他原因')}"


# --- 消息记录 (issue #31): notify's delivery log in words ----------------------------------------
# What a message was about: the event that made it (notify's delivery log names the event's type).
DELIVERY_EVENTS = {
    "dispatch.task.dispatched": "派单", "dispatch.task.supervised": "督办", "dispatch.task.returned": "退回",
    "dispatch.task.callback": "回访重办", "dispatch.extension.requested": "延期申请",
    "dispatch.suspension.requested": "挂起申请", "enforcement.plan.published": "抽查计划",
    "enforcement.case.flagged": "案件期限", "notify.digest.daily": "每日待办",
}
DELIVERY_FILTERS = {"": "全部", "sent": "已发送", "pending": "未发送"}
# Why a message waits, from the sender's own words (notify/senders.py): the start of the reason.
_WAIT_REASONS = (
    (re.compile(r"^errcode (\d+)"), "机器人拒收（错误码 {0}）"),
    (re.compile(r"^HTTP (\d+)"), "接收方返回错误（{0}）"),
    (re.compile(r"^the answer is not JSON"), "接收方的应答无法识别"),
    (re.compile(r"^no SMTP server is set"), "未配置邮件服务器"),
    (re.compile(r"^no robot "), "镇里的消息配置中没有这个机器人"),
    (re.compile(r"^SMTP\w*Error|^SMTP"), "邮件服务器拒收"),
    (re.compile(r"^(Connect|Read|Write|Pool)?Timeout|^ConnectTimeout|^ReadTimeout"), "接收方无应答（超时）"),
    (re.compile(r"^(ConnectError|ConnectionRefusedError|OSError|RemoteProtocolError|gaierror)"), "无法连接接收方"),
)


def delivery_status(entry: Mapping[str, Any]) -> str:
    """已发送, 并入汇总 (sent folded into a robot's digest), 等待重试 (a failed attempt), 等待发送."""
    if entry.get("status") == "sent":
        return "并入汇总" if entry.get("in_digest") else "已发送"
    return "等待重试" if entry.get("attempts") else "等待发送"


def delivery_channel(channel: str) -> str:
    """A delivery's channel in words: a work group's robot, or e-mail (addresses and robot names are
    configuration, not words)."""
    return {"robot": "工作群机器人", "email": "电子邮件"}.get(channel.partition(":")[0], "其他")


def wait_reason(text: str | None) -> str:
    """Why a message waits, in words; a reason the console does not know: 发送失败."""
    if not text:
        return ""
    for pattern, words in _WAIT_REASONS:
        if match := pattern.match(text):
            return words.format(*match.groups())
    return "发送失败，将自动重试"
