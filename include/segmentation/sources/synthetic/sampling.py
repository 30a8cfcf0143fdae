"""Vectorised sampling helpers: group positions, categorical draws, seasonal timestamps, day ranges
of planned activity and product picks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import numpy as np

from include.segmentation.sources.synthetic.behaviour import FAV_SHARE, HOUR_P, MONTH_FACTOR, PRICE_SKEW, WEEKDAY_FACTOR
from include.segmentation.sources.synthetic.catalogue import CATEGORIES, DAY, Catalogue


def within(counts: np.ndarray) -> np.ndarray:
    """Position of each item within its group, for groups laid out one after another."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def rank(values: np.ndarray) -> np.ndarray:
    """Rank of each item by value, from 0 (ties keep their order)."""
    out = np.empty(values.size, dtype=np.int64)
    out[np.argsort(values, kind="stable")] = np.arange(values.size)
    return out


def categorical(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """One draw per row of ``cum`` (rows of cumulative probabilities)."""
    r = rng.random(int(cum.shape[0]))  # int: an untyped shape entry would select the scalar overload
    return np.minimum((r[:, None] > cum).sum(axis=1), cum.shape[1] - 1)


def pick_products(rng: np.random.Generator, cat: Catalogue, tcode: np.ndarray, fav: np.ndarray) -> np.ndarray:
    """Catalogue indexes: favourite category or a random one; within it, cheap or dear by type."""
    n = tcode.size
    use_fav = rng.random(n) < FAV_SHARE[tcode]
    random_cat = rng.choice(len(CATEGORIES), size=n, p=cat.cat_p)
    c = np.where(use_fav, fav, random_cat)
    u = rng.random(n) ** PRICE_SKEW[tcode]
    pos = np.minimum((u * cat.cat_count[c]).astype(np.int64), cat.cat_count[c] - 1)
    return cat.cat_start[c] + pos


@dataclass
class Clock:
    """Seasonal day sampling inside the window ``[S - days, S)``."""

    s_epoch: int
    days: int
    cdf: np.ndarray  # len days + 1

    @classmethod
    def make(cls, end_date: date, days: int) -> Clock:
        """The clock of a window of ``days`` days ending on ``end_date`` (S = the day after)."""
        s_epoch = int(datetime(end_date.year, end_date.month, end_date.day, tzinfo=timezone.utc).timestamp()) + DAY
        day_numbers = np.arange(s_epoch // DAY - days, s_epoch // DAY)
        d64 = day_numbers.astype("datetime64[D]")
        weekday = (day_numbers + 3) % 7  # 1970-01-01 was a Thursday
        month = d64.astype("datetime64[M]").astype(np.int64) % 12
        dom = (d64 - d64.astype("datetime64[M]")).astype(np.int64) + 1
        w = WEEKDAY_FACTOR[weekday] * MONTH_FACTOR[month]
        w = np.where((month == 11) & (dom >= 25), w * 0.45, w)  # Christmas days are quiet
        w = np.where((month == 10) & (dom >= 23) & (dom <= 30), w * 1.3, w)  # Black Friday week
        return cls(s_epoch=s_epoch, days=days, cdf=np.concatenate([[0.0], np.cumsum(w)]))

    def sample(self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Epoch seconds, one per item, on a day ``lo <= days before S' last day < hi`` (``hi > lo``)."""
        a = self.days - np.asarray(hi, dtype=np.int64)  # first day index
        b = self.days - np.asarray(lo, dtype=np.int64)  # one past the last day index
        u = self.cdf[a] + rng.random(a.size) * (self.cdf[b] - self.cdf[a])
        k = np.clip(np.searchsorted(self.cdf, u, side="right") - 1, a, b - 1)
        hour = rng.choice(24, size=a.size, p=HOUR_P)
        tod = hour * 3600 + rng.integers(0, 3600, size=a.size)
        return self.s_epoch - (self.days - k) * DAY + tod


@dataclass
class Segments:
    """Items (orders or sessions) of customers, each on a day in ``[lo, hi)`` days before S."""

    owner: list[np.ndarray]
    lo: list[np.ndarray]
    hi: list[np.ndarray]

    @classmethod
    def empty(cls) -> Segments:
        """No items yet."""
        return cls([], [], [])

    def add(self, who: np.ndarray, counts: np.ndarray, lo: Any, hi: Any, required: bool = False) -> None:
        """``counts`` items for each customer of ``who`` in ``[lo, hi)``; none where the range is empty
        unless ``required`` (then at worst on the last day)."""
        who = np.asarray(who, dtype=np.int64)
        lo = np.broadcast_to(np.asarray(lo, dtype=np.int64), who.shape)
        hi = np.broadcast_to(np.asarray(hi, dtype=np.int64), who.shape)
        lo = np.minimum(lo, hi)
        if required:  # never empty: at worst the last day
            empty = hi <= lo
            lo = np.where(empty, 0, lo)
            hi = np.where(empty, 1, hi)
        counts = np.where(hi > lo, np.asarray(counts, dtype=np.int64), 0)
        self.owner.append(np.repeat(who, counts))
        self.lo.append(np.repeat(lo, counts))
        self.hi.append(np.repeat(hi, counts))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Owners, ``lo`` and ``hi`` of all items, in the order they were added."""
        if not self.owner:
            z = np.zeros(0, dtype=np.int64)
            return z, z, z
        return np.concatenate(self.owner), np.concatenate(self.lo), np.concatenate(self.hi)
