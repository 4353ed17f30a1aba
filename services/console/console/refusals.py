"""The services' refusal codes in the Chinese a town's clerk or a citizen reads: one line per code
(`docs/refusals.md` lists them all), its `params` filled in. The console translates codes, never
sentences: a service's English `detail` is for logs and integrators and never reaches a page.

A code the table does not know shows a generic line and is logged, so a new code is noticed; a
test walks every service's catalogue and fails on a code with no line here. Rendering never
raises: a template whose params did not come falls back to the generic line of its status."""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from . import labels
from .times import shown

log = logging.getLogger(__name__)

# --- the page-level line, from the status ---------------------------------------------------------
STATUS_LINES = {
    400: "请求有误，请刷新页面后重试。",
    401: "登录已失效，请重新登录。",
    403: "您没有权限执行此操作。",
    404: "没有找到，请核对编号（或查询码）。",
    405: "不能这样操作。",
    408: "提交超时，请重试。",
    409: "当前状态下不能这样做。",
    413: "提交的内容太多了。",
    414: "网址太长了。",
    415: "请求有误，请刷新页面后重试。",
    422: "有几项填写不对，请看标出的地方。",
    429: "尝试次数太多，请稍后再试。",
    503: "服务暂时不可用，请稍后再试。",
}
SERVER_TROUBLE = "服务出错了，请稍后再试。"
NOT_ACCEPTED = "请求未被接受。"

# What a code the table does not know says (and a template whose params did not come).
GENERIC_FIELD = "填写有误"
GENERIC = "未能办理，请核对后再试；如仍不行，请联系本镇管理员。"


def status_line(status: int, retry_after: str | None = None) -> str:
    if status == 429 and retry_after and retry_after.isdigit():
        return f"尝试次数太多，请 {max(1, round(int(retry_after) / 60))} 分钟后再试。"
    return STATUS_LINES.get(status, SERVER_TROUBLE if status >= 500 or status == 0 else NOT_ACCEPTED)


# --- the codes ------------------------------------------------------------------------------------
# Shared codes (townflow_shared.problems): the request as a whole, one input, who calls, towns.
# A line of a code that always names its field is said after the field's label ("电话：格式不对"),
# so it need not name the field again.
SHARED = {
    "request.malformed_json": "提交的内容无法识别，请刷新页面后重新提交",
    "request.body_too_large": "提交的内容太多了，请删减后重新提交",
    "request.body_too_deep": "提交的内容层级太多，无法办理",
    "request.body_too_many_members": "提交的内容项目太多，无法办理",
    "request.body_too_slow": "提交超时，请检查网络后重新提交",
    "request.uri_too_long": "网址太长了，请减少查询条件后重试",
    "request.unsupported_media_type": "提交的内容格式不对，请刷新页面后重新提交",
    "request.invalid": "有 {count} 项填写不对，请看标出的地方",
    "route.not_found": "没有这个功能或页面",
    "route.method_not_allowed": "不能这样操作",
    "request.refused": "请求未被接受",
    "value.missing": "必须填写",
    "value.too_short": "太短了，至少 {min_length} 个字（项）",
    "value.too_long": "太长了，最多 {max_length} 个字（项）",
    "value.malformed": "格式不对",
    "value.not_allowed": "不是可选的值，请从列表中选择",
    "value.not_integer": "应填整数",
    "value.not_number": "应填数字",
    "value.not_finite": "应填一个有效的数字",
    "value.not_boolean": "应选“是”或“否”",
    "value.not_text": "应填文字",
    "value.not_object": "填写的内容结构不对",
    "value.not_list": "应为一组值",
    "value.not_datetime": "日期时间格式不对（例如 2026-12-01 09:30）",
    "value.not_date": "日期格式不对（例如 2026-12-01）",
    "value.not_duration": "时长格式不对",
    "value.offset_missing": "日期时间缺少时区",
    "value.out_of_range": "超出允许的范围（{min} 至 {max}）",
    "value.too_small": "数值太小（下限 {limit}）",
    "value.too_large": "数值太大（上限 {limit}）",
    "value.too_many_digits": "数字位数太多",
    "value.not_uuid": "编号格式不对",
    "value.unexpected": "不应填写这一项",
    "value.invisible_character": "含有看不见的字符或文字方向控制符，请删去后重新输入",
    "value.nul_character": "含有无法识别的字符，请删去后重新输入",
    "value.lone_surrogate": "含有无法识别的字符，请删去后重新输入",
    "value.invalid": "填写有误",
    "auth.token_missing": "请先登录",
    "auth.token_invalid": "登录已失效，请重新登录",
    "auth.not_configured": "系统尚未配置登录校验，请联系县级管理员",
    "auth.token_without_town": "您的账号没有所属的镇，请联系管理员",
    "auth.role_missing": "您的岗位不能办理这项业务（需要：{roles}）",
    "town.not_served": "本系统不负责这个镇（{town}）的事务",
    "town.not_found": "本镇没有这条记录",
    "town.not_yours": "这是{town}的事务，您只能办理本镇的事务",
    "town.required": "须指明是哪个镇",
    "service.database_unavailable": "系统暂时不可用，请稍后再试",
    "service.busy": "系统繁忙，本次操作未生效，请再提交一次",
    "clock.out_of_range": "测试时钟不能调到这个时间",
    "photo.too_large": "照片太大了（不能超过 {limit} 字节），请缩小后再传",
    "photo.not_a_photo": "这不是照片，请用手机拍摄的照片（常见照片格式均可）",
    "photo.damaged": "照片已损坏或没有传完整，请重新拍摄或选择",
    "photo.too_many_pixels": "照片像素太多（不能超过 {limit} 像素），请缩小后再传",
    "attachment.too_many": "这里最多只能附 {limit} 张照片",
    "attachment.storage_unavailable": "照片暂时无法保存，请稍后再试，或先不附照片提交",
    "attachment.not_found": "没有找到这张照片",
}

