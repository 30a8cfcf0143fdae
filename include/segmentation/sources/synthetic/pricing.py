"""Opt-in planted price response (``price_response=True``; off by default, so default data is unchanged).

With the option on, the same product sells at different prices and quantity responds to the price
paid with a known elasticity per planted type (``PLANTED_ELASTICITY``): the pricing feed's
elasticity estimate can then be checked against the truth.

- List prices change every ``PRICE_PERIOD_DAYS`` days: each (product, period) gets a multiplier of the
  catalogue price from ``PRICE_LEVELS`` (generator ``(seed, 2)``, shared by all chunks, so every buyer
  sees the same price at the same time). A line's discount keeps its share of the line's value.
- A customer purchase line's quantity is ``q* = B * (p / (p_ref * R_MAX)) ** e``: ``p`` the price paid
  per unit (after discount), ``p_ref`` the catalogue price, ``e`` the buyer's planted elasticity, ``B``
  = 1 + lognormal(``BASE_QTY_MU``, ``BASE_QTY_SIGMA``) independent of price and type. ``q*`` >= 1, and
  it is rounded to a neighbouring whole number at random so that E[log q] = log q* exactly: log q is
  linear in log p with slope ``e`` within a product, the model the pricing feed estimates.
- Return lines follow their purchase line's price; their quantity is capped at the new quantity.

Every draw comes from the chunk's own generator ``(seed, 3, chunk_index)``, after the chunk is built
from its main generator, so timestamps, customers, events and planted types are those of the default data.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from include.segmentation.sources.synthetic.behaviour import GUEST, TYPE_CODE
from include.segmentation.sources.synthetic.catalogue import DAY, Catalogue
from include.segmentation.sources.synthetic.orders import Ledger
from include.segmentation.sources.synthetic.plan import Population
from include.segmentation.sources.synthetic.sampling import Clock

PRICE_LEVELS = np.array([0.8, 0.9, 1.0, 1.1, 1.2])
R_MAX = float(PRICE_LEVELS.max())
PRICE_PERIOD_DAYS = 28
BASE_QTY_MU = -1.0
BASE_QTY_SIGMA = 0.75
#: Planted own-price elasticity by planted type: bargain hunters are price-sensitive, loyal high
#: spenders insensitive, everyone else (and guests) in between.
PLANTED_ELASTICITY: dict[str, float] = {
    "loyal_high_spender": 0.0,
    "bargain_hunter": -2.0,
    "one_time_buyer": -1.0,
    "lapsed": -1.0,
    "window_shopper": -1.0,
    "new_customer": -1.0,
    "dormant": -1.0,
}
GUEST_ELASTICITY = -1.0


def _elasticity_by_code() -> np.ndarray:
    codes = np.full(GUEST + 1, GUEST_ELASTICITY)
    for name, e in PLANTED_ELASTICITY.items():
        codes[TYPE_CODE[name]] = e
    return codes


def price_multipliers(seed: int, n_products: int, days: int) -> np.ndarray:
    """List-price multiplier of each (product, period); period 0 = the ``PRICE_PERIOD_DAYS`` days before S."""
    rng = np.random.default_rng([int(seed), 2])
    return rng.choice(PRICE_LEVELS, size=(n_products, days // PRICE_PERIOD_DAYS + 2))


def log_rounded(rng: np.random.Generator, q_star: np.ndarray) -> np.ndarray:
    """Whole numbers q with E[log q] = log q* (q* >= 1): floor or ceiling, at random."""
    lo = np.floor(q_star)
    gap = np.log(lo + 1.0) - np.log(lo)
    up = np.where(q_star > lo, (np.log(q_star) - np.log(lo)) / gap, 0.0)
    return (lo + (rng.random(q_star.size) < up)).astype(np.int64)


def apply_price_response(
    ledger: Ledger, population: Population, cat: Catalogue, clock: Clock, seed: int, chunk_index: int
) -> Ledger:
    """The ledger with planted prices and price-responsive quantities (see the module docstring)."""
    rng = np.random.default_rng([int(seed), 3, int(chunk_index)])
    source = ledger.source_line
    idx = np.flatnonzero(source < 0)  # purchase lines (returns point at their purchase line)
    prod = ledger.prod[idx]
    ref = cat.price_cents[prod].astype(np.float64)
    period = (clock.s_epoch - 1 - ledger.line_ts()[idx]) // (PRICE_PERIOD_DAYS * DAY)
    mult = price_multipliers(seed, cat.price_cents.size, clock.days)[prod, np.clip(period, 0, None)]
    price = np.maximum(1, np.round(ref * mult)).astype(np.int64)
    old_gross = ledger.qty[idx] * ledger.price[idx]
    share = np.where(old_gross > 0, ledger.disc[idx] / np.maximum(old_gross, 1), 0.0)
    unit_disc = np.floor(price * share).astype(np.int64)
    paid = price - unit_disc
    cust = ledger.line_customer()[idx]
    ltype = np.where(cust >= 0, population.ctype[np.maximum(cust, 0)], GUEST)
    elasticity = _elasticity_by_code()[ltype]
    base = 1.0 + rng.lognormal(BASE_QTY_MU, BASE_QTY_SIGMA, idx.size)
    relative = np.clip(paid / (ref * R_MAX), 1e-6, 1.0)
    qty = log_rounded(rng, base * relative**elasticity)
    new_qty, new_price, new_disc = ledger.qty.copy(), ledger.price.copy(), ledger.disc.copy()
    new_qty[idx], new_price[idx], new_disc[idx] = qty, price, qty * unit_disc
    ret = np.flatnonzero(source >= 0)
    new_price[ret] = new_price[source[ret]]
    new_qty[ret] = -np.minimum(np.abs(ledger.qty[ret]), new_qty[source[ret]])
    return dataclasses.replace(ledger, qty=new_qty, price=new_price, disc=new_disc)
