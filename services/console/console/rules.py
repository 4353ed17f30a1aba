"""The console's own rules, as plain functions (no I/O, no clock reads): how long a failed
sign-in makes an account or an address wait, and which passwords a local account may not have
(issue #28, 等保 2.0 level 3: 登录失败处理, 口令复杂度). Everything else the console shows is the
services' rules."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

# A local account's password: 12 characters at least and three of the four kinds (upper case,
# lower case, digits, others; a Chinese character is an other) — the complexity a 等保 assessor
# asks for, and long enough that the per-account limit (5 tries in 15 minutes: about 175,000 a
# year) never reaches it —, not the login in any case, and none of the passwords every guessing
# list starts with.
PASSWORD_MIN_LENGTH = 12
PASSWORD_MIN_KINDS = 3
# The first entries of every guessing list (leaked-password rankings, Chinese sites' included), each
# 12 characters or longer with three kinds of character, which the rules above would let through.
COMMON_PASSWORDS = frozenset({
    "password123!", "password@123", "password1234", "p@ssw0rd1234", "p@ssword1234", "passw0rd1234",
    "admin@123456", "admin123456!", "administrator1", "qwerty123456", "qwer1234!@#$", "1qaz2wsx3edc",
    "1qaz@wsx3edc", "1qaz@wsx#edc", "1q2w3e4r5t6y", "abc123456789", "abcd12345678", "a1234567890!",
    "woaini1314520", "woaini131452", "aa123456789!", "qq1234567890", "iloveyou1234", "welcome12345",
    "letmein12345", "changeme1234", "zhangsan1234", "huawei@12345", "huawei123456", "root@1234567",
    "test@1234567", "123456abcdef", "asdf12345678", "zxcvbnm12345", "qazwsxedc123", "1234qwerasdf",
})


def failure_wait(failures: list[datetime], now: datetime, allowed: int, window: timedelta) -> int | None:
    """Seconds until another sign-in may be tried, after `failures` (of one login, or of one
    address); None while fewer than `allowed` of them fall within the last `window`. The wait ends
    when the failure that made the number is `window` old."""
    recent = sorted(at for at in failures if at > now - window)
    if len(recent) < allowed:
        return None
    return max(1, math.ceil((recent[-allowed] + window - now).total_seconds()))


def failures_kept(failures: list[datetime], now: datetime, window: timedelta) -> list[datetime]:
    """The failures that may still count: those within the window."""
    return [at for at in failures if at > now - window]


def password_weaknesses(password: str, login: str) -> list[str]:
    """Why a local account may not have this password (in Chinese, for whoever sets it); [] when it may."""
    found = []
    if len(password) < PASSWORD_MIN_LENGTH:
        found.append(f"口令至少{PASSWORD_MIN_LENGTH}个字符")
    kinds = sum((any(c.isupper() for c in password), any(c.islower() for c in password),
                 any(c.isdigit() for c in password), any(not (c.isascii() and c.isalnum()) for c in password)))
    if kinds < PASSWORD_MIN_KINDS:
        found.append("口令须含大写字母、小写字母、数字、其他符号中的至少三种")
    if login and login.lower() in password.lower():
        found.append("口令不能包含登录账号")
    if password.lower() in COMMON_PASSWORDS:
        found.append("这是常见口令，容易被猜中")
    return found
