"""Browsing events of a chunk: the customers' planned browse sessions, checkout sessions leading up
to some orders, anonymous sessions sized to ``ANONYMOUS_EVENT_SHARE`` of all events; then what each
event is (kind, product, category, search query), how long it lasts and when it happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from include.segmentation.sources.synthetic.behaviour import (
    DEAL_SEARCH,
    DWELL_FACTOR,
    DWELL_MEDIAN,
    EV_ADD,
    EV_CHECKOUT,
    EV_PAGE,
    EV_PRODUCT,
    EV_REMOVE,
    EV_SEARCH,
    EXTRA_EVENTS,
    GUEST,
    MIX_CUM,
    PURCHASE_SESSION_P,
)
from include.segmentation.sources.synthetic.catalogue import ANONYMOUS_EVENT_SHARE, DAY, Catalogue
from include.segmentation.sources.synthetic.orders import Purchases
from include.segmentation.sources.synthetic.plan import Population, customer_numbers
from include.segmentation.sources.synthetic.sampling import Clock, Segments, categorical, pick_products, rank, within


@dataclass(frozen=True)
class Sessions:
    """Forward sessions (planned browse sessions, then anonymous ones), then checkout sessions."""

    cust: np.ndarray  # chunk-local customer index, -1 = anonymous / guest
    type: np.ndarray  # type code (GUEST for anonymous visitors and guests)
    events: np.ndarray  # number of events
    n_forward: int  # forward sessions run forward in time from their start
    forward_start: np.ndarray  # epoch seconds, per forward session
    checkout_order: np.ndarray  # purchase order of each checkout session (they end just before it)
    checkout_page: np.ndarray  # bool: the checkout session opens with a page_view


def _checkout_sessions(rng: np.random.Generator, p: Purchases) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orders with a checkout session, whether it opens with a page_view, and its event count:
    (page_view) + product_views + add_to_cart + checkout."""
    ps = np.flatnonzero(rng.random(p.ts.size) < PURCHASE_SESSION_P[p.type])
    ps_views = 1 + rng.poisson(1.0, ps.size)
    ps_page = rng.random(ps.size) < 0.6
    return ps, ps_page, ps_page.astype(np.int64) + ps_views + 2


def draw_sessions(
    rng: np.random.Generator, clock: Clock, population: Population, planned: Segments, p: Purchases
) -> Sessions:
    """Start times and sizes of all sessions of the chunk."""
    s_cust, s_lo, s_hi = planned.arrays()
    s_start = clock.sample(rng, s_lo, s_hi)
    b_type = population.ctype[s_cust]
    b_events = 1 + rng.poisson(EXTRA_EVENTS[b_type])
    ps, ps_page, ps_events = _checkout_sessions(rng, p)
    ps_cust = p.cust[ps]
    identified = int(b_events.sum()) + int(ps_events[ps_cust >= 0].sum())
    anon_target = identified * ANONYMOUS_EVENT_SHARE / (1 - ANONYMOUS_EVENT_SHARE)
    anon_target -= int(ps_events[ps_cust < 0].sum())  # guests' checkout sessions are anonymous too
    n_anon = max(0, int(round(anon_target / (1 + EXTRA_EVENTS[GUEST]))))
    a_start = clock.sample(rng, np.zeros(n_anon, dtype=np.int64), np.full(n_anon, clock.days))
    a_events = 1 + rng.poisson(EXTRA_EVENTS[GUEST], n_anon)
    return Sessions(
        cust=np.concatenate([s_cust, np.full(n_anon, -1), ps_cust]),
        type=np.concatenate([b_type, np.full(n_anon, GUEST), p.type[ps]]),
        events=np.concatenate([b_events, a_events, ps_events]),
        n_forward=int(s_cust.size + n_anon),
        forward_start=np.concatenate([s_start, a_start]),
        checkout_order=ps,
        checkout_page=ps_page,
    )


def _event_kinds(rng: np.random.Generator, s: Sessions) -> tuple[np.ndarray, np.ndarray]:
    """Session index and kind of every event: forward sessions open with a page_view then follow the
    type's mix; checkout sessions are (page_view,) product_view..., add_to_cart, checkout."""
    f_events, ps_events = s.events[: s.n_forward], s.events[s.n_forward :]
    fe_sess = np.repeat(np.arange(s.n_forward), f_events)
    fe_pos = within(f_events)
    fe_kind = np.where(fe_pos == 0, EV_PAGE, categorical(rng, MIX_CUM[s.type[fe_sess]]))
    pe_sess = np.repeat(np.arange(ps_events.size), ps_events)
    pe_pos = within(ps_events)
    first_view = s.checkout_page.astype(np.int64)[pe_sess]
    pe_kind = np.where(pe_pos < first_view, EV_PAGE, EV_PRODUCT)
    last = np.cumsum(ps_events) - 1
    pe_kind[last] = EV_CHECKOUT
    pe_kind[last - 1] = EV_ADD
    return np.concatenate([fe_sess, pe_sess + s.n_forward]), np.concatenate([fe_kind, pe_kind])


