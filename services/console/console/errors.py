"""A service's refusal (an RFC 9457 problem document with a `code`) in plain Chinese: the page's
line from the status, and the code's words (refusals.py) beside the field it names — or, naming
none, under the page's line. No English sentence of a service is ever shown."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from .names import TownNames
from .refusals import SAID_BY_STATUS, status_line, words

# Field names as the services spell them (a refusal's `field`, dotted), as the forms label them.
FIELD_LABELS = {
    "channel": "受理渠道", "item_code": "事项", "description": "诉求内容", "village": "村（社区）",
    "location": "地点", "target": "检查对象", "colour": "紧急程度", "citizen": "群众信息",
    "citizen.name": "姓名", "citizen.phone": "电话", "citizen.id_number": "身份证号",
    "proxy_agent_id": "代办员", "village_record_id": "村站登记号", "town_code": "镇", "town": "镇",
    "code": "查询码", "contact_tail": "手机号后四位", "rating": "评价", "resolution": "办理结果", "reply": "给群众的答复", "reason": "原因", "days": "天数",
    "post": "岗位", "assignee": "承办人", "note": "说明", "passed": "核查结论", "from": "离岗开始",
    "to": "离岗结束", "officers": "执法人员", "present_units": "到场单位", "findings": "检查结果",
    "step": "步骤", "decision": "处罚决定", "pool": "奖金总额", "period": "月份", "sample_size": "抽取数量",
    "into": "主件受理编号", "ticket_no": "受理编号", "reached": "回访情况", "format": "格式",
    "ticket": "受理编号", "unit": "派驻机构", "photos": "照片", "point": "位置",
    "point.longitude": "经度", "point.latitude": "纬度",
    # 改革预演: a layout's files (dispatch names a wrong one `files.posts.yaml`), the draw of handling times
    "files": "布局文件", "files.modules.yaml": "模块文件", "files.posts.yaml": "岗位文件", "files.staff.yaml": "人员文件",
    "files.rules.yaml": "规则文件", "files.catalog.yaml": "事项目录文件", "seed": "随机种子", "times": "办理时长",
}
# A photo of a multipart form, as a service names it: `photos[1]` is the second photo chosen.
_PHOTO = re.compile(r"photos\[(\d+)\]")
# A field that names no input of a form: what it says is the page's, not a field's.
_WHOLE = frozenset({"body", "query", "path", "Idempotency-Key"})


class ServiceError(Exception):
    """What a service refused: `message` for the page (from the status), `fields` (dotted name →
    words) beside fields, `detail` the code's words when it names no field, `code` as sent."""

    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None,
                 detail: str | None = None, suggestions: list[str] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}
        self.detail = detail
        self.suggestions = suggestions or []  # item codes a refusal of an unknown item proposes
        self.code = code

    @property
    def page_line(self) -> str:
        """The refusal in one line, for a page that shows nothing else."""
        return " ".join(part for part in (self.message, self.detail, *self.fields.values()) if part)

    @property
    def beside_line(self) -> str:
        """The refusal in one line beside what it refused (a row of a list): the code's words, the
        status's line only when there are none."""
        return "；".join(part for part in (self.detail, *self.fields.values()) if part) or self.message


def label(field: str) -> str | None:
    if photo := _PHOTO.fullmatch(field):
        return f"第{int(photo.group(1)) + 1}张照片"
    return FIELD_LABELS.get(field) or FIELD_LABELS.get(field.split(".")[0])


def beside(field: str, said: str) -> str:
    """The words shown beside a field, after its label (the page's list of them reads on its own)."""
    named = label(field)
    return f"{named}：{said}" if named else said


def _suggested(params: Mapping[str, Any]) -> list[str]:
    listed = params.get("suggestions")
    if not isinstance(listed, list):
        return []
    return [str(s.get("code")) if isinstance(s, dict) else str(s).split(" ")[0] for s in listed][:10]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def refusal(response: httpx.Response, town: TownNames | None = None, under: str | None = None) -> ServiceError:
    """The service's answer ≥ 400 as the page shows it; `town`'s names of its codes (units, staff,
    villages…) and its clock, for the params. `under`: the multipart field that held the command's
    JSON (`filing`): a field named under it is the form's own input (`filing.village` → `village`)."""

    def own(field: str) -> str:
        return field.removeprefix(f"{under}.") if under else field

    status = response.status_code
    names, zone = (town.flat(), town.zone) if town is not None else ({}, None)
    message = status_line(status, response.headers.get("Retry-After"))
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return ServiceError(status, message)  # not a problem document (a proxy's page): the status says it
    code = body["code"]
    params = _mapping(body.get("params"))
    fields: dict[str, str] = {}
    suggestions = _suggested(params)
    loose: list[str] = []  # words of errors that name no input of a form
    errors = [e for e in body.get("errors") or () if isinstance(e, dict) and isinstance(e.get("code"), str)]
    for error in errors:
        field = own(str(error.get("field") or ""))
        its = _mapping(error.get("params"))
        said = words(error["code"], its, status=status, field=field or None, names=names, zone=zone)
        suggestions += _suggested(its)
        if field and field not in _WHOLE:
            fields.setdefault(field, beside(field, said))
        else:
            loose.append(said)
    named = own(body["field"]) if isinstance(body.get("field"), str) else None
    if named and named not in _WHOLE and named not in fields:
        fields[named] = beside(named, words(code, params, status=status, field=named, names=names, zone=zone))
    detail = None
    if not fields and not loose and not errors:
        detail = None if code in SAID_BY_STATUS else words(code, params, status=status, names=names, zone=zone)
    elif loose:
        detail = "；".join(dict.fromkeys(loose))
    if detail is not None and detail.rstrip("。") == message.rstrip("。"):
        detail = None  # the page's line says it already (a 401's 登录已失效)
    return ServiceError(status, message, fields, detail, list(dict.fromkeys(suggestions)), code)
