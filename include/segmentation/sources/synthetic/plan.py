"""The chunk's customers: their planted types, creation dates and activity plan (how many orders
and browsing sessions each has, on which range of days before S), type by type.

The plan functions run in ``ALL_TYPES`` order and each draws from the chunk's generator in a fixed
order: that order is part of the determinism contract (same seed, same rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from include.segmentation.sources.synthetic.behaviour import CREATED_AGO, TYPE_CODE
from include.segmentation.sources.synthetic.catalogue import (
    ALL_TYPES,
    DAY,
    DORMANT,
    DORMANT_SHARE,
    PLANTED_TYPES,
    TYPE_SHARES,
)
from include.segmentation.sources.synthetic.sampling import Clock, Segments


@dataclass(frozen=True)
class Population:
    """The customers of a chunk by chunk-local index ``0 .. n-1``."""

    ctype: np.ndarray  # type code
    created: np.ndarray  # epoch seconds (before the "never after the first activity" fix)
    cap: np.ndarray  # activity happens on days strictly after the creation day, inside the window
    scale: float  # min(1, days / 365): the year-relative bounds shrink with short windows

    @property
    def n(self) -> int:
        """Number of customers."""
        return int(self.ctype.size)

    def ago(self, x: Any) -> np.ndarray:
        """Nominal days-before-S to the window's scale (identity when days >= 365)."""
        return np.floor(np.asarray(x, dtype=float) * self.scale).astype(np.int64)

    def of(self, type_name: str) -> np.ndarray:
        """Chunk-local indexes of the customers of one type."""
        return np.arange(self.n)[self.ctype == TYPE_CODE[type_name]]


def draw_population(rng: np.random.Generator, clock: Clock, n: int, days: int) -> Population:
    """Planted types (by ``TYPE_SHARES`` plus the dormant share) and creation dates of ``n`` customers."""
    scale = min(1.0, days / 365.0)
    shares = np.array([TYPE_SHARES[t] for t in PLANTED_TYPES]) * (1 - DORMANT_SHARE)
    shares = np.append(shares, DORMANT_SHARE)
    ctype = rng.choice(len(ALL_TYPES), size=n, p=shares / shares.sum())
    lo_c, hi_c = CREATED_AGO[ctype, 0], CREATED_AGO[ctype, 1]
    created_ago = (lo_c + rng.random(n) * (hi_c - lo_c)) * scale  # days, fractional
    created = clock.s_epoch - np.round(created_ago * DAY).astype(np.int64)
    cap = np.minimum(days, np.floor(created_ago).astype(np.int64))
    return Population(ctype=ctype, created=created, cap=cap, scale=scale)


class _Step(NamedTuple):
    """``counts`` items per customer into ``orders`` or ``sessions``, on days ``[lo, hi)`` before S.

    ``lo``/``hi`` are nominal days (scaled with the window); ``hi`` is capped by the customer's
    creation (``None``: the cap itself). ``required``: at least the last day, never empty.
    """

    into: str
    counts: tuple[Any, ...]  # a _draw_counts spec (not ``count``: that would shadow tuple.count)
    lo: int
    hi: int | None
    required: bool = False


_ONE = ("one",)


def _regular(recent: int, in_year: tuple[int, int], before: float, browse_year: float, browse_before: float) -> tuple[_Step, ...]:
    """A regular buyer: an order within ``recent`` days, ``in_year`` (integers range) more in the
    trailing year, Poisson(``before``) before it; Poisson browse sessions in the year and before."""
    return (
        _Step("orders", _ONE, 0, recent, required=True),
        _Step("orders", ("integers", *in_year), 0, 365),
        _Step("orders", ("poisson", before), 366, None),
        _Step("sessions", ("poisson", browse_year), 0, 365),
        _Step("sessions", ("poisson", browse_before), 366, None),
    )


# What each type does, step by step; the steps draw in this order (ALL_TYPES order, then listed).
_PLAN: dict[str, tuple[_Step, ...]] = {
    "loyal_high_spender": _regular(recent=14, in_year=(14, 30), before=6, browse_year=2.5, browse_before=1.5),
    "bargain_hunter": _regular(recent=60, in_year=(4, 12), before=2, browse_year=2.5, browse_before=1),
    "one_time_buyer": (
        _Step("orders", _ONE, 100, 330, required=True),
        _Step("sessions", ("poisson", 1.0), 0, 365),
    ),
    "lapsed": (
        _Step("orders", ("integers", 3, 11), 200, 364, required=True),
        _Step("orders", ("poisson", 2), 366, None),
        _Step("sessions", ("poisson", 1), 200, 364),
        _Step("sessions", ("poisson", 1), 366, None),
    ),
    "window_shopper": (
        _Step("orders", ("bernoulli", 0.35), 366, None),
        _Step("sessions", _ONE, 0, 14, required=True),
        _Step("sessions", ("poisson", 4), 0, 365),
        _Step("sessions", ("poisson", 1), 366, None),
    ),
    "new_customer": (
        _Step("orders", ("choice", (1, 2, 3), (0.25, 0.45, 0.30)), 0, None, required=True),
        _Step("sessions", ("poisson", 2), 0, None),
    ),
    DORMANT: (
        _Step("orders", ("poisson", 1.5), 366, None),
        _Step("sessions", ("poisson", 1), 366, None),
    ),
}


def _draw_counts(rng: np.random.Generator, count: tuple[Any, ...], size: int) -> np.ndarray:
    """Items per customer for one step: one each, uniform integers, Poisson, a coin or a choice."""
    kind, *args = count
    if kind == "one":
        return np.ones(size)
    if kind == "integers":
        return rng.integers(args[0], args[1], size)
    if kind == "poisson":
        return rng.poisson(args[0], size)
    if kind == "bernoulli":
        return (rng.random(size) < args[0]).astype(np.int64)
    if kind == "choice":
        return rng.choice(np.array(args[0]), size=size, p=list(args[1]))
    raise ValueError(f"unknown count kind {kind!r}")


def plan_activity(rng: np.random.Generator, population: Population) -> tuple[Segments, Segments]:
    """The planned orders and browsing sessions of every customer, type by type in ``ALL_TYPES`` order."""
    p = population
    segments = {"orders": Segments.empty(), "sessions": Segments.empty()}
    for type_name in ALL_TYPES:
        w = p.of(type_name)
        cap = p.cap[w]
        for step in _PLAN[type_name]:
            hi = cap if step.hi is None else np.minimum(p.ago(step.hi), cap)
            segments[step.into].add(w, _draw_counts(rng, step.counts, w.size), p.ago(step.lo), hi, step.required)
    return segments["orders"], segments["sessions"]


def latest_activity(population: Population, clock: Clock) -> np.ndarray:
    """Epoch second after which no activity of a customer may fall (used to bound returns).

    Lapsed customers stop ~200 days before S; window shoppers' and dormant customers' old orders
    are before the trailing year.
    """
    p = population
    latest_ago = np.zeros(p.n, dtype=np.int64)
    latest_ago[p.ctype == TYPE_CODE["lapsed"]] = p.ago(200)
    latest_ago[p.ctype == TYPE_CODE["window_shopper"]] = p.ago(365)
    latest_ago[p.ctype == TYPE_CODE[DORMANT]] = p.ago(365)
    return clock.s_epoch - latest_ago * DAY - 1


def customer_numbers(local: np.ndarray, cust_number: np.ndarray) -> np.ndarray:
    """Customer numbers of chunk-local indexes; -1 (guest / anonymous) stays -1."""
    return np.where(local >= 0, cust_number[np.maximum(local, 0)], -1)