def _event_content(
    rng: np.random.Generator,
    cat: Catalogue,
    s: Sessions,
    p: Purchases,
    fav: np.ndarray,
    e_sess: np.ndarray,
    e_kind: np.ndarray,
) -> dict[str, np.ndarray]:
    """Product, category and search query of every event (catalogue/query index, -1 = NULL).

    Checkout sessions look at their order's first product; 40 % of page_views are category pages.
    """
    n_ev = e_kind.size
    e_tcode = s.type[e_sess]
    e_cust = s.cust[e_sess]
    e_fav = np.where(e_cust >= 0, fav[np.maximum(e_cust, 0)], 0)
    e_prod = pick_products(rng, cat, e_tcode, e_fav)
    order_first_line = np.cumsum(p.k) - p.k
    in_ps = e_sess >= s.n_forward
    e_prod[in_ps] = p.prod[order_first_line[s.checkout_order]][e_sess[in_ps] - s.n_forward]
    e_cat = cat.category[e_prod]
    productish = (e_kind == EV_PRODUCT) | (e_kind == EV_ADD) | (e_kind == EV_REMOVE)
    category_page = (e_kind == EV_PAGE) & (rng.random(n_ev) < 0.4)
    e_cat_out = np.where(productish | category_page | (e_kind == EV_SEARCH), e_cat, -1)
    e_prod_out = np.where(productish, e_prod, -1)
    deal = (rng.random(n_ev) < DEAL_SEARCH[e_tcode]).astype(np.int64)
    q_start = cat.query_start[e_cat, deal]
    q_count = cat.query_count[e_cat, deal]
    e_query = np.where(e_kind == EV_SEARCH, q_start + (rng.random(n_ev) * q_count).astype(np.int64), -1)
    return {"product": e_prod_out, "category": e_cat_out, "query": e_query}


def _event_times(
    rng: np.random.Generator, clock: Clock, s: Sessions, p: Purchases, e_sess: np.ndarray, e_kind: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch seconds and dwell (tenths of a second, -1 = NULL) of every event, and each session's
    anchor: forward sessions start at their start, checkout sessions end shortly before the order;
    all end before S."""
    n_ev = e_kind.size
    dwell = rng.lognormal(np.log(DWELL_MEDIAN[s.type[e_sess]] * DWELL_FACTOR[e_kind]), 0.7)
    dwell = np.minimum(dwell, 1800.0)
    dwell_tenths = np.maximum(np.round(dwell * 10).astype(np.int64), 1)
    gap = np.ceil(dwell).astype(np.int64) + rng.integers(2, 20, n_ev)
    excl = np.cumsum(gap) - gap
    sess_events = np.bincount(e_sess, minlength=s.cust.size)
    sess_first = np.cumsum(sess_events) - sess_events
    sess_last = sess_first + sess_events - 1
    offset = excl - excl[sess_first][e_sess]  # seconds since the session's first event
    sess_dur = offset[sess_last]
    checkout_end = p.ts[s.checkout_order] - rng.integers(5, 90, s.checkout_order.size)
    anchor = np.concatenate([s.forward_start, checkout_end - sess_dur[s.n_forward :]])
    overflow = np.maximum(anchor + sess_dur - (clock.s_epoch - 1), 0)  # sessions must end before S
    anchor = anchor - overflow
    e_ts = anchor[e_sess] + offset
    dwell_tenths[rng.random(n_ev) < 0.02] = -1
    return e_ts, dwell_tenths, anchor


@dataclass(frozen=True)
class Events:
    """All events of the chunk, in generation order, with the ones inside the window marked."""

    session: np.ndarray  # session index
    cust: np.ndarray  # chunk-local customer index, -1 = anonymous
    ts: np.ndarray
    kind: np.ndarray  # code into contract.EVENT_TYPES
    product: np.ndarray  # catalogue index, -1 = NULL
    category: np.ndarray  # category code, -1 = NULL
    query: np.ndarray  # query index, -1 = NULL
    dwell: np.ndarray  # tenths of a second, -1 = NULL
    anchor: np.ndarray  # per session: time of its first event (sessions are numbered by it)
    keep: np.ndarray  # bool: inside the window (a checkout session right at the start may begin before it)

    def columns(self, cust_number: np.ndarray) -> dict[str, np.ndarray]:
        """The ``ev_*`` arrays of ``ChunkArrays``: kept events by time, sessions numbered by start."""
        order_ev = np.flatnonzero(self.keep)
        order_ev = order_ev[np.argsort(self.ts[order_ev], kind="stable")]
        per_event = {
            "session": rank(self.anchor)[self.session], "cust": customer_numbers(self.cust, cust_number), "ts": self.ts,
            "type": self.kind, "product": self.product, "category": self.category, "query": self.query,
            "dwell": self.dwell,
        }
        numbered = {"ev_number": np.arange(order_ev.size, dtype=np.int64)}
        return numbered | {f"ev_{name}": values[order_ev] for name, values in per_event.items()}


def draw_events(
    rng: np.random.Generator,
    clock: Clock,
    cat: Catalogue,
    population: Population,
    planned: Segments,
    p: Purchases,
    fav: np.ndarray,
) -> Events:
    """Sessions, then the kind, content and timing of their events."""
    s = draw_sessions(rng, clock, population, planned, p)
    e_sess, e_kind = _event_kinds(rng, s)
    content = _event_content(rng, cat, s, p, fav, e_sess, e_kind)
    e_ts, dwell, anchor = _event_times(rng, clock, s, p, e_sess, e_kind)
    keep = e_ts >= clock.s_epoch - clock.days * DAY
    return Events(session=e_sess, cust=s.cust[e_sess], ts=e_ts, kind=e_kind, dwell=dwell, anchor=anchor, keep=keep, **content)
