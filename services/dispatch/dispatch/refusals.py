"""Every refusal dispatch gives, declared once (docs/refusals.md is generated from these; the
console shows each code in Chinese with its params)."""

from __future__ import annotations

from pathlib import Path

from townflow_shared.problems import Catalogue

CODES = Catalogue.read("dispatch", Path(__file__).with_name("refusals.toml"))

TASK_NOT_FOUND = CODES["task.not_found"]
TASK_NOT_ASSIGNEE = CODES["task.not_assignee"]
TASK_STATUS_FORBIDS = CODES["task.status_forbids"]
REPLY_BLANK = CODES["task.reply_blank"]
RETURN_WINDOW_CLOSED = CODES["task.return_window_closed"]
EXTENSION_TOO_LATE = CODES["extension.too_late"]
EXTENSION_ALREADY_PENDING = CODES["extension.already_pending"]
EXTENSION_NONE_PENDING = CODES["extension.none_pending"]
EXTENSION_TASK_NOT_OPEN = CODES["extension.task_not_open"]
SUSPENSION_TOO_LATE = CODES["suspension.too_late"]
SUSPENSION_ALREADY_ASKED = CODES["suspension.already_asked"]
SUSPENSION_NONE_PENDING = CODES["suspension.none_pending"]
SUSPENSION_TASK_NOT_OPEN = CODES["suspension.task_not_open"]
SUSPENSION_NOT_SUSPENDED = CODES["suspension.not_suspended"]
SUSPENSION_RESUME_NOT_PERMITTED = CODES["suspension.resume_not_permitted"]
REDISPATCH_ONE_TARGET = CODES["redispatch.one_target"]
REDISPATCH_UNKNOWN_POST = CODES["redispatch.unknown_post"]
REDISPATCH_UNKNOWN_ASSIGNEE = CODES["redispatch.unknown_assignee"]
CALLBACK_RATING_REQUIRED = CODES["callback.rating_required"]
CALLBACK_RATING_UNEXPECTED = CODES["callback.rating_unexpected"]
CALLBACK_NOT_CLOSED = CODES["callback.task_not_closed"]
CALLBACK_ALREADY_GIVEN = CODES["callback.already_given"]
STAFF_NOT_FOUND = CODES["staff.not_found"]
OFF_POST_NOT_PERMITTED = CODES["off_post.not_permitted"]
OFF_POST_ENDS_BEFORE_START = CODES["off_post.ends_before_start"]
