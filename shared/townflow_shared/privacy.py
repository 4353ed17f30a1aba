"""Personal numbers typed into free text (SPEC §6.1): a clerk writes "联系电话" and the citizen's mobile
number into a description, and every county subscriber would read it. Events that leave a service
carry such text masked (the first three and last four digits kept, the middle four as `****`); the
service's own database keeps it whole.

Masked: mainland mobile numbers (with or without +86, spaces or dashes), landlines with an area
code, and 18-character resident id numbers. Enterprise credit codes and our own ids are not free
text and are never passed here."""

from __future__ import annotations

import re

_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])([1-9][0-9]{2})[0-9]{11}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[ -]?)?(1[3-9][0-9])[ -]?[0-9]{4}[ -]?([0-9]{4})(?![0-9])")
_LANDLINE = re.compile(r"(?<![0-9])(0[1-9][0-9]{1,2})[ -]?[0-9]{3,4}([0-9]{4})(?![0-9])")


def mask_personal_numbers(text: str) -> str:
    """`text` with id numbers and phone numbers masked, all but their first and last digits."""
    text = _ID_NUMBER.sub(lambda m: f"{m[1]}{'*' * 11}{m[2]}", text)
    text = _MOBILE.sub(lambda m: f"{m[1]}****{m[2]}", text)
    return _LANDLINE.sub(lambda m: f"{m[1]}-****{m[2]}", text)
