"""The services' own refusal sentences (English, for developers) in the plain Chinese a town's
staff read, and, for a 409 (whose body names no field), the form field the sentence is about.

Only the sentences the console's forms can provoke are here; any other is shown as the service
said it, in brackets after the status's words (errors.py). The console's unit tests feed these
patterns the services' own rule functions, so a reworded refusal fails a test, not a person."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Phrase:
    pattern: re.Pattern[str]
    words: str  # str.format'ed with the pattern's named groups
    field: str | None = None  # the form field a 409 is about (a 422 names its own)


def _p(pattern: str, words: str, field: str | None = None) -> Phrase:
    return Phrase(re.compile(pattern), words, field)


STATUS_WORDS = {
    "filed": "已受理", "dispatched": "已派单", "in_progress": "办理中", "returned": "退回改派中",
    "rework": "返工中", "reopened": "重办中", "completed": "已办结待核查", "closed": "已结案",
    "accepted": "办理中", "redispatched": "已改派", "merged": "已合并",
}

PHRASES = (
    # 重复件: intake's merge and unmerge (intake/rules.py merge_refusal, unmerge_refusal, api.py).
    _p(r"^a matter cannot be merged into itself$", "不能并入自身，请填写另一件的受理编号"),
    _p(r"^(?P<t>\S+) is another town's matter; .*$", "{t} 是其他镇的事项，只能在本镇事项间合并"),
    _p(r"^no matter with ticket number '(?P<t>[^']+)'$", "没有受理编号为 {t} 的事项"),
    _p(r"^(?P<t>\S+) is itself merged into (?P<p>\S+); merge into that one$",
       "{t} 本身已并入 {p}，请直接并入 {p}", "into"),
    _p(r"^(?P<t>\S+) is (?P<s>\w+); a merge needs a primary still open$",
       "{t} {s}，主件须仍在办理中", "into"),
    _p(r"^(?P<t>\S+) is already merged into (?P<p>\S+)$", "{t} 已并入 {p}，如需改并请先撤销合并", "ticket_no"),
    _p(r"^(?P<n>\d+) matter\(s\) are merged into (?P<t>\S+); unmerge them first$",
       "已有 {n} 件并入 {t}，请先撤销它们的合并", "ticket_no"),
    _p(r"^(?P<t>\S+) is (?P<s>\w+); only an open matter is merged$",
       "{t} {s}，只有尚未办结的事项才能并入他件", "ticket_no"),
    _p(r"^this matter is not merged$", "该件没有合并，无需撤销", "ticket_no"),
    _p(r"^the primary (?P<p>\S+) is closed; the merge stands$", "主件 {p} 已结案，合并不能撤销", "ticket_no"),
    # 回访: dispatch's callback (dispatch/rules.py callback_problems, callback_error).
    _p(r"^a citizen reached by the callback gives a rating$", "联系上群众时，请选择群众的评价"),
    _p(r"^no rating when the citizen was not reached$", "未联系上群众时，不填评价"),
    _p(r"^a callback follows closure; the task is (?P<s>\w+)$", "结案后才能回访（任务现在{s}）", "reached"),
    _p(r"^this closure already has its callback$", "本次结案已经回访过", "reached"),
)


def plain(sentence: str) -> tuple[str, str | None] | None:
    """(Chinese words, field a 409 is about) for a service sentence the console knows; else None."""
    for phrase in PHRASES:
        if found := phrase.pattern.match(sentence):
            groups = {k: STATUS_WORDS.get(v, v) if k == "s" else v for k, v in found.groupdict().items()}
            return phrase.words.format(**groups), phrase.field
    return None