# 受理 (intake): filing, a citizen's matter by ticket and access code, its rating, 重复件 merges.
INTAKE = {
    "item.unknown": "本镇事项目录中没有“{item}”，请从目录中选择",
    "filing.village_unknown": "本镇没有这个村（社区），请从列表中选择",
    "filing.point_not_located": "这类事项不需要定位（涉及个人事务，位置可能是住所），请不要标注位置",
    "filing.point_outside_town": "标注的位置不在{town}范围内，请重新选点",
    "filing.point_no_map": "{town}尚未配置村界和网格，暂不能按位置受理，请选择村（社区）",
    "filing.village_contradicts_point": "标注的位置在另一个村（社区），请核对所选的村或重新选点",
    "filing.village_missing": "请选择村（社区），或在地图上标注位置",
    "filing.channel_field_missing": "“{channel}”渠道必须填写",
    "filing.proxy_agent_unknown": "{agent} 不是本镇的代办员",
    "filing.target_missing": "这类事项必须填写检查对象（企业统一社会信用代码或场所编号）",
    "citizen.contact_missing": "请至少填写群众的电话或身份证号中的一项",
    "citizen.phone_malformed": "格式不对（5 至 20 位数字，可含空格或短横线）",
    "citizen.id_number_malformed": "格式不对（18 位：17 位数字加一位数字或 X）",
    "idempotency.key_reused": "这张表单已经提交过不同的内容，请刷新页面后重新填写",
    "filing.citizen_ref_key_unset": "受理服务尚未配置完成，暂时不能受理，请联系县级管理员",
    "ticket.not_found": "没有这个受理编号，或查询码不对，请核对回执",
    "ticket.code_malformed": "应为回执上印的 9 位字母和数字（旧回执为 6 位）",
    "ticket.too_many_wrong_codes": "从这里输错查询码的次数太多，请稍后再试",
    "ticket.more_proof_needed": "这个受理编号近期被多次试错查询码，为保护您的信息，请同时填写受理时所留手机号的后四位（未留手机号的填身份证号后四位）",
    "ticket.contact_tail_malformed": "应为手机号（或身份证号）的后四位",
    "rating.already_given": "这件事已经评价过了，每件事只能评价一次",
    "rating.not_completed": "办结后才能评价（现在{status}）",
    "merge.ticket_not_found": "没有受理编号为 {ticket} 的事项",
    "merge.into_unknown": "没有受理编号为 {ticket} 的事项",
    "merge.into_itself": "不能并入自身，请填写另一件的受理编号",
    "merge.other_town": "{ticket} 是其他镇的事项，只能在本镇事项间合并",
    "merge.already_merged": "{ticket} 已并入 {primary}，如需改并请先撤销合并",
    "merge.has_merged_matters": "已有 {count} 件并入 {ticket}，请先撤销它们的合并",
    "merge.not_open": "{ticket} {status}，只有尚未办结的事项才能并入他件",
    "merge.primary_merged": "{ticket} 本身已并入 {primary}，请直接并入 {primary}",
    "merge.primary_closed": "{ticket} {status}，主件须仍在办理中",
    "unmerge.not_merged": "该件没有合并，无需撤销",
    "unmerge.primary_closed": "主件 {primary} 已结案，合并不能撤销",
    "matter.not_found": "没有找到这件事项（刚派出的任务请稍后刷新）",
    "sms.ticket_not_found": "本镇没有受理编号为 {ticket} 的事项，查不到它的短信记录",
}

