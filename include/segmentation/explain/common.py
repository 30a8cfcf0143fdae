"""What the explain modules share: the insight stage's error, the insight tables' columns, value tests.

The lowest layer of the package (it imports nothing from it), so rules, drift, top items, the
insight stage and the report can all use it without importing each other.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from include.segmentation.errors import PermanentError
from include.segmentation.store import INSIGHT_TABLES

#: Column names of every insight table, by kind (``rules``, ``transitions``, ``drift``, ``top_products``).
COLUMNS: dict[str, list[str]] = {kind: [c.name for c in t.columns] for kind, t in INSIGHT_TABLES.items()}


class InsightError(PermanentError, ValueError):
    """Input the insight stage cannot work with (names the table, column and rule)."""


def as_date(value: Any) -> date | None:
    """A DATE column's value as read from either warehouse (date or ISO text); None when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def has_text(value: Any) -> bool:
    """True for a non-empty string: a warning or a note is set; None, NaN and '' are not."""
    return isinstance(value, str) and bool(value)
