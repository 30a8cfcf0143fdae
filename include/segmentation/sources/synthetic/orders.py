"""Transactions of a chunk: the customers' planned orders and guest orders with their lines, the
returns (an order of their own, 3-30 days later, negative quantities) and the final numbering of
orders by time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from include.segmentation.sources.synthetic.behaviour import (
    DISC_HI,
    DISC_LO,
    DISC_P,
    EXTRA_LINES,
    GUEST,
    QTY_MU,
    RETURN_P,
)
from include.segmentation.sources.synthetic.catalogue import DAY, GUEST_LINE_SHARE, Catalogue
from include.segmentation.sources.synthetic.plan import Population, customer_numbers
from include.segmentation.sources.synthetic.sampling import Clock, Segments, pick_products, rank, within


@dataclass(frozen=True)
class Purchases:
    """Purchase orders (customer orders, then guest orders) and their lines, before returns."""

    cust: np.ndarray  # per order: chunk-local customer index, -1 = guest
    type: np.ndarray  # per order: type code of the buyer (GUEST for guests)
    ts: np.ndarray  # per order: epoch seconds
    k: np.ndarray  # per order: number of lines
    order: np.ndarray  # per line: order index
    number: np.ndarray  # per line: line number within the order, from 1
    prod: np.ndarray  # per line: catalogue index
    qty: np.ndarray
    price: np.ndarray  # cents
    disc: np.ndarray  # cents, total discount of the line


def _draw_lines(
    rng: np.random.Generator, cat: Catalogue, o_type: np.ndarray, o_fav: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Lines of orders of the given buyer types: order index, lines per order, product, quantity,
    price and discount (cents)."""
    k = 1 + rng.poisson(EXTRA_LINES[o_type])
    line_order = np.repeat(np.arange(o_type.size), k)
    lt = o_type[line_order]
    prod = pick_products(rng, cat, lt, o_fav[line_order])
    qty = 1 + np.floor(rng.lognormal(QTY_MU[lt], 0.75)).astype(np.int64)
    qty = np.minimum(qty, 40)
    price = cat.price_cents[prod]
    gross = qty * price
    disc_on = rng.random(lt.size) < DISC_P[lt]
    frac = DISC_LO[lt] + rng.random(lt.size) * (DISC_HI[lt] - DISC_LO[lt])
    disc = np.where(disc_on, np.floor(gross * frac), 0).astype(np.int64)
    return line_order, k, prod, qty, price, disc


def draw_purchases(
    rng: np.random.Generator, clock: Clock, cat: Catalogue, population: Population, orders: Segments, fav: np.ndarray
) -> Purchases:
    """Timestamps and lines of the planned customer orders, then guest orders sized to
    ``GUEST_LINE_SHARE`` of all lines, anywhere in the window."""
    o_cust, o_lo, o_hi = orders.arrays()
    o_ts = clock.sample(rng, o_lo, o_hi)
    o_type = population.ctype[o_cust]
    c_order, c_k, c_prod, c_qty, c_price, c_disc = _draw_lines(rng, cat, o_type, fav[o_cust])
    n_guest_lines = int(round(c_order.size * GUEST_LINE_SHARE / (1 - GUEST_LINE_SHARE)))
    n_guest = int(round(n_guest_lines / (1 + EXTRA_LINES[GUEST])))
    g_type = np.full(n_guest, GUEST)
    g_ts = clock.sample(rng, np.zeros(n_guest, dtype=np.int64), np.full(n_guest, clock.days))
    g_order, g_k, g_prod, g_qty, g_price, g_disc = _draw_lines(rng, cat, g_type, np.zeros(n_guest, dtype=np.int64))
    k = np.concatenate([c_k, g_k])
    return Purchases(
        cust=np.concatenate([o_cust, np.full(n_guest, -1)]),
        type=np.concatenate([o_type, g_type]),
        ts=np.concatenate([o_ts, g_ts]),
        k=k,
        order=np.concatenate([c_order, g_order + o_cust.size]),
        number=within(k) + 1,
        prod=np.concatenate([c_prod, g_prod]),
        qty=np.concatenate([c_qty, g_qty]),
        price=np.concatenate([c_price, g_price]),
        disc=np.concatenate([c_disc, g_disc]),
    )


