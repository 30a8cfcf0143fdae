"""Masking: e-mails and phones never appear in clear in messages, logs, the results table or Data Docs.

Every example row and every observed text of a check passes through here before it is shown or
stored. Pure functions, no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9])[A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*(\.[A-Za-z]{2,})\b")
# A phone-like token: optional "+", 7+ digits with spaces/dashes/dots/parentheses, standing alone
# (not part of an id such as "E00000-00012931" or "O00001-0000042").
_PHONE_IN_TEXT = re.compile(r"(?<![\w+.\-])\+?\(?\d[\d\s().-]{5,}\d(?![\w\-])")


def mask_email(value: str) -> str:
    """``jane.doe@gmail.com`` -> ``j***@g***.com`` (first letters and the top-level domain only)."""
    m = _EMAIL.search(value)
    if not m:
        return "***"
    return f"{m.group(1)}***@{m.group(2)}***{m.group(3)}"


def mask_phone(value: str) -> str:
    """``+49 170 1230123`` -> ``***0123`` (only the last four digits)."""
    digits = re.sub(r"\D", "", value)
    return "***" + digits[-4:] if len(digits) > 4 else "***"


def mask_text(value: str) -> str:
    """Mask every e-mail address and phone-like number (7+ digits with +, spaces, dashes) in free text."""
    value = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}***{m.group(3)}", value)

    def phone(m: re.Match[str]) -> str:
        s = m.group(0)
        # Timestamps and dates are not phones: only mask runs that look like a number, not a date.
        if re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}", s) or len(re.sub(r"\D", "", s)) < 7:
            return s
        return mask_phone(s)

    return _PHONE_IN_TEXT.sub(phone, value)


def _json_value(value: Any) -> Any:
    """A JSON-safe equivalent of one database or pandas value (non-finite floats become text)."""
    if value is None:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        return _json_value(value.item())
    return str(value)


def mask_example(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy of one example row with e-mails and phones masked (by column and in any text)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        v = _json_value(value)
        if isinstance(v, str):
            name = str(key).lower()
            if "email" in name or "e_mail" in name:
                v = mask_email(v)
            elif "phone" in name or "mobile" in name:
                v = mask_phone(v)
            else:
                v = mask_text(v)
        out[str(key)] = v
    return out