# 派单 (dispatch): tasks, returns and redispatch, extensions, verification, callbacks, off-post.
DISPATCH = {
    "task.not_found": "没有这个任务",
    "task.not_assignee": "只有承办人或其模块长可以办理这个任务",
    "task.status_forbids": "任务现在{status}，不能这样办理",
    "task.reply_blank": "请填写给群众的答复（办理结果或不能办理的原因），不能只有空格",
    "task.completion_photo_required": "这类事项办结时须上传至少一张处置后照片",
    "task.return_window_closed": "退回期限已过（截至 {closes_at}），不能再退回",
    "extension.too_late": "延期须在办理时限（{resolve_by}）之前申请",
    "extension.already_pending": "这个任务已有一份待审批的延期申请",
    "extension.none_pending": "这个任务没有待审批的延期申请",
    "extension.task_not_open": "任务现在{status}，不能再批准延期",
    "suspension.too_late": "挂起须在办理时限（{resolve_by}）之前申请",
    "suspension.already_asked": "这个任务已有一份待审批的挂起申请，或正在挂起中",
    "suspension.none_pending": "这个任务没有待审批的挂起申请",
    "suspension.task_not_open": "任务现在{status}，不能再批准挂起",
    "suspension.not_suspended": "任务现在{status}，没有挂起，无需恢复办理",
    "suspension.resume_not_permitted": "只有指挥中心、承办人或其模块长可以恢复办理",
    "redispatch.one_target": "请在岗位和承办人中选择一项（只选一项）",
    "redispatch.unknown_post": "本镇没有岗位 {post}",
    "redispatch.unknown_assignee": "本镇没有工号为 {assignee} 的工作人员",
    "callback.rating_required": "联系上群众时，请选择群众的评价",
    "callback.rating_unexpected": "未联系上群众时，不填评价",
    "callback.task_not_closed": "结案后才能回访（任务现在{status}）",
    "callback.already_given": "本次结案已经回访过",
    "staff.not_found": "本镇没有工号为 {staff_id} 的工作人员",
    "off_post.not_permitted": "只有本人、其模块长或指挥中心可以登记离岗",
    "off_post.ends_before_start": "离岗结束时间须晚于开始时间",
    "rehearsal.not_permitted": "只有考核办或本镇党委书记可以进行改革预演",
    "rehearsal.layout_invalid": "有误，出错位置：{at}",
    "rehearsal.period_invalid": "演练时段须结束于开始之后，且不超过 62 天",
}

