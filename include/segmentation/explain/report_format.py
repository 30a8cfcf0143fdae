"""Text formatting of values for the HTML report: escaping and compact numbers, counts and percentages.

Every value that reaches the report passes through one of these, so a missing value (None, NaN,
``pd.NA``) always reads the same ('' or '–') and nothing unescaped reaches the page.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd


def is_missing(v: Any) -> bool:
    """None, NaN, NaT or ``pd.NA`` (a list or other non-scalar is not missing)."""
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def esc(value: Any) -> str:
    """HTML-escape anything (None/NaN -> empty)."""
    return "" if is_missing(value) else html.escape(str(value), quote=True)


def fmt_num(v: Any, digits: int = 2) -> str:
    """Compact number: 1,234 / 12.3 / 0.123; '–' when missing."""
    if is_missing(v):
        return "–"
    x = float(v)
    if not math.isfinite(x):
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def fmt_int(v: Any) -> str:
    """A count: 1,234; '–' when missing."""
    if is_missing(v):
        return "–"
    return f"{round(float(v)):,}"


def fmt_pct(v: Any, digits: int = 1) -> str:
    """0.1234 -> '12.3%'."""
    if is_missing(v):
        return "–"
    return f"{float(v) * 100:.{digits}f}%"


def markdown_table(table: pd.DataFrame, columns: list[tuple[str, str]]) -> str:
    """A Markdown table of ``table``'s rows: ``columns`` are (header, format string over the row's
    fields, e.g. ``"{size:,}"``); the first column is left-aligned, the others right-aligned (figures)."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |",
             "| --- |" + " ---: |" * (len(columns) - 1)]
    for row in table.to_dict("records"):
        lines.append("| " + " | ".join(fmt.format(**row) for _, fmt in columns) + " |")
    return "\n".join(lines)
