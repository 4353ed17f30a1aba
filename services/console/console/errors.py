"""A service's refusal in plain Chinese: one sentence for the page, and one per field it names,
shown next to that field. The service's own words follow in brackets where they say more."""

from __future__ import annotations

from typing import Any

import httpx

from .phrases import plain

# Field names as the services spell them (a 422's `loc`, dotted), as the forms label them.
FIELD_LABELS = {
    "channel": "受理渠道", "item_code": "事项", "description": "诉求内容", "village": "村（社区）",
    "location": "地点", "target": "检查对象", "colour": "紧急程度", "citizen": "群众信息",
    "citizen.name": "姓名", "citizen.phone": "电话", "citizen.id_number": "身份证号",
    "proxy_agent_id": "代办员", "village_record_id": "村站登记号", "town_code": "镇", "town": "镇",
    "code": "查询码", "rating": "评价", "resolution": "办理结果", "reason": "原因", "days": "天数",
    "post": "岗位", "assignee": "承办人", "note": "说明", "passed": "核查结论", "from": "离岗开始",
    "to": "离岗结束", "officers": "执法人员", "present_units": "到场单位", "findings": "检查结果",
    "step": "步骤", "decision": "处罚决定", "pool": "奖金总额", "period": "月份", "sample_size": "抽取数量",
    "into": "主件受理编号", "ticket_no": "受理编号", "reached": "回访情况", "format": "格式",
}

# pydantic's error types, in words.
_TYPES = {
    "missing": "必须填写", "string_too_short": "不能为空", "string_too_long": "太长了",
    "string_pattern_mismatch": "格式不对", "literal_error": "不是可选的值", "enum": "不是可选的值",
    "int_parsing": "应填数字", "float_parsing": "应填数字", "greater_than_equal": "数值太小",
    "less_than_equal": "数值太大", "datetime_from_date_parsing": "日期时间格式不对",
    "datetime_parsing": "日期时间格式不对", "date_from_datetime_parsing": "日期格式不对",
    "bool_parsing": "应为是或否", "too_short": "至少要填一项", "extra_forbidden": "不应填写",
}

_STATUS = {
    400: "请求有误。",
    401: "登录已失效，请重新登录。",
    403: "您没有权限执行此操作。",
    404: "没有找到，请核对编号（或查询码）。",
    409: "当前状态下不能这样做。",
    422: "有几项填写不对，请看标出的地方。",
    429: "尝试次数太多，请稍后再试。",
    503: "服务暂时不可用，请稍后再试。",
}


class ServiceError(Exception):
    """What a service refused: `message` for the page, `fields` (dotted name → words) beside fields."""

    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None,
                 detail: str | None = None, suggestions: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}
        self.detail = detail
        self.suggestions = suggestions or []


def _field_of(loc: list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def label(field: str) -> str:
    return FIELD_LABELS.get(field) or FIELD_LABELS.get(field.split(".")[0], field)


def refusal(response: httpx.Response) -> ServiceError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    status = response.status_code
    message = _STATUS.get(status, "服务出错了，请稍后再试。" if status >= 500 else "请求未被接受。")
    if status == 429 and (wait := response.headers.get("Retry-After", "")).isdigit():
        message = f"尝试次数太多，请 {max(1, round(int(wait) / 60))} 分钟后再试。"
    fields: dict[str, str] = {}
    suggestions: list[dict[str, str]] = []
    if isinstance(detail, list):
        for problem in detail:
            if not isinstance(problem, dict):
                continue
            field = _field_of(problem.get("loc", []))
            words = _TYPES.get(str(problem.get("type")), "填写有误")
            msg = str(problem.get("msg", "")).removeprefix("Value error, ")
            if known := plain(msg):
                fields.setdefault(field, f"{label(field)}：{known[0]}")
            else:
                fields.setdefault(field, f"{label(field)}{words}" + (f"（{msg}）" if msg else ""))
            suggestions += [s for s in problem.get("suggestions", []) if isinstance(s, dict)]
        return ServiceError(status, message, fields, None, suggestions)
    if isinstance(detail, str) and (known := plain(detail)):
        # A 409 names no field: the sentence says which one it is about, shown beside that field.
        plain_words, about = known
        return ServiceError(status, message, {about: plain_words} if about else {}, None if about else plain_words)
    return ServiceError(status, message, fields, str(detail) if detail else None)
