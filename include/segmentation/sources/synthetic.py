"""Deterministic synthetic e-commerce data for the source contract, with planted customer types.

``generate_chunk`` is pure: it returns the rows of one chunk of customers (their transactions,
browsing events, the guest orders and anonymous sessions that go with them) and the planted ground
truth. ``generate_to_warehouse`` loads chunk after chunk into ``raw.*`` and
``evaluation.planted_types`` in ONE transaction, so a failed load leaves the warehouse as it was.

Time. ``S = end_date + 1 day`` (00:00 UTC) is the snapshot date the data is made for; every
timestamp is ``< S`` and every transaction/event timestamp is ``>= S - days``. Customers may have
been created before the window (``created_at`` is an attribute, not an event); ``created_at`` is
never after a customer's first order or event.

Planted types (ground truth only in ``evaluation.planted_types``), as seen in the trailing 365 days
before S:

- ``loyal_high_spender``: 15-36 orders, last within 14 days, expensive items, few discounts and
  returns, broad categories, tenure > 1 year, browsing that mostly ends in checkout;
- ``bargain_hunter``: 5-12 orders, last within 60 days, cheap items, most lines discounted
  (30-60 % of the line), many (deal) searches, many returns;
- ``one_time_buyer``: exactly one order, 100-329 days before S, little browsing;
- ``lapsed``: 3-10 orders, all 200-363 days before S, no browsing after ~200 days before S,
  tenure > 1 year;
- ``window_shopper``: no order in the year (maybe one long before), many long sessions with
  add-to-cart and remove-from-cart but no checkout, a session within the last 14 days;
- ``new_customer``: created 2-44 days before S, 1-3 orders since, some browsing;
- ``dormant`` (~3 %, outside the segmented population): no activity at all in the trailing year.

With ``days < 365`` the year-relative bounds above are scaled down to fit the window.

Conventions the pipeline relies on:

- A *return* is its own order (``order_id`` of its own, only negative-quantity lines, discount 0)
  referencing a product the customer bought in an earlier order, 3-30 days later. So "orders" are
  distinct ``order_id`` with positive quantities, and a line's net value is
  ``quantity * unit_price - discount``.
- ``discount`` is the total discount of the line: ``0 <= discount <= quantity * unit_price``.
- Guest checkouts (~8 % of lines) have ``customer_id`` NULL; ~25 % of browsing events are
  anonymous (``customer_id`` NULL). Returns of guest orders are guest lines too.
- ``event_type`` in ``contract.EVENT_TYPES``. ``product_id``/``category`` are set on
  product_view/add_to_cart/remove_from_cart, ``category`` on searches and category pages,
  ``search_query`` on searches only; checkout events carry neither.
- Ids: ``C0000001`` (customers), ``O00000-0000001`` (orders), ``S00000-0000001`` (sessions),
  ``E00000-00000001`` (events); the first number is the chunk, so ids are unique across chunks.

Determinism: one ``numpy`` generator per chunk seeded with ``(seed, 1, chunk_index)`` and the
product catalogue from ``(seed, 0)``; the same arguments (including the chunk size) give the same
rows on every machine.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from numpy.dtypes import StringDType
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from include.segmentation.sources import contract
from include.segmentation.store import WarehouseError, bulk_insert, describe, is_sqlite

PLANTED_TYPES: tuple[str, ...] = (
    "loyal_high_spender",
    "bargain_hunter",
    "one_time_buyer",
    "lapsed",
    "window_shopper",
    "new_customer",
)
DORMANT = "dormant"
ALL_TYPES: tuple[str, ...] = PLANTED_TYPES + (DORMANT,)

# Shares of the segmented types, then ~3 % dormant customers on top.
TYPE_SHARES: dict[str, float] = {
    "loyal_high_spender": 0.12,
    "bargain_hunter": 0.18,
    "one_time_buyer": 0.20,
    "lapsed": 0.15,
    "window_shopper": 0.20,
    "new_customer": 0.15,
}
DORMANT_SHARE = 0.03
GUEST_LINE_SHARE = 0.08
ANONYMOUS_EVENT_SHARE = 0.25

MAX_CUSTOMERS = 100_000_000
DAY = 86_400

# Column order of the frames (exactly the contract's columns).
COLUMNS: dict[str, list[str]] = {
    "customers": [c.name for c in contract.customers.columns],
    "transactions": [c.name for c in contract.transactions.columns],
    "browsing_events": [c.name for c in contract.browsing_events.columns],
    "planted_types": [c.name for c in contract.planted_types.columns],
}

_S = StringDType()
_NULL = "\\N"  # NULL marker of the COPY payloads

# ---------------------------------------------------------------------------------------------
# Static vocabularies (no commas, quotes, backslashes or newlines: they go into CSV unquoted).
# ---------------------------------------------------------------------------------------------

# (category, weight, median price in GBP, nouns people search for)
_CATEGORIES: tuple[tuple[str, float, float, tuple[str, ...]], ...] = (
    ("Clothing", 0.16, 32.0, ("dress", "jeans", "t-shirt", "hoodie", "jacket", "jumper", "skirt", "coat")),
    ("Shoes", 0.08, 55.0, ("trainers", "running shoes", "boots", "sandals", "heels", "slippers", "loafers")),
    ("Accessories", 0.07, 22.0, ("handbag", "wallet", "sunglasses", "scarf", "belt", "watch", "backpack")),
    ("Beauty", 0.09, 16.0, ("moisturiser", "lipstick", "perfume", "shampoo", "face serum", "mascara", "nail polish")),
    ("Home & Kitchen", 0.12, 38.0, ("coffee machine", "frying pan", "bedding set", "towels", "lamp", "kettle", "cushion")),
    ("Garden", 0.05, 28.0, ("garden hose", "plant pot", "lawn mower", "bird feeder", "garden chair", "seeds")),
    ("Electronics", 0.10, 95.0, ("headphones", "phone case", "charger", "bluetooth speaker", "smart watch", "tablet", "laptop")),
    ("Books", 0.08, 11.0, ("cookbook", "crime novel", "children's book", "biography", "notebook", "fantasy series")),
    ("Toys & Games", 0.07, 24.0, ("lego", "board game", "puzzle", "teddy bear", "doll house", "remote control car")),
    ("Sports & Outdoors", 0.07, 40.0, ("yoga mat", "dumbbells", "tent", "cycling helmet", "water bottle", "football")),
    ("Grocery", 0.07, 6.0, ("coffee beans", "olive oil", "green tea", "chocolate", "protein bars", "pasta")),
    ("Pet Supplies", 0.04, 14.0, ("dog food", "cat litter", "dog bed", "cat toy", "fish food", "dog lead")),
)
CATEGORIES: tuple[str, ...] = tuple(c[0] for c in _CATEGORIES)
_PLAIN_MODIFIERS = ("", "", "", "best", "new", "black", "white", "blue", "large", "small", "gift", "premium", "kids", "womens", "mens")
_DEAL_MODIFIERS = ("cheap", "sale", "discount", "clearance", "deals", "offer", "cheapest", "bargain", "half price", "under 20")
N_PRODUCTS = 4_000

_COUNTRIES: tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...] = (
    ("United Kingdom", 0.55, (("London", 0.35), ("Manchester", 0.12), ("Birmingham", 0.12), ("Leeds", 0.08),
                              ("Glasgow", 0.08), ("Bristol", 0.08), ("Liverpool", 0.07), ("Edinburgh", 0.10))),
    ("Ireland", 0.04, (("Dublin", 0.7), ("Cork", 0.2), ("Galway", 0.1))),
    ("Germany", 0.08, (("Berlin", 0.4), ("Munich", 0.3), ("Hamburg", 0.3))),
    ("France", 0.07, (("Paris", 0.6), ("Lyon", 0.2), ("Marseille", 0.2))),
    ("Spain", 0.04, (("Madrid", 0.55), ("Barcelona", 0.45))),
    ("Netherlands", 0.04, (("Amsterdam", 0.6), ("Rotterdam", 0.4))),
    ("Italy", 0.03, (("Milan", 0.5), ("Rome", 0.5))),
    ("United States", 0.15, (("New York", 0.35), ("Los Angeles", 0.25), ("Chicago", 0.2), ("Boston", 0.2))),
)
COUNTRIES: tuple[str, ...] = tuple(c[0] for c in _COUNTRIES)
# '#' is a random digit. First the national formats, then the international ones.
_PHONE_FORMATS: dict[str, tuple[str, ...]] = {
    "United Kingdom": ("07### ######", "+44 7### ######", "+447#########", "07700 900###", "+44 7700 900###"),
    "Ireland": ("08# ### ####", "+353 8# ### ####"),
    "Germany": ("015# ########", "+49 15# ########"),
    "France": ("06 ## ## ## ##", "+33 6 ## ## ## ##"),
    "Spain": ("6## ### ###", "+34 6## ### ###"),
    "Netherlands": ("06-########", "+31 6 ########"),
    "Italy": ("3## ### ####", "+39 3## ### ####"),
    "United States": ("(212) 555-0###", "(415) ###-####", "+1 312-###-####", "617.###.####", "(206) ###-####"),
}
_FIRST_NAMES = (
    "oliver", "george", "harry", "jack", "noah", "leo", "arthur", "muhammad", "oscar", "charlie", "james", "william",
    "thomas", "lucas", "henry", "olivia", "amelia", "isla", "ava", "mia", "ivy", "lily", "isabella", "rosie", "sophia",
    "grace", "freya", "emily", "ella", "sophie", "liam", "emma", "lena", "paul", "marie", "luca", "giulia", "pablo",
    "lucia", "daan", "sanne", "aoife", "sean", "michael", "sarah", "david", "jessica", "daniel", "ashley", "chloe",
)
_LAST_NAMES = (
    "smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel", "wright", "robinson",
    "thompson", "evans", "walker", "white", "roberts", "green", "hall", "wood", "jackson", "clarke", "khan", "murphy",
    "kelly", "obrien", "muller", "schmidt", "schneider", "martin", "bernard", "dubois", "garcia", "fernandez",
    "lopez", "rossi", "russo", "ferrari", "dejong", "devries", "jansen", "miller", "davis", "anderson", "moore",
    "lee", "harris", "clark", "lewis", "young", "king",
)
_EMAIL_DOMAINS = (
    ("gmail.com", 0.33), ("outlook.com", 0.13), ("hotmail.co.uk", 0.10), ("yahoo.com", 0.09), ("icloud.com", 0.09),
    ("example.com", 0.12), ("example.org", 0.06), ("btinternet.com", 0.04), ("gmx.de", 0.02), ("orange.fr", 0.02),
)

# ---------------------------------------------------------------------------------------------
# Behaviour of each type. Index 0-5 = PLANTED_TYPES, 6 = dormant, 7 = guests/anonymous visitors.
# ---------------------------------------------------------------------------------------------
_GUEST = 7
_T = {name: i for i, name in enumerate(ALL_TYPES)}

# created_at, in (nominal) days before S.
_CREATED_AGO = np.array([(400, 1800), (200, 1400), (120, 900), (400, 1600), (60, 1200), (2, 44), (500, 2200)], dtype=float)
# Extra lines per order (Poisson), quantity lognormal mu, price skew exponent (<1: expensive items),
# favourite-category share, discount probability, discount fraction range, return probability.
_EXTRA_LINES = np.array([0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])
_QTY_MU = np.array([-1.3, -0.4, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0])
_PRICE_SKEW = np.array([0.2, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
_FAV_SHARE = np.array([0.15, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0])
_DISC_P = np.array([0.05, 0.85, 0.25, 0.2, 0.3, 0.4, 0.2, 0.15])
_DISC_LO = np.array([0.05, 0.30, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
_DISC_HI = np.array([0.20, 0.60, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25])
_RETURN_P = np.array([0.03, 0.18, 0.01, 0.08, 0.06, 0.01, 0.05, 0.05])
# Browsing: probability that an order comes with a (checkout) session, extra events per browsing
# session (Poisson), median dwell seconds, share of deal searches, mix of the events after the
# first page_view: page_view, product_view, search, add_to_cart, remove_from_cart.
_PURCHASE_SESSION_P = np.array([0.2, 0.3, 1.0, 0.45, 0.5, 0.8, 0.3, 0.3])
_EXTRA_EVENTS = np.array([3.0, 4.0, 2.0, 3.0, 4.0, 3.0, 2.0, 2.0])
_DWELL_MEDIAN = np.array([30.0, 25.0, 30.0, 30.0, 95.0, 35.0, 30.0, 25.0])
_DEAL_SEARCH = np.array([0.1, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
_MIX = np.array(
    [
        [0.20, 0.58, 0.10, 0.10, 0.02],
        [0.12, 0.37, 0.41, 0.08, 0.02],
        [0.35, 0.52, 0.08, 0.04, 0.01],
        [0.25, 0.55, 0.10, 0.08, 0.02],
        [0.08, 0.40, 0.07, 0.28, 0.17],
        [0.25, 0.55, 0.10, 0.08, 0.02],
        [0.35, 0.52, 0.08, 0.04, 0.01],
        [0.35, 0.45, 0.12, 0.06, 0.02],
    ]
)
_MIX_CUM = np.cumsum(_MIX, axis=1)
_EV_PAGE, _EV_PRODUCT, _EV_SEARCH, _EV_ADD, _EV_REMOVE, _EV_CHECKOUT = range(6)
_DWELL_FACTOR = np.array([0.7, 1.0, 0.4, 0.3, 0.3, 1.5])

_WEEKDAY_FACTOR = np.array([0.9, 0.9, 0.95, 1.0, 1.1, 1.3, 1.35])  # Monday .. Sunday
_MONTH_FACTOR = np.array([0.95, 0.8, 0.9, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 1.0, 1.4, 1.7])
_HOUR_WEIGHT = np.array(
    [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 1.0, 1.1, 1.2, 1.2, 1.3, 1.3, 1.2, 1.2, 1.3, 1.5, 1.8, 2.0, 2.1, 1.9, 1.3, 0.7]
)
_HOUR_P = _HOUR_WEIGHT / _HOUR_WEIGHT.sum()


# ---------------------------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Catalogue:
    product_str: np.ndarray  # StringDType, product ids by catalogue index
    category: np.ndarray  # category code by catalogue index
    price_cents: np.ndarray  # by catalogue index
    cat_start: np.ndarray  # first index of each category (catalogue sorted by category, then price)
    cat_count: np.ndarray
    cat_p: np.ndarray
    query_str: np.ndarray  # StringDType: all search queries
    query_start: np.ndarray  # [category, deal] -> first query index
    query_count: np.ndarray


@lru_cache(maxsize=8)
def _catalogue(seed: int) -> _Catalogue:
    rng = np.random.default_rng([seed, 0])
    cat_p = np.array([c[1] for c in _CATEGORIES])
    cat_p = cat_p / cat_p.sum()
    counts = np.maximum(rng.multinomial(N_PRODUCTS - 20 * len(CATEGORIES), cat_p) + 20, 1)
    category = np.repeat(np.arange(len(CATEGORIES)), counts)
    median = np.array([c[2] for c in _CATEGORIES])[category]
    price = np.round(rng.lognormal(np.log(median), 0.7) * 100).astype(np.int64)
    price = np.maximum(price, 50)
    # Psychological prices: most end in .99 or .49.
    ending = rng.choice(np.array([99, 49, 0]), size=price.size, p=[0.6, 0.25, 0.15])
    price = np.where(ending > 0, (price // 100) * 100 + ending, price)
    order = np.lexsort((price, category))
    category, price = category[order], price[order]
    ids = rng.permutation(N_PRODUCTS) + 1  # product ids do not reveal the price rank
    product_str = np.strings.add("P", np.strings.zfill(ids.astype(_S), 5))
    cat_count = np.bincount(category, minlength=len(CATEGORIES))
    cat_start = np.cumsum(cat_count) - cat_count

    queries: list[str] = []
    q_start = np.zeros((len(CATEGORIES), 2), dtype=np.int64)
    q_count = np.zeros((len(CATEGORIES), 2), dtype=np.int64)
    for ci, (_name, _w, _m, nouns) in enumerate(_CATEGORIES):
        for deal, mods in enumerate((_PLAIN_MODIFIERS, _DEAL_MODIFIERS)):
            q_start[ci, deal] = len(queries)
            block = sorted({f"{m} {n}".strip() for m in mods for n in nouns})
            queries.extend(block)
            q_count[ci, deal] = len(block)
    return _Catalogue(
        product_str=product_str,
        category=category,
        price_cents=price,
        cat_start=cat_start,
        cat_count=cat_count,
        cat_p=cat_p,
        query_str=np.array(queries, dtype=_S),
        query_start=q_start,
        query_count=q_count,
    )


# ---------------------------------------------------------------------------------------------
# Vectorised helpers
# ---------------------------------------------------------------------------------------------
def _within(counts: np.ndarray) -> np.ndarray:
    """Position of each item within its group, for groups laid out one after another."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def _categorical(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """One draw per row of ``cum`` (rows of cumulative probabilities)."""
    r = rng.random(cum.shape[0])
    return np.minimum((r[:, None] > cum).sum(axis=1), cum.shape[1] - 1)


def _zid(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    return np.strings.add(prefix, np.strings.zfill(np.asarray(numbers, dtype=np.int64).astype(_S), width))


def _customer_str(numbers: np.ndarray) -> np.ndarray:
    return _zid("C", numbers, 7)


def _fill_template(rng: np.random.Generator, template: str, n: int) -> np.ndarray:
    """``n`` strings from a template whose ``#`` are random digits."""
    tb = np.frombuffer(template.encode("ascii"), dtype=np.uint8)
    mat = np.tile(tb, (n, 1))
    holes = np.flatnonzero(tb == ord("#"))
    mat[:, holes] = rng.integers(0, 10, size=(n, holes.size), dtype=np.uint8) + ord("0")
    return np.ascontiguousarray(mat).view(f"S{tb.size}").ravel().astype(_S)


