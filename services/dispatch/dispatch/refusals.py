"""Every refusal dispatch gives, declared once (docs/refusals.md is generated from these; the
console shows each code in Chinese with its params)."""

from __future__ import annotations

from townflow_shared.problems import Catalogue

CODES = Catalogue("dispatch")

# A task.
TASK_NOT_FOUND = CODES.code("task.not_found", 404, "no such task")
TASK_NOT_ASSIGNEE = CODES.code("task.not_assignee", 403, "only the assignee or the module leader may act on this task")
TASK_STATUS_FORBIDS = CODES.code(
    "task.status_forbids", 409, "the task's status does not allow this",
    "cannot {action} a task that is {status} (allowed when {allowed})")
# 答复: completing a task answers the citizen (what was done, or why not).
REPLY_BLANK = CODES.code("task.reply_blank", 422, "a reply for the citizen is required",
                         "a reply for the citizen (what was done, or why not) is required: it may not be blank")
RETURN_WINDOW_CLOSED = CODES.code("task.return_window_closed", 409, "the return window has closed",
                                  "the return window closed at {closes_at}")
# 延期: an extension of a task's deadline.
EXTENSION_TOO_LATE = CODES.code("extension.too_late", 409, "an extension must be asked before the deadline",
                                "an extension must be asked before resolve_by ({resolve_by})")
EXTENSION_ALREADY_PENDING = CODES.code("extension.already_pending", 409,
                                       "an extension request is already pending for this task")
EXTENSION_NONE_PENDING = CODES.code("extension.none_pending", 409, "no extension request is pending for this task")
EXTENSION_TASK_NOT_OPEN = CODES.code(
    "extension.task_not_open", 409, "an extension is approved only while its task is open",
    "cannot approve an extension: the task is {status} (approved only while {allowed})")
# 挂起: a task suspended while waiting on the citizen or a third party.
SUSPENSION_TOO_LATE = CODES.code("suspension.too_late", 409, "a suspension must be asked before the deadline",
                                 "a suspension must be asked before resolve_by ({resolve_by})")
SUSPENSION_ALREADY_ASKED = CODES.code("suspension.already_asked", 409,
                                      "a suspension of this task is already pending or in force")
SUSPENSION_NONE_PENDING = CODES.code("suspension.none_pending", 409, "no suspension request is pending for this task")
SUSPENSION_TASK_NOT_OPEN = CODES.code(
    "suspension.task_not_open", 409, "a suspension is approved only while its task is open",
    "cannot approve a suspension: the task is {status} (approved only while {allowed})")
SUSPENSION_NOT_SUSPENDED = CODES.code("suspension.not_suspended", 409, "the task is not suspended",
                                      "only a suspended task resumes; the task is {status}")
SUSPENSION_RESUME_NOT_PERMITTED = CODES.code(
    "suspension.resume_not_permitted", 403,
    "only the command centre, the assignee or the module leader may resume this task")
# Redispatch by the command centre.
REDISPATCH_ONE_TARGET = CODES.code("redispatch.one_target", 422, "give exactly one of 'post' or 'assignee'")
# A well-formed post or staff id the town's directory does not hold: the request is as the document
# says, the directory is not (409, not 422: a 422 means input the document itself does not allow).
REDISPATCH_UNKNOWN_POST = CODES.code("redispatch.unknown_post", 409, "no such post in the task's town",
                                     "unknown post {post} in town {town}")
REDISPATCH_UNKNOWN_ASSIGNEE = CODES.code("redispatch.unknown_assignee", 409, "no such staff member in the task's town",
                                         "unknown staff id {assignee} in town {town}")
# 回访: the callback after closure.
CALLBACK_RATING_REQUIRED = CODES.code("callback.rating_required", 422,
                                      "a citizen reached by the callback gives a rating")
CALLBACK_RATING_UNEXPECTED = CODES.code("callback.rating_unexpected", 422,
                                        "no rating when the citizen was not reached")
CALLBACK_NOT_CLOSED = CODES.code("callback.task_not_closed", 409, "a callback follows closure",
                                 "a callback follows closure; the task is {status}")
CALLBACK_ALREADY_GIVEN = CODES.code("callback.already_given", 409, "this closure already has its callback")
# 离岗登记: a staff member's time off post.
STAFF_NOT_FOUND = CODES.code("staff.not_found", 404, "no such staff member",
                             "no staff member {staff_id} in town {town}")
OFF_POST_NOT_PERMITTED = CODES.code(
    "off_post.not_permitted", 403, "only the person, their module leader or the command centre may register this")
OFF_POST_ENDS_BEFORE_START = CODES.code("off_post.ends_before_start", 422, "'to' must be after 'from'")
