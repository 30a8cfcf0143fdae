"""One chunk of customers as compact arrays: ``build_chunk`` runs the generation steps in their fixed
order on the chunk's own generator ``(seed, 1, chunk_index)``.

The order of the steps is the order of the random draws, so it must not change: customers and their
types, the activity plan, favourite categories, orders, returns, sessions and events, creation
dates no later than the first activity, customer attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from include.segmentation.sources.synthetic.catalogue import CATEGORIES, MAX_CUSTOMERS, Catalogue, catalogue
from include.segmentation.sources.synthetic.customers import customer_attributes
from include.segmentation.sources.synthetic.events import Events, draw_events
from include.segmentation.sources.synthetic.orders import Ledger, add_returns, draw_purchases
from include.segmentation.sources.synthetic.plan import Population, draw_population, latest_activity, plan_activity
from include.segmentation.sources.synthetic.pricing import apply_price_response
from include.segmentation.sources.synthetic.sampling import Clock


@dataclass
class ChunkArrays:
    """The rows of one chunk as arrays of numbers and codes (rendered to text only when written)."""

    chunk_index: int
    # customers
    cust_number: np.ndarray
    cust_type: np.ndarray
    created: np.ndarray  # epoch seconds
    birth_year: np.ndarray  # -1 = NULL
    gender: np.ndarray  # StringDType, NULL = NULL
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
    catalogue: Catalogue


def check_chunk_args(chunk_index: int, first_customer: int, n_customers: int, days: int, end_date: date, seed: int) -> None:
    """Raise ``ValueError`` for arguments ``build_chunk`` cannot work with."""
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


def _created_before_activity(rng: np.random.Generator, population: Population, ledger: Ledger, events: Events) -> np.ndarray:
    """Creation times moved, where needed, to 1-30 minutes before the customer's first order or event."""
    act_cust = np.concatenate([ledger.line_customer(), events.cust[events.keep]])
    act_ts = np.concatenate([ledger.line_ts(), events.ts[events.keep]])
    m = act_cust >= 0
    first_act = np.full(population.n, np.iinfo(np.int64).max)
    np.minimum.at(first_act, act_cust[m], act_ts[m])
    return np.minimum(population.created, first_act - rng.integers(60, 1800, population.n))


def build_chunk(
    chunk_index: int, first_customer: int, n_customers: int, days: int, end_date: date, seed: int,
    price_response: bool = False,
) -> ChunkArrays:
    """The arrays of one chunk: customers ``first_customer .. first_customer + n_customers - 1``.

    ``price_response``: plant price-responsive quantities (``pricing``; its own generator, off by default).
    """
    check_chunk_args(chunk_index, first_customer, n_customers, days, end_date, seed)
    cat = catalogue(int(seed))
    rng = np.random.default_rng([int(seed), 1, int(chunk_index)])
    clock = Clock.make(end_date, days)
    population = draw_population(rng, clock, int(n_customers), days)
    planned_orders, planned_sessions = plan_activity(rng, population)
    latest_ts = latest_activity(population, clock)
    fav = rng.choice(len(CATEGORIES), size=population.n, p=cat.cat_p)
    purchases = draw_purchases(rng, clock, cat, population, planned_orders, fav)
    ledger = add_returns(rng, clock, cat, purchases, latest_ts)
    if price_response:
        ledger = apply_price_response(ledger, population, cat, clock, int(seed), int(chunk_index))
    events = draw_events(rng, clock, cat, population, planned_sessions, purchases, fav)
    created = _created_before_activity(rng, population, ledger, events)
    cust_number = int(first_customer) + np.arange(population.n)
    return ChunkArrays(
        chunk_index=int(chunk_index),
        cust_number=cust_number,
        cust_type=population.ctype,
        created=created,
        catalogue=cat,
        **ledger.columns(cust_number),
        **events.columns(cust_number),
        **customer_attributes(rng, population.n, cust_number, end_date),
    )