@dataclass
class _Clock:
    """Seasonal day sampling inside the window ``[S - days, S)``."""

    s_epoch: int
    days: int
    cdf: np.ndarray  # len days + 1

    @classmethod
    def make(cls, end_date: date, days: int) -> _Clock:
        s_epoch = int(datetime(end_date.year, end_date.month, end_date.day, tzinfo=timezone.utc).timestamp()) + DAY
        day_numbers = np.arange(s_epoch // DAY - days, s_epoch // DAY)
        d64 = day_numbers.astype("datetime64[D]")
        weekday = (day_numbers + 3) % 7  # 1970-01-01 was a Thursday
        month = d64.astype("datetime64[M]").astype(np.int64) % 12
        dom = (d64 - d64.astype("datetime64[M]")).astype(np.int64) + 1
        w = _WEEKDAY_FACTOR[weekday] * _MONTH_FACTOR[month]
        w = np.where((month == 11) & (dom >= 25), w * 0.45, w)  # Christmas days are quiet
        w = np.where((month == 10) & (dom >= 23) & (dom <= 30), w * 1.3, w)  # Black Friday week
        return cls(s_epoch=s_epoch, days=days, cdf=np.concatenate([[0.0], np.cumsum(w)]))

    def sample(self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Epoch seconds, one per item, on a day ``lo <= days before S' last day < hi`` (``hi > lo``)."""
        a = self.days - np.asarray(hi, dtype=np.int64)  # first day index
        b = self.days - np.asarray(lo, dtype=np.int64)  # one past the last day index
        u = self.cdf[a] + rng.random(a.size) * (self.cdf[b] - self.cdf[a])
        k = np.clip(np.searchsorted(self.cdf, u, side="right") - 1, a, b - 1)
        hour = rng.choice(24, size=a.size, p=_HOUR_P)
        tod = hour * 3600 + rng.integers(0, 3600, size=a.size)
        return self.s_epoch - (self.days - k) * DAY + tod


@dataclass
class _Segments:
    """Items (orders or sessions) of customers, each on a day in ``[lo, hi)`` days before S."""

    owner: list[np.ndarray]
    lo: list[np.ndarray]
    hi: list[np.ndarray]

    @classmethod
    def empty(cls) -> _Segments:
        return cls([], [], [])

    def add(self, who: np.ndarray, counts: np.ndarray, lo: Any, hi: Any, required: bool = False) -> None:
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
        if not self.owner:
            z = np.zeros(0, dtype=np.int64)
            return z, z, z
        return np.concatenate(self.owner), np.concatenate(self.lo), np.concatenate(self.hi)


# ---------------------------------------------------------------------------------------------
# One chunk, as compact arrays
# ---------------------------------------------------------------------------------------------
@dataclass
class _ChunkArrays:
    chunk_index: int
    # customers
    cust_number: np.ndarray
    cust_type: np.ndarray
    created: np.ndarray  # epoch seconds
    birth_year: np.ndarray  # -1 = NULL
    gender: np.ndarray  # StringDType, _NULL = NULL
    country: np.ndarray
    city: np.ndarray
    email: np.ndarray
    phone: np.ndarray
    consent: np.ndarray  # bool
    # transaction lines
    ln_order: np.ndarray  # order number within the chunk
    ln_number: np.ndarray
    ln_cust: np.ndarray  # customer number, -1 = guest
    ln_ts: np.ndarray
    ln_product: np.ndarray  # catalogue index
    ln_category: np.ndarray  # category code, -1 = NULL
    ln_qty: np.ndarray
    ln_price: np.ndarray  # cents
    ln_discount: np.ndarray  # cents
    # browsing events
    ev_number: np.ndarray
    ev_session: np.ndarray
    ev_cust: np.ndarray  # -1 = anonymous
    ev_ts: np.ndarray
    ev_type: np.ndarray
    ev_product: np.ndarray  # -1 = NULL
    ev_category: np.ndarray  # -1 = NULL
    ev_query: np.ndarray  # -1 = NULL
    ev_dwell: np.ndarray  # tenths of a second, -1 = NULL
    catalogue: _Catalogue


def _check_chunk_args(chunk_index: int, first_customer: int, n_customers: int, days: int, end_date: date, seed: int) -> None:
    for name, value, low in (
        ("chunk_index", chunk_index, 0),
        ("first_customer", first_customer, 1),
        ("n_customers", n_customers, 1),
        ("days", days, 30),
        ("seed", seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {value}")
    if first_customer + n_customers - 1 > MAX_CUSTOMERS:
        raise ValueError(f"at most {MAX_CUSTOMERS:,} customers are supported")
    if isinstance(end_date, datetime) or not isinstance(end_date, date):
        raise ValueError(f"end_date must be a date (YYYY-MM-DD), got {end_date!r}")


def _build_chunk(chunk_index: int, first_customer: int, n_customers: int, days: int, end_date: date, seed: int) -> _ChunkArrays:
    _check_chunk_args(chunk_index, first_customer, n_customers, days, end_date, seed)
    cat = _catalogue(int(seed))
    rng = np.random.default_rng([int(seed), 1, int(chunk_index)])
    clock = _Clock.make(end_date, days)
    n = int(n_customers)
    scale = min(1.0, days / 365.0)

    def ago(x: Any) -> np.ndarray:
        """Nominal days-before-S to the window's scale (identity when days >= 365)."""
        return np.floor(np.asarray(x, dtype=float) * scale).astype(np.int64)

    # ----- customers and their types
    shares = np.array([TYPE_SHARES[t] for t in PLANTED_TYPES]) * (1 - DORMANT_SHARE)
    shares = np.append(shares, DORMANT_SHARE)
    ctype = rng.choice(len(ALL_TYPES), size=n, p=shares / shares.sum())
    lo_c, hi_c = _CREATED_AGO[ctype, 0], _CREATED_AGO[ctype, 1]
    created_ago = (lo_c + rng.random(n) * (hi_c - lo_c)) * scale  # days, fractional
    created = clock.s_epoch - np.round(created_ago * DAY).astype(np.int64)
    # Activity happens on days strictly after the creation day, inside the window.
    cap = np.minimum(days, np.floor(created_ago).astype(np.int64))
    idx = np.arange(n)

    def of(t: str) -> np.ndarray:
        return idx[ctype == _T[t]]

    y1 = ago(365)
    y2 = ago(366)
    orders = _Segments.empty()
    sessions = _Segments.empty()

    w = of("loyal_high_spender")
    orders.add(w, np.ones(w.size), 0, np.minimum(ago(14), cap[w]), required=True)
    orders.add(w, rng.integers(14, 30, w.size), 0, np.minimum(y1, cap[w]))
    orders.add(w, rng.poisson(6, w.size), y2, cap[w])
    sessions.add(w, rng.poisson(2.5, w.size), 0, np.minimum(y1, cap[w]))
    sessions.add(w, rng.poisson(1.5, w.size), y2, cap[w])

    w = of("bargain_hunter")
    orders.add(w, np.ones(w.size), 0, np.minimum(ago(60), cap[w]), required=True)
    orders.add(w, rng.integers(4, 12, w.size), 0, np.minimum(y1, cap[w]))
    orders.add(w, rng.poisson(2, w.size), y2, cap[w])
    sessions.add(w, rng.poisson(2.5, w.size), 0, np.minimum(y1, cap[w]))
    sessions.add(w, rng.poisson(1, w.size), y2, cap[w])

    w = of("one_time_buyer")
    orders.add(w, np.ones(w.size), ago(100), np.minimum(ago(330), cap[w]), required=True)
    sessions.add(w, rng.poisson(1.0, w.size), 0, np.minimum(y1, cap[w]))

    w = of("lapsed")
    orders.add(w, rng.integers(3, 11, w.size), ago(200), np.minimum(ago(364), cap[w]), required=True)
    orders.add(w, rng.poisson(2, w.size), y2, cap[w])
    sessions.add(w, rng.poisson(1, w.size), ago(200), np.minimum(ago(364), cap[w]))
    sessions.add(w, rng.poisson(1, w.size), y2, cap[w])

    w = of("window_shopper")
    orders.add(w, (rng.random(w.size) < 0.35).astype(np.int64), y2, cap[w])
    sessions.add(w, np.ones(w.size), 0, np.minimum(ago(14), cap[w]), required=True)
    sessions.add(w, rng.poisson(4, w.size), 0, np.minimum(y1, cap[w]))
    sessions.add(w, rng.poisson(1, w.size), y2, cap[w])

    w = of("new_customer")
    orders.add(w, rng.choice(np.array([1, 2, 3]), size=w.size, p=[0.25, 0.45, 0.30]), 0, cap[w], required=True)
    sessions.add(w, rng.poisson(2, w.size), 0, cap[w])

    w = of(DORMANT)
    orders.add(w, rng.poisson(1.5, w.size), y2, cap[w])
    sessions.add(w, rng.poisson(1, w.size), y2, cap[w])

    # No activity of a customer may fall after this moment (lapsed: ~200 days, window shoppers'
    # and dormant customers' old orders: before the trailing year). Used to bound returns.
    latest_ago = np.zeros(n, dtype=np.int64)
    latest_ago[ctype == _T["lapsed"]] = ago(200)
    latest_ago[ctype == _T["window_shopper"]] = y1
    latest_ago[ctype == _T[DORMANT]] = y1
    latest_ts = clock.s_epoch - latest_ago * DAY - 1

    fav = rng.choice(len(CATEGORIES), size=n, p=cat.cat_p)

    # ----- customer orders
    o_cust, o_lo, o_hi = orders.arrays()
    o_ts = clock.sample(rng, o_lo, o_hi)
    o_type = ctype[o_cust]
    n_cust_orders = o_cust.size

    # ----- lines of customer orders (guests follow, sized to ~8 % of all lines)
    def make_lines(o_type_: np.ndarray, o_fav: np.ndarray) -> tuple[np.ndarray, ...]:
        k = 1 + rng.poisson(_EXTRA_LINES[o_type_])
        line_order = np.repeat(np.arange(o_type_.size), k)
        lt = o_type_[line_order]
        prod = _pick_products(rng, cat, lt, o_fav[line_order])
        qty = 1 + np.floor(rng.lognormal(_QTY_MU[lt], 0.75)).astype(np.int64)
        qty = np.minimum(qty, 40)
        price = cat.price_cents[prod]
        gross = qty * price
        disc_on = rng.random(lt.size) < _DISC_P[lt]
        frac = _DISC_LO[lt] + rng.random(lt.size) * (_DISC_HI[lt] - _DISC_LO[lt])
        disc = np.where(disc_on, np.floor(gross * frac), 0).astype(np.int64)
        return line_order, k, prod, qty, price, disc

    c_line_order, c_k, c_prod, c_qty, c_price, c_disc = make_lines(o_type, fav[o_cust])
    n_guest_lines = int(round(c_line_order.size * GUEST_LINE_SHARE / (1 - GUEST_LINE_SHARE)))
    n_guest_orders = int(round(n_guest_lines / (1 + _EXTRA_LINES[_GUEST])))
    g_type = np.full(n_guest_orders, _GUEST)
    g_ts = clock.sample(rng, np.zeros(n_guest_orders, dtype=np.int64), np.full(n_guest_orders, days))
    g_line_order, g_k, g_prod, g_qty, g_price, g_disc = make_lines(g_type, np.zeros(n_guest_orders, dtype=np.int64))

    # all purchase orders: customer orders, then guest orders
    p_cust = np.concatenate([o_cust, np.full(n_guest_orders, -1)])  # chunk-local index, -1 guest
    p_type = np.concatenate([o_type, g_type])
    p_ts = np.concatenate([o_ts, g_ts])
    p_k = np.concatenate([c_k, g_k])
    l_order = np.concatenate([c_line_order, g_line_order + n_cust_orders])
    l_prod = np.concatenate([c_prod, g_prod])
    l_qty = np.concatenate([c_qty, g_qty])
    l_price = np.concatenate([c_price, g_price])
    l_disc = np.concatenate([c_disc, g_disc])
    l_number = _within(p_k) + 1
    n_purchase = p_ts.size

    # ----- returns: own order per returned original order, 3-30 days later, negative quantities
    l_type = p_type[l_order]
    ret_line = np.flatnonzero(rng.random(l_order.size) < _RETURN_P[l_type])
    delay = rng.integers(3 * DAY, 30 * DAY, size=n_purchase)
    ret_ts_order = p_ts + delay
    limit = np.where(p_cust >= 0, latest_ts[np.maximum(p_cust, 0)], clock.s_epoch - 1)
    late = ret_ts_order > limit
    room = limit - p_ts
    ret_ts_order = np.where(late, p_ts + (room * rng.uniform(0.3, 1.0, n_purchase)).astype(np.int64), ret_ts_order)
    ok = room[l_order[ret_line]] > 3600  # at least an hour between purchase and return
    ret_line = ret_line[ok]
    orig = l_order[ret_line]  # sorted, as ret_line is
    ret_orders, ret_inverse = np.unique(orig, return_inverse=True)
    r_n = ret_orders.size
    r_qty = -rng.integers(1, l_qty[ret_line] + 1)
    r_number = _within(np.bincount(ret_inverse, minlength=r_n)) + 1

    all_cust = np.concatenate([p_cust, p_cust[ret_orders]])
    all_ts = np.concatenate([p_ts, ret_ts_order[ret_orders]])
    line_order = np.concatenate([l_order, n_purchase + ret_inverse])
    line_number = np.concatenate([l_number, r_number])
    line_prod = np.concatenate([l_prod, l_prod[ret_line]])
    line_qty = np.concatenate([l_qty, r_qty])
    line_price = np.concatenate([l_price, l_price[ret_line]])
    line_disc = np.concatenate([l_disc, np.zeros(ret_line.size, dtype=np.int64)])
    line_cat = cat.category[line_prod].copy()
    line_cat[rng.random(line_cat.size) < 0.005] = -1  # a few lines without category

    # number orders by time; lines by (order, line number)
    order_rank = np.empty(all_ts.size, dtype=np.int64)
    order_rank[np.argsort(all_ts, kind="stable")] = np.arange(all_ts.size)
    ln_order = order_rank[line_order]
    sort = np.lexsort((line_number, ln_order))
    first_customer = int(first_customer)
    cust_number = first_customer + idx

    # ----- browsing sessions: browse sessions of customers, checkout sessions of orders, anonymous
    s_cust, s_lo, s_hi = sessions.arrays()
    s_start = clock.sample(rng, s_lo, s_hi)
    b_type = ctype[s_cust]
    b_events = 1 + rng.poisson(_EXTRA_EVENTS[b_type])
    identified_browse = int(b_events.sum())

    ps = np.flatnonzero(rng.random(n_purchase) < _PURCHASE_SESSION_P[p_type])
    ps_cust = p_cust[ps]
    ps_type = p_type[ps]
    ps_views = 1 + rng.poisson(1.0, ps.size)
    ps_page = rng.random(ps.size) < 0.6
    ps_events = ps_page.astype(np.int64) + ps_views + 2  # (+page_view) + product_views + add_to_cart + checkout
    identified_checkout = int(ps_events[ps_cust >= 0].sum())
    anon_target = (identified_browse + identified_checkout) * ANONYMOUS_EVENT_SHARE / (1 - ANONYMOUS_EVENT_SHARE)
    anon_target -= int(ps_events[ps_cust < 0].sum())
    n_anon = max(0, int(round(anon_target / (1 + _EXTRA_EVENTS[_GUEST]))))
    a_start = clock.sample(rng, np.zeros(n_anon, dtype=np.int64), np.full(n_anon, days))
    a_events = 1 + rng.poisson(_EXTRA_EVENTS[_GUEST], n_anon)

    # browse + anonymous sessions: forward in time from their start
    f_cust = np.concatenate([s_cust, np.full(n_anon, -1)])
    f_type = np.concatenate([b_type, np.full(n_anon, _GUEST)])
    f_start = np.concatenate([s_start, a_start])
    f_events = np.concatenate([b_events, a_events])
    fe_sess = np.repeat(np.arange(f_cust.size), f_events)
    fe_pos = _within(f_events)
    fe_tcode = f_type[fe_sess]
    fe_kind = np.where(fe_pos == 0, _EV_PAGE, _categorical(rng, _MIX_CUM[fe_tcode]))

    # checkout sessions: backwards from the order
    pe_sess = np.repeat(np.arange(ps.size), ps_events)
    pe_pos = _within(ps_events)
    first_view = ps_page.astype(np.int64)[pe_sess]
    pe_kind = np.where(pe_pos < first_view, _EV_PAGE, _EV_PRODUCT)
    last = np.cumsum(ps_events) - 1
    pe_kind[last] = _EV_CHECKOUT
    pe_kind[last - 1] = _EV_ADD

    n_f = f_cust.size
    e_sess = np.concatenate([fe_sess, pe_sess + n_f])
    e_kind = np.concatenate([fe_kind, pe_kind])
    sess_cust = np.concatenate([f_cust, ps_cust])  # chunk-local customer index, -1 anonymous
    sess_type = np.concatenate([f_type, ps_type])
    e_tcode = sess_type[e_sess]
    e_custidx = sess_cust[e_sess]
    n_ev = e_kind.size

    # products, categories and queries
    e_fav_ok = e_custidx >= 0
    e_fav = np.where(e_fav_ok, fav[np.maximum(e_custidx, 0)], 0)
    e_prod = _pick_products(rng, cat, e_tcode, e_fav)
    # checkout sessions look at the order's first product
    order_first_line = np.cumsum(p_k) - p_k
    pe_prod = l_prod[order_first_line[ps]][pe_sess]
    in_ps = np.arange(n_ev) >= fe_kind.size
    e_prod[in_ps] = pe_prod
    e_cat = cat.category[e_prod]
    productish = (e_kind == _EV_PRODUCT) | (e_kind == _EV_ADD) | (e_kind == _EV_REMOVE)
    category_page = (e_kind == _EV_PAGE) & (rng.random(n_ev) < 0.4)
    e_cat_out = np.where(productish | category_page | (e_kind == _EV_SEARCH), e_cat, -1)
    e_prod_out = np.where(productish, e_prod, -1)
    deal = (rng.random(n_ev) < _DEAL_SEARCH[e_tcode]).astype(np.int64)
    q_start = cat.query_start[e_cat, deal]
    q_count = cat.query_count[e_cat, deal]
    e_query = np.where(e_kind == _EV_SEARCH, q_start + (rng.random(n_ev) * q_count).astype(np.int64), -1)

    # dwell and timing
    dwell = rng.lognormal(np.log(_DWELL_MEDIAN[e_tcode] * _DWELL_FACTOR[e_kind]), 0.7)
    dwell = np.minimum(dwell, 1800.0)
    dwell_tenths = np.maximum(np.round(dwell * 10).astype(np.int64), 1)
    gap = np.ceil(dwell).astype(np.int64) + rng.integers(2, 20, n_ev)
    excl = np.cumsum(gap) - gap
    n_sessions = sess_cust.size
    sess_events = np.bincount(e_sess, minlength=n_sessions)
    sess_first = np.cumsum(sess_events) - sess_events
    sess_last = sess_first + sess_events - 1
    offset = excl - excl[sess_first][e_sess]  # seconds since the session's first event
    sess_dur = offset[sess_last]
    # anchor: forward sessions start at their sampled start; checkout sessions end before the order
    anchor = np.concatenate([f_start, p_ts[ps] - rng.integers(5, 90, ps.size) - sess_dur[n_f:]])
    overflow = np.maximum(anchor + sess_dur - (clock.s_epoch - 1), 0)  # sessions must end before S
    anchor = anchor - overflow
    e_ts = anchor[e_sess] + offset
    dwell_tenths[rng.random(n_ev) < 0.02] = -1

    # keep events inside the window (a checkout session right at the start may begin before it)
    keep = e_ts >= clock.s_epoch - days * DAY
    order_ev = np.flatnonzero(keep)
    order_ev = order_ev[np.argsort(e_ts[order_ev], kind="stable")]
    sess_rank = np.empty(n_sessions, dtype=np.int64)
    sess_rank[np.argsort(anchor, kind="stable")] = np.arange(n_sessions)

    # ----- created_at is never after the first activity
    act_cust = np.concatenate([all_cust[line_order], e_custidx[keep]])
    act_ts = np.concatenate([all_ts[line_order], e_ts[keep]])
    m = act_cust >= 0
    first_act = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_act, act_cust[m], act_ts[m])
    created = np.minimum(created, first_act - rng.integers(60, 1800, n))

    # ----- customer attributes
    attrs = _customer_attributes(rng, n, cust_number, end_date)

    return _ChunkArrays(
        chunk_index=int(chunk_index),
        cust_number=cust_number,
        cust_type=ctype,
        created=created,
        catalogue=cat,
        ln_order=ln_order[sort],
        ln_number=line_number[sort],
        ln_cust=np.where(all_cust[line_order] >= 0, cust_number[np.maximum(all_cust[line_order], 0)], -1)[sort],
        ln_ts=all_ts[line_order][sort],
        ln_product=line_prod[sort],
        ln_category=line_cat[sort],
        ln_qty=line_qty[sort],
        ln_price=line_price[sort],
        ln_discount=line_disc[sort],
        ev_number=np.arange(order_ev.size, dtype=np.int64),
        ev_session=sess_rank[e_sess[order_ev]],
        ev_cust=np.where(e_custidx[order_ev] >= 0, cust_number[np.maximum(e_custidx[order_ev], 0)], -1),
        ev_ts=e_ts[order_ev],
        ev_type=e_kind[order_ev],
        ev_product=e_prod_out[order_ev],
        ev_category=e_cat_out[order_ev],
        ev_query=e_query[order_ev],
        ev_dwell=dwell_tenths[order_ev],
        **attrs,
    )


def _pick_products(rng: np.random.Generator, cat: _Catalogue, tcode: np.ndarray, fav: np.ndarray) -> np.ndarray:
    """Catalogue indexes: favourite category or a random one; within it, cheap or dear by type."""
    n = tcode.size
    use_fav = rng.random(n) < _FAV_SHARE[tcode]
    random_cat = rng.choice(len(CATEGORIES), size=n, p=cat.cat_p)
    c = np.where(use_fav, fav, random_cat)
    u = rng.random(n) ** _PRICE_SKEW[tcode]
    within = np.minimum((u * cat.cat_count[c]).astype(np.int64), cat.cat_count[c] - 1)
    return cat.cat_start[c] + within


def _customer_attributes(rng: np.random.Generator, n: int, numbers: np.ndarray, end_date: date) -> dict[str, np.ndarray]:
    country_p = np.array([c[1] for c in _COUNTRIES])
    country = rng.choice(len(_COUNTRIES), size=n, p=country_p / country_p.sum())
    city = np.full(n, "", dtype=_S)
    phone = np.full(n, _NULL, dtype=_S)
    for ci, (name, _w, cities) in enumerate(_COUNTRIES):
        members = np.flatnonzero(country == ci)
        if members.size == 0:
            continue
        cw = np.array([c[1] for c in cities])
        city[members] = np.array([c[0] for c in cities], dtype=_S)[rng.choice(len(cities), size=members.size, p=cw / cw.sum())]
        formats = _PHONE_FORMATS[name]
        which = rng.integers(0, len(formats), members.size)
        for fi, template in enumerate(formats):
            sel = members[which == fi]
            if sel.size:
                phone[sel] = _fill_template(rng, template, sel.size)
    country_str = np.array(COUNTRIES, dtype=_S)[country]
    no_place = rng.random(n) < 0.01
    country_str[no_place] = _NULL
    city[no_place | (rng.random(n) < 0.02)] = _NULL
    phone[rng.random(n) < 0.10] = _NULL

    first = np.array(_FIRST_NAMES, dtype=_S)[rng.integers(0, len(_FIRST_NAMES), n)]
    last = np.array(_LAST_NAMES, dtype=_S)[rng.integers(0, len(_LAST_NAMES), n)]
    style = rng.choice(4, size=n, p=[0.5, 0.2, 0.2, 0.1])
    initial = np.strings.slice(first, 0, 1)
    local = np.where(
        style == 0,
        np.strings.add(np.strings.add(first, "."), last),
        np.where(
            style == 1,
            np.strings.add(np.strings.add(first, "_"), last),
            np.where(style == 2, np.strings.add(initial, last), first),
        ),
    )
    local = np.strings.add(local, np.asarray(numbers, dtype=np.int64).astype(_S))  # the number keeps them unique
    dw = np.array([d[1] for d in _EMAIL_DOMAINS])
    domain = np.array([d[0] for d in _EMAIL_DOMAINS], dtype=_S)[rng.choice(len(_EMAIL_DOMAINS), size=n, p=dw / dw.sum())]
    email = np.strings.add(np.strings.add(local, "@"), domain)
    messy = rng.random(n)
    email = np.where(messy < 0.03, np.strings.upper(email), email)
    email = np.where((messy >= 0.03) & (messy < 0.05), np.strings.capitalize(email), email)
    spaced = rng.random(n) < 0.03
    email = np.where(spaced, np.strings.add(np.strings.add(" ", email), "  "), email)
    email[rng.random(n) < 0.05] = _NULL

    age = 18 + np.minimum(np.floor(rng.gamma(3.0, 7.0, n)), 72).astype(np.int64)
    birth_year = np.where(rng.random(n) < 0.08, -1, end_date.year - age)
    gender = np.array(["F", "M", "X", _NULL], dtype=_S)[rng.choice(4, size=n, p=[0.48, 0.44, 0.02, 0.06])]
    consent = rng.random(n) < 0.5
    return {
        "birth_year": birth_year,
        "gender": gender,
        "country": country_str,
        "city": city,
        "email": email,
        "phone": phone,
        "consent": consent,
    }


# ---------------------------------------------------------------------------------------------
# Formatting: the same strings for the DataFrames and the COPY payloads
# ---------------------------------------------------------------------------------------------
def _ts_str(epoch: np.ndarray) -> np.ndarray:
    return np.strings.add(np.asarray(epoch, dtype=np.int64).astype("datetime64[s]").astype(_S), "+00")


def _money_str(cents: np.ndarray) -> np.ndarray:
    cents = np.asarray(cents, dtype=np.int64)
    return np.strings.add(np.strings.add((cents // 100).astype(_S), "."), np.strings.zfill((cents % 100).astype(_S), 2))


def _nullable(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, _NULL, values)


def _string_columns(ch: _ChunkArrays, tables: tuple[str, ...] = tuple(COLUMNS)) -> dict[str, dict[str, np.ndarray]]:
    """The columns of ``tables`` as StringDType text (``\\N`` = NULL), in contract order."""
    cat = ch.catalogue
    cat_names = np.array(list(CATEGORIES) + [_NULL], dtype=_S)  # index -1 -> NULL
    event_types = np.array(contract.EVENT_TYPES, dtype=_S)
    products = np.append(cat.product_str, np.array([_NULL], dtype=_S))
    queries = np.append(cat.query_str, np.array([_NULL], dtype=_S))
    prefix = f"{ch.chunk_index:05d}-"
    cust_ids = _customer_str(ch.cust_number)

    def cust(numbers: np.ndarray) -> np.ndarray:
        return _nullable(_customer_str(np.maximum(numbers, 0)), numbers < 0)

    def dwell_str() -> np.ndarray:
        d = np.maximum(ch.ev_dwell, 0)
        return _nullable(np.strings.add(np.strings.add((d // 10).astype(_S), "."), (d % 10).astype(_S)), ch.ev_dwell < 0)

    make: dict[str, Callable[[], dict[str, np.ndarray]]] = {
        "customers": lambda: {
            "customer_id": cust_ids,
            "created_at": _ts_str(ch.created),
            "birth_year": _nullable(ch.birth_year.astype(_S), ch.birth_year < 0),
            "gender": ch.gender,
            "country": ch.country,
            "city": ch.city,
            "email": ch.email,
            "phone": ch.phone,
            "marketing_consent": np.where(ch.consent, "true", "false").astype(_S),
        },
        "transactions": lambda: {
            "order_id": _zid("O" + prefix, ch.ln_order + 1, 7),
            "line_number": ch.ln_number.astype(_S),
            "customer_id": cust(ch.ln_cust),
            "ordered_at": _ts_str(ch.ln_ts),
            "product_id": cat.product_str[ch.ln_product],
            "category": cat_names[ch.ln_category],
            "quantity": ch.ln_qty.astype(_S),
            "unit_price": _money_str(ch.ln_price),
            "discount": _money_str(ch.ln_discount),
        },
        "browsing_events": lambda: {
            "event_id": _zid("E" + prefix, ch.ev_number + 1, 8),
            "session_id": _zid("S" + prefix, ch.ev_session + 1, 7),
            "customer_id": cust(ch.ev_cust),
            "occurred_at": _ts_str(ch.ev_ts),
            "event_type": event_types[ch.ev_type],
            "product_id": products[ch.ev_product],
            "category": cat_names[ch.ev_category],
            "search_query": queries[ch.ev_query],
            "dwell_seconds": dwell_str(),
        },
        "planted_types": lambda: {
            "customer_id": cust_ids,
            "planted_type": np.array(ALL_TYPES, dtype=_S)[ch.cust_type],
        },
    }
    return {name: make[name]() for name in tables}


def _csv_payload(columns: dict[str, np.ndarray]) -> str:
    """CSV rows (no header, ``\\N`` = NULL, nothing needs quoting) for ``COPY ... FROM STDIN``."""
    cols = list(columns.values())
    if cols[0].size == 0:
        return ""
    row = cols[0]
    for c in cols[1:]:
        row = np.strings.add(np.strings.add(row, ","), c)
    return "\n".join(row.tolist()) + "\n"


# Fast COPY payloads for the two big tables: every field is rendered into a fixed-width uint8
# matrix (digits computed arithmetically, text looked up in padded byte tables), NUL bytes mark
# padding and are squeezed out at the end. Byte-identical to ``_csv_payload(_string_columns(...))``.
class _Rows:
    def __init__(self, n: int) -> None:
        self.n = n
        self.parts: list[np.ndarray] = []

    def const(self, value: str) -> None:
        b = np.frombuffer(value.encode("ascii"), dtype=np.uint8)
        self.parts.append(np.broadcast_to(b, (self.n, b.size)))

    def digits(self, values: np.ndarray, min_digits: int = 1, negative: bool = False) -> np.ndarray:
        """Decimal digits, zero-padded to ``min_digits``; returns the matrix (callers may NUL it)."""
        v = np.asarray(values, dtype=np.int64)
        if negative:
            self.parts.append(np.where(v < 0, ord("-"), 0).astype(np.uint8)[:, None])
            v = np.abs(v)
        top = int(v.max()) if v.size else 0
        width = max(min_digits, len(str(top)))
        rest = v.astype(np.uint32 if top < 2**32 else np.uint64)
        cols = np.empty((width, v.size), dtype=np.uint8)  # one contiguous row per digit
        for j in range(width - 1, -1, -1):
            q = rest // 10
            cols[j] = rest - q * 10
            rest = q
        cols += ord("0")
        if width > min_digits:  # leading zeros beyond min_digits are padding
            lead = np.logical_and.accumulate(cols[: width - min_digits] == ord("0"), axis=0)
            cols[: width - min_digits][lead] = 0
        mat = cols.T
        self.parts.append(mat)
        return mat

    def lookup(self, table: np.ndarray, codes: np.ndarray) -> None:
        """Strings of ``table`` (StringDType or str) by ``codes``."""
        t = np.asarray([str(x).encode("utf-8") for x in table.tolist()], dtype=bytes)
        w = max(t.dtype.itemsize, 1)
        mat = np.frombuffer(t.astype(f"S{w}").tobytes(), dtype=np.uint8).reshape(-1, w)
        self.parts.append(mat[codes])

    def null_unless(self, present: np.ndarray, first_part: int) -> None:
        """Make the fields added since part ``first_part`` read ``\\N`` where not ``present``."""
        absent = ~np.asarray(present, dtype=bool)
        for i in range(first_part, len(self.parts)):
            part = np.array(self.parts[i], copy=True)
            part[absent] = 0
            self.parts[i] = part
        marker = np.zeros((self.n, 2), dtype=np.uint8)
        marker[absent] = np.frombuffer(b"\\N", dtype=np.uint8)
        self.parts.insert(first_part, marker)

    def mark(self) -> int:
        return len(self.parts)

    def timestamp(self, epoch: np.ndarray) -> None:
        t = np.asarray(epoch, dtype=np.int64).astype("datetime64[s]")
        day = t.astype("datetime64[D]")
        month = day.astype("datetime64[M]")
        year = month.astype("datetime64[Y]")
        sod = (t - day).astype(np.int64)
        self.digits(year.astype(np.int64) + 1970, 4)
        self.const("-")
        self.digits((month - year).astype(np.int64) + 1, 2)
        self.const("-")
        self.digits((day - month).astype(np.int64) + 1, 2)
        self.const("T")
        self.digits(sod // 3600, 2)
        self.const(":")
        self.digits(sod // 60 % 60, 2)
        self.const(":")
        self.digits(sod % 60, 2)
        self.const("+00")

    def payload(self) -> bytes:
        if self.n == 0:
            return b""
        self.const("\n")
        mat = np.hstack(self.parts)
        flat = mat.ravel()
        return flat[flat != 0].tobytes()


def _cat_codes(codes: np.ndarray) -> np.ndarray:
    return np.where(codes < 0, len(CATEGORIES), codes)


def _fast_transactions(ch: _ChunkArrays) -> bytes:
    cat = ch.catalogue
    r = _Rows(ch.ln_order.size)
    r.const(f"O{ch.chunk_index:05d}-")
    r.digits(ch.ln_order + 1, 7)
    r.const(",")
    r.digits(ch.ln_number)
    r.const(",")
    m = r.mark()
    r.const("C")
    r.digits(np.maximum(ch.ln_cust, 0), 7)
    r.null_unless(ch.ln_cust >= 0, m)
    r.const(",")
    r.timestamp(ch.ln_ts)
    r.const(",")
    r.lookup(cat.product_str, ch.ln_product)
    r.const(",")
    r.lookup(np.array(list(CATEGORIES) + [_NULL], dtype=_S), _cat_codes(ch.ln_category))
    r.const(",")
    r.digits(ch.ln_qty, negative=True)
    for cents in (ch.ln_price, ch.ln_discount):
        r.const(",")
        r.digits(cents // 100)
        r.const(".")
        r.digits(cents % 100, 2)
    return r.payload()


def _fast_events(ch: _ChunkArrays) -> bytes:
    cat = ch.catalogue
    r = _Rows(ch.ev_number.size)
    r.const(f"E{ch.chunk_index:05d}-")
    r.digits(ch.ev_number + 1, 8)
    r.const(f",S{ch.chunk_index:05d}-")
    r.digits(ch.ev_session + 1, 7)
    r.const(",")
    m = r.mark()
    r.const("C")
    r.digits(np.maximum(ch.ev_cust, 0), 7)
    r.null_unless(ch.ev_cust >= 0, m)
    r.const(",")
    r.timestamp(ch.ev_ts)
    r.const(",")
    r.lookup(np.array(contract.EVENT_TYPES, dtype=_S), ch.ev_type)
    r.const(",")
    r.lookup(np.append(cat.product_str, np.array([_NULL], dtype=_S)), np.where(ch.ev_product < 0, cat.product_str.size, ch.ev_product))
    r.const(",")
    r.lookup(np.array(list(CATEGORIES) + [_NULL], dtype=_S), _cat_codes(ch.ev_category))
    r.const(",")
    r.lookup(np.append(cat.query_str, np.array([_NULL], dtype=_S)), np.where(ch.ev_query < 0, cat.query_str.size, ch.ev_query))
    r.const(",")
    m = r.mark()
    dwell = np.maximum(ch.ev_dwell, 0)
    r.digits(dwell // 10)
    r.const(".")
    r.digits(dwell % 10)
    r.null_unless(ch.ev_dwell >= 0, m)
    return r.payload()


def _text_series(values: np.ndarray) -> pd.Series:
    obj = values.astype(object)
    obj[values == _NULL] = None
    return pd.Series(obj, dtype="str")


def _utc(epoch: np.ndarray) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(np.asarray(epoch, dtype=np.int64).astype("datetime64[s]").astype("datetime64[us]")).tz_localize("UTC"))


def _frames(ch: _ChunkArrays) -> dict[str, pd.DataFrame]:
    s = _string_columns(ch)
    customers = pd.DataFrame(
        {
            "customer_id": _text_series(s["customers"]["customer_id"]),
            "created_at": _utc(ch.created),
            "birth_year": pd.Series(ch.birth_year, dtype="Int64").mask(ch.birth_year < 0),
            "gender": _text_series(ch.gender),
            "country": _text_series(ch.country),
            "city": _text_series(ch.city),
            "email": _text_series(ch.email),
            "phone": _text_series(ch.phone),
            "marketing_consent": ch.consent.astype(bool),
        }
    )
    t = s["transactions"]
    transactions = pd.DataFrame(
        {
            "order_id": _text_series(t["order_id"]),
            "line_number": ch.ln_number.astype(np.int64),
            "customer_id": _text_series(t["customer_id"]),
            "ordered_at": _utc(ch.ln_ts),
            "product_id": _text_series(t["product_id"]),
            "category": _text_series(t["category"]),
            "quantity": ch.ln_qty.astype(np.int64),
            "unit_price": ch.ln_price / 100.0,
            "discount": ch.ln_discount / 100.0,
        }
    )
    e = s["browsing_events"]
    events = pd.DataFrame(
        {
            "event_id": _text_series(e["event_id"]),
            "session_id": _text_series(e["session_id"]),
            "customer_id": _text_series(e["customer_id"]),
            "occurred_at": _utc(ch.ev_ts),
            "event_type": _text_series(e["event_type"]),
            "product_id": _text_series(e["product_id"]),
            "category": _text_series(e["category"]),
            "search_query": _text_series(e["search_query"]),
            "dwell_seconds": np.where(ch.ev_dwell < 0, np.nan, ch.ev_dwell / 10.0),
        }
    )
    planted = pd.DataFrame(
        {
            "customer_id": _text_series(s["planted_types"]["customer_id"]),
            "planted_type": _text_series(s["planted_types"]["planted_type"]),
        }
    )
    return {"customers": customers, "transactions": transactions, "browsing_events": events, "planted_types": planted}


def generate_chunk(chunk_index: int, first_customer: int, n_customers: int, days: int, end_date: date, seed: int) -> dict[str, pd.DataFrame]:
    """The rows of one chunk: customers ``first_customer .. first_customer + n_customers - 1``.

    Pure and deterministic. Returns ``customers``, ``transactions``, ``browsing_events`` (exactly
    the contract's columns, in its order) and ``planted_types`` (``customer_id``, ``planted_type``;
    ground truth that belongs in ``evaluation.planted_types`` only). Text columns use pandas' str
    dtype (missing = NaN), timestamps are UTC, money is float rounded to cents,
    ``birth_year`` is nullable Int64.
    """
    return _frames(_build_chunk(chunk_index, first_customer, n_customers, days, end_date, seed))


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def validate_arguments(customers: int, days: int, end_date: date, seed: int, chunk_customers: int, today: date | None = None) -> None:
    """Raise ``ValueError`` with a clear message when the generator's arguments make no sense."""
    for name, value, low in (("customers", customers, 1), ("days", days, 30), ("chunk_customers", chunk_customers, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        if value < low:
            what = {"days": "days of history"}.get(name, name)
            raise ValueError(f"{what} must be at least {low}, got {value}")
    if customers > MAX_CUSTOMERS:
        raise ValueError(f"customers must be at most {MAX_CUSTOMERS:,}, got {customers:,}")
    if isinstance(end_date, datetime) or not isinstance(end_date, date):
        raise ValueError(f"end_date must be a date (YYYY-MM-DD), got {end_date!r}")
    today = today or datetime.now(timezone.utc).date()
    if end_date > today + timedelta(days=1):
        raise ValueError(f"end_date {end_date.isoformat()} is in the future (today is {today.isoformat()} UTC); use a past date")


def _row_count(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def _has_rows(conn: Connection, table: str) -> bool:
    return conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None


_TARGETS = ("raw.customers", "raw.transactions", "raw.browsing_events", "evaluation.planted_types")


def _copy(conn: Connection, table: str, columns: list[str], payload: bytes) -> None:
    """COPY a CSV payload (``\\N`` = NULL) with large reads (faster than 8 KiB ones)."""
    if not payload:
        return
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
    dbapi = conn.dialect.dbapi
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.copy_expert(sql, io.BytesIO(payload), size=1 << 20)
    except dbapi.Error as exc:  # the same exception classes as any other statement (IntegrityError ...)
        raise DBAPIError.instance(sql, None, exc, dbapi.Error, dialect=conn.dialect) from exc
    finally:
        cur.close()


def _write_chunk(conn: Connection, ch: _ChunkArrays) -> dict[str, int]:
    counts: dict[str, int] = {}
    if is_sqlite(conn):
        frames = _frames(ch)
        for name, schema in (("customers", "raw"), ("transactions", "raw"), ("browsing_events", "raw"), ("planted_types", "evaluation")):
            counts[name] = bulk_insert(conn, schema, name, frames[name], COLUMNS[name])
        return counts
    small = _string_columns(ch, ("customers", "planted_types"))
    payloads = {
        "customers": _csv_payload(small["customers"]).encode("utf-8"),
        "transactions": _fast_transactions(ch),
        "browsing_events": _fast_events(ch),
        "planted_types": _csv_payload(small["planted_types"]).encode("utf-8"),
    }
    for name, schema in (("customers", "raw"), ("transactions", "raw"), ("browsing_events", "raw"), ("planted_types", "evaluation")):
        _copy(conn, f"{schema}.{name}", COLUMNS[name], payloads[name])
        payloads[name] = b""  # free memory early
    counts["customers"] = counts["planted_types"] = int(ch.cust_number.size)
    counts["transactions"] = int(ch.ln_order.size)
    counts["browsing_events"] = int(ch.ev_number.size)
    return counts


def generate_to_warehouse(
    engine: Engine,
    customers: int,
    days: int,
    end_date: date,
    seed: int,
    chunk_customers: int = 50_000,
    replace: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Generate ``customers`` customers with ``days`` days of history ending on ``end_date`` and load
    them into ``raw.*`` (ground truth into ``evaluation.planted_types``).

    Creates the source contract if missing (its own small transaction). Everything else runs in
    ONE transaction: emptying the tables (``replace=True``), dropping the window indexes, loading
    chunk after chunk (PostgreSQL: COPY; SQLite: executemany), rebuilding the indexes and ANALYZE.
    If anything fails the transaction rolls back and the warehouse is exactly as before. While it
    runs, other sessions wait for the raw tables (the index drop locks them).

    Without ``replace``, non-empty raw tables (or planted types) are refused with a
    ``WarehouseError``. Returns the row counts, the shares of planted types and the seconds taken.
    """
    validate_arguments(customers, days, end_date, seed, chunk_customers)
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    contract.create_source_contract(engine)
    counts = {"customers": 0, "transactions": 0, "browsing_events": 0, "planted_types": 0}
    type_counts = dict.fromkeys(ALL_TYPES, 0)
    n_chunks = (customers + chunk_customers - 1) // chunk_customers
    with engine.begin() as conn:
        sqlite = is_sqlite(conn)
        if not sqlite:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
        if replace:
            if sqlite:
                for table in _TARGETS:
                    conn.exec_driver_sql(f"DELETE FROM {table}")
            else:
                conn.exec_driver_sql("TRUNCATE " + ", ".join(_TARGETS))
        else:
            busy = [t for t in _TARGETS if _has_rows(conn, t)]
            if busy:
                raise WarehouseError(
                    f"{', '.join(busy)} already hold data in {describe(engine)}; "
                    "refusing to add synthetic data to it (use --replace / replace=True to empty the tables first)"
                )
        for ix in contract.RAW_INDEXES:
            ix.drop(conn, checkfirst=True)
        for i in range(n_chunks):
            first = 1 + i * chunk_customers
            size = min(chunk_customers, customers - i * chunk_customers)
            ch = _build_chunk(i, first, size, days, end_date, seed)
            written = _write_chunk(conn, ch)
            for k, v in written.items():
                counts[k] += v
            for code, c in enumerate(np.bincount(ch.cust_type, minlength=len(ALL_TYPES))):
                type_counts[ALL_TYPES[code]] += int(c)
            say(
                f"chunk {i + 1}/{n_chunks}: {counts['customers']:,} customers, {counts['transactions']:,} lines, "
                f"{counts['browsing_events']:,} events, {time.perf_counter() - started:.1f}s"
            )
        say("rebuilding indexes")
        for ix in contract.RAW_INDEXES:
            ix.create(conn)
        if sqlite:
            conn.exec_driver_sql("ANALYZE raw")
            conn.exec_driver_sql("ANALYZE evaluation")
        else:
            conn.exec_driver_sql("ANALYZE raw.customers, raw.transactions, raw.browsing_events, evaluation.planted_types")
    seconds = time.perf_counter() - started
    s_date = end_date + timedelta(days=1)
    return {
        **counts,
        "planted_type_counts": type_counts,
        "chunks": n_chunks,
        "seed": seed,
        "days": days,
        "end_date": end_date.isoformat(),
        "first_day": (s_date - timedelta(days=days)).isoformat(),
        "snapshot_date": s_date.isoformat(),
        "warehouse": describe(engine),
        "seconds": round(seconds, 2),
    }