# 执法 (enforcement): inspections (综合查一次), cases and their deadlines, random plans.
ENFORCEMENT = {
    "inspection.not_found": "没有这次检查",
    "inspection.not_planned": "这次检查已经开始（现在{status}），不能再次开始",
    "inspection.not_started": "请先开始检查，再提交检查结果（现在{status}）",
    "inspection.not_officer": "您不是这次检查的执法人员；只有检查组成员或执法队负责人可以提交结果",
    "inspection.evidence_not_officer": "您不是这次检查的执法人员；只有检查组成员或执法队负责人可以记录执法证据",
    "inspection.evidence_not_open": "检查开始后、提交结果前才能记录执法证据（现在{status}）；结果提交后的证据请记录在案件上",
    "inspection.poster_not_named": "提交人须是本次结果中列明的执法人员之一（或执法队负责人）",
    "inspection.unknown_staff": "不是本镇的工作人员：{staff}",
    "inspection.too_few_certified": "至少需要 {required} 名持执法证的执法人员（现在 {certified} 名）",
    "inspection.starter_not_officer": "只有本镇的执法人员（随队出发）或模块负责人、管理员（派出检查组）可以开始检查",
    "inspection.unit_absent": "所有单位都须到场，未到场：{units}",
    "inspection.unit_foreign": "不是这次检查的单位：{units}",
    "inspection.finding_missing": "每个检查事项都要填写一条检查结果",
    "inspection.finding_not_covered": "有检查结果不属于这次检查的事项，请刷新页面后重新填写",
    "inspection.finding_repeated": "同一事项只能填写一条检查结果",
    "inspection.rectify_by_missing": "结论为“限期整改”时须填写整改期限",
    "case.not_found": "没有这个案件",
    "case.transferred": "案件已移送，不再由本镇办理",
    "case.closed": "案件已结案",
    "case.step_out_of_order": "案件现在是“{current}”，下一步应为“{expected}”，不能直接“{requested}”",
    "case.step_unknown": "没有这个办案步骤",
    "case.evidence_step_not_reached": "案件现在是“{current}”，证据只能记录在已办步骤或下一步骤（{steps}），不能记录在“{requested}”",
    "case.transfer_by_finding_only": "只有检查结论为“移交县级部门”或“移送司法机关”的案件才能移送",
    "case.decision_missing": "作出决定时须填写处罚决定",
    "case.decided": "案件已“{step}”，不能再延长期限",
    "case.already_extended": "办案期限已经延长过一次，不能再延长",
    "case.extension_too_late": "延长期限须在第 {day} 天之前办理",
    "plan.not_found": "没有这个抽查计划",
    "plan.sample_too_large": "抽取数量 {sample_size} 超过了检查对象总数 {targets}",
    "plan.too_few_officers": "本镇持执法证的执法人员不足，无法为每个对象抽派两名（现有 {officers} 名）",
}

# 考核 (appraisal): periods, the bonus split, the monthly bulletin, scores, rankings, what-if rules.
APPRAISAL = {
    "period.malformed": "月份格式不对（例如 2026-11）",
    "period.out_of_range": "月份须在 {first} 至 {last} 之间",
    "period.no_figures": "{period} 还没有考核数据",
    "bonus.no_weights": "{period} 没有可按权重分配奖金的对象（无人得分）",
    "bulletin.workbook_unavailable": "月度通报暂时无法生成，请稍后再试",
    "score.unit_not_seconded": "{unit} 不是本镇的派驻机构",
    "ranking.county_only": "全县排名只供县级部门查看",
    "whatif.rule_invalid": "考核规则填写有误",
}

# Codes that say no more than their status: under the page's line (from the status), nothing.
SAID_BY_STATUS = frozenset({"request.refused"})

# Each catalogue's lines, by the catalogue's service (the test matches them code for code).
TABLES = {"shared": SHARED, "intake": INTAKE, "dispatch": DISPATCH, "enforcement": ENFORCEMENT,
          "appraisal": APPRAISAL}
WORDS: dict[str, str] = {**SHARED, **INTAKE, **DISPATCH, **ENFORCEMENT, **APPRAISAL}

# Params a code carries that its English template does not name (the raise sites pass them for
# the console): the catalogue test accepts a Chinese placeholder that is here.
KNOWN_PARAMS: dict[str, frozenset[str]] = {
    "rehearsal.layout_invalid": frozenset({"at"}),  # the field within the file; `problem` is English
}


