"""The store's error type and SQL identifier check: the base every warehouse module builds on.

Every schema, table and column name that reaches SQL text goes through ``validate_identifier``,
so configuration can never inject SQL.
"""

from __future__ import annotations

import re

from include.segmentation.errors import SegmentationError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class WarehouseError(SegmentationError, RuntimeError):
    """A warehouse problem the user can act on (bad URL, missing table, bad identifier)."""


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise: config never reaches SQL raw."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise WarehouseError(f"invalid {what} {name!r}: use letters, digits and _ (max 63)")
    return name