@dataclass(frozen=True)
class Ledger:
    """All transaction lines (purchases, then returns), with their orders' buyer and time."""

    order_cust: np.ndarray  # per order (purchases, then return orders): customer index, -1 = guest
    order_ts: np.ndarray  # per order
    order: np.ndarray  # per line: order index
    number: np.ndarray  # per line
    prod: np.ndarray
    qty: np.ndarray  # negative on return lines
    price: np.ndarray
    disc: np.ndarray
    category: np.ndarray  # category code, -1 = NULL
    source_line: np.ndarray  # per line: the purchase line a return line returns; -1 on purchase lines

    def line_customer(self) -> np.ndarray:
        """Chunk-local customer index of each line, -1 = guest."""
        return self.order_cust[self.order]

    def line_ts(self) -> np.ndarray:
        """Epoch seconds of each line (its order's)."""
        return self.order_ts[self.order]

    def columns(self, cust_number: np.ndarray) -> dict[str, np.ndarray]:
        """The ``ln_*`` arrays of ``ChunkArrays``: orders numbered by time, lines by (order, number)."""
        ln_order = rank(self.order_ts)[self.order]
        sort = np.lexsort((self.number, ln_order))
        per_line = {
            "order": ln_order, "number": self.number, "cust": customer_numbers(self.line_customer(), cust_number),
            "ts": self.line_ts(), "product": self.prod, "category": self.category, "qty": self.qty,
            "price": self.price, "discount": self.disc,
        }
        return {f"ln_{name}": values[sort] for name, values in per_line.items()}


def _returned_lines(
    rng: np.random.Generator, clock: Clock, p: Purchases, latest_ts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which purchase lines come back, and when each order's return would be: 3-30 days later, but
    never after the buyer's last allowed moment (nor S); a line needs an hour of room to come back."""
    n_purchase = p.ts.size
    ret_line = np.flatnonzero(rng.random(p.order.size) < RETURN_P[p.type[p.order]])
    delay = rng.integers(3 * DAY, 30 * DAY, size=n_purchase)
    ret_ts_order = p.ts + delay
    limit = np.where(p.cust >= 0, latest_ts[np.maximum(p.cust, 0)], clock.s_epoch - 1)
    late = ret_ts_order > limit
    room = limit - p.ts
    ret_ts_order = np.where(late, p.ts + (room * rng.uniform(0.3, 1.0, n_purchase)).astype(np.int64), ret_ts_order)
    ok = room[p.order[ret_line]] > 3600  # at least an hour between purchase and return
    return ret_line[ok], ret_ts_order


def add_returns(rng: np.random.Generator, clock: Clock, cat: Catalogue, p: Purchases, latest_ts: np.ndarray) -> Ledger:
    """The purchases plus one return order per returned original order (negative quantities,
    discount 0); a few lines (~0.5 %) lose their category."""
    ret_line, ret_ts_order = _returned_lines(rng, clock, p, latest_ts)
    orig = p.order[ret_line]  # sorted, as ret_line is
    ret_orders, ret_inverse = np.unique(orig, return_inverse=True)
    r_qty = -rng.integers(1, p.qty[ret_line] + 1)
    r_number = within(np.bincount(ret_inverse, minlength=ret_orders.size)) + 1
    prod = np.concatenate([p.prod, p.prod[ret_line]])
    category = cat.category[prod].copy()
    category[rng.random(category.size) < 0.005] = -1  # a few lines without category
    return Ledger(
        order_cust=np.concatenate([p.cust, p.cust[ret_orders]]),
        order_ts=np.concatenate([p.ts, ret_ts_order[ret_orders]]),
        order=np.concatenate([p.order, p.ts.size + ret_inverse]),
        number=np.concatenate([p.number, r_number]),
        prod=prod,
        qty=np.concatenate([p.qty, r_qty]),
        price=np.concatenate([p.price, p.price[ret_line]]),
        disc=np.concatenate([p.disc, np.zeros(ret_line.size, dtype=np.int64)]),
        category=category,
        source_line=np.concatenate([np.full(p.order.size, -1, dtype=np.int64), ret_line.astype(np.int64)]),
    )
