"""Sync planning: the diff between who an audience should contain and what the destination accepted, in batches.

Pure functions, no I/O: sorted output, so the same inputs always give the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

from include.segmentation.audiences.config import Audience
from include.segmentation.audiences.membership import Key


@dataclass
class Diff:
    """What a run must send."""

    adds: list[Key]
    removes: list[Key]
    consent_removals: int = 0


def plan_diff(audience: Audience, members: set[Key], state: set[Key], *, full_resend: bool = False,
              withdrawn: set[Key] | None = None) -> Diff:
    """Adds and removes for one run (sorted, so batches are deterministic)."""
    adds = members if full_resend else members - state
    if audience.mode == "mirror":
        removes = state - members
        consent = len(removes & (withdrawn or set()))
    else:
        removes = (state & (withdrawn or set())) - members
        consent = len(removes)
    return Diff(adds=sorted(adds), removes=sorted(removes), consent_removals=consent)


def plan_batches(diff: Diff, batch_size: int) -> list[tuple[str, str, list[str]]]:
    """(op, id_type, hashes) batches: removes first, one identifier kind per batch."""
    batches: list[tuple[str, str, list[str]]] = []
    for op, keys in (("remove", diff.removes), ("add", diff.adds)):
        by_kind: dict[str, list[str]] = {}
        for kind, hashed in keys:
            by_kind.setdefault(kind, []).append(hashed)
        for kind in sorted(by_kind):
            hashes = by_kind[kind]
            for i in range(0, len(hashes), batch_size):
                batches.append((op, kind, hashes[i:i + batch_size]))
    return batches