# --- params in words ------------------------------------------------------------------------------
# The states a refusal names (a matter's, a task's, an inspection's, a case's step), as staff say them.
STATUS_WORDS = {
    **labels.INSPECTION_STATUSES, **labels.CASE_STEPS, **labels.REQUEST_STATUSES,
    "filed": "已受理", "dispatched": "已派单", "in_progress": "办理中", "returned": "退回改派中",
    "rework": "返工中", "reopened": "重办中", "completed": "已办结待核查", "closed": "已结案",
    "accepted": "办理中", "redispatched": "已改派", "merged": "已合并",
}
# Param names whose values are words of one of the console's tables.
_VALUE_TABLES: dict[str, Mapping[str, str]] = {
    "roles": labels.ROLES, "role": labels.ROLES, "channel": labels.CHANNELS, "channels": labels.CHANNELS,
    "colour": labels.COLOURS, "rating": labels.RATINGS, "outcome": labels.OUTCOMES, "outcomes": labels.OUTCOMES,
    "step": labels.CASE_STEPS, "steps": labels.CASE_STEPS, "level": labels.ALERT_LEVELS,
    "rate": labels.RATES, "subject_type": labels.SUBJECT_TYPES,
}
# A code's own params whose values are words of a table.
_CODE_VALUE_TABLES: dict[str, dict[str, Mapping[str, str]]] = {
    "case.step_out_of_order": {"current": labels.CASE_STEPS, "expected": labels.CASE_STEPS,
                               "requested": labels.CASE_STEPS},
    "case.evidence_step_not_reached": {"current": labels.CASE_STEPS, "requested": labels.CASE_STEPS},
    # No field named: the file is no YAML (or not a file of a layout).
    "rehearsal.layout_invalid": {"at": {"": "文件格式（请检查缩进、冒号和引号）"}},
}
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _is_status(name: str) -> bool:
    return name in ("status", "state", "statuses") or name.endswith(("_status", "_state"))


# A param is a name, a number, a state: what is longer than this is cut (a page is not an echo).
PARAM_CHARS = 80


def _one(name: str, value: Any, names: Mapping[str, str], tables: Mapping[str, Mapping[str, str]],
         zone: tzinfo | None) -> str:
    text = str(value)[:PARAM_CHARS]
    if isinstance(value, bool):
        return "是" if value else "否"
    if _is_status(name):
        return STATUS_WORDS.get(text, text)
    if (table := tables.get(name) or _VALUE_TABLES.get(name)) is not None and text in table:
        return table[text]
    if _INSTANT.match(text):  # an instant as the pages show one, on the town's clock: 2026-12-01 17:30
        return shown(text, zone)
    return names.get(text, text)


def _value(name: str, value: Any, names: Mapping[str, str], tables: Mapping[str, Mapping[str, str]],
           zone: tzinfo | None) -> str:
    """One param as a person reads it: states and roles in words, lists joined with 、, the town's
    codes (units, staff, villages, items, towns) by their names where the console knows them."""
    if isinstance(value, (list, tuple)):
        return "、".join(_one(name, v, names, tables, zone) for v in value[:20]) + ("等" if len(value) > 20 else "")
    if isinstance(value, str) and name in ("roles", "units", "staff") and ", " in value:
        return "、".join(_one(name, v, names, tables, zone) for v in value.split(", "))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _one(name, value, names, tables, zone)


def placeholders(template: str) -> set[str]:
    """The params a template names: "{ticket} 已并入 {primary}" → {"ticket", "primary"}."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def fallback(status: int, field: str | None = None) -> str:
    return GENERIC_FIELD if field or status == 422 else GENERIC


def words(code: str, params: Mapping[str, Any] | None = None, *, status: int = 0, field: str | None = None,
          names: Mapping[str, str] | None = None, zone: tzinfo | None = None) -> str:
    """The code's Chinese line with its params; a generic line (logged) for a code not in the table
    or params that did not come. Never raises."""
    template = WORDS.get(code)
    if template is None:
        log.warning("refusal code %r has no Chinese line in the console (status %s)", code, status)
        return fallback(status, field)
    given = params or {}
    try:
        tables = _CODE_VALUE_TABLES.get(code, {})
        values = {name: _value(name, given[name], names or {}, tables, zone) for name in placeholders(template)}
        return template.format(**values)
    except Exception:  # a refusal's words must never break the page that shows them
        log.warning("refusal code %r came without the params its Chinese line needs: %s", code, sorted(given))
        return fallback(status, field)
