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
rows on every machine. The generation steps draw from the chunk's generator in a fixed order
(see ``chunk.build_chunk``), so reordering them changes the data.

Modules: ``catalogue`` (types, shares, vocabularies, products), ``behaviour`` (per-type numbers),
``sampling`` (vectorised draws, the seasonal clock), ``plan`` (customers' types and activity plan),
``orders`` / ``events`` / ``customers`` (the rows), ``chunk`` (one chunk as arrays), ``encode`` and
``payload`` (text columns, CSV and fast COPY payloads), ``frames`` (DataFrames, ``generate_chunk``),
``load`` (``validate_arguments``, ``generate_to_warehouse``).
"""

from include.segmentation.sources.synthetic.catalogue import (
    ALL_TYPES,
    ANONYMOUS_EVENT_SHARE,
    CATEGORIES,
    COLUMNS,
    COUNTRIES,
    DAY,
    DORMANT,
    DORMANT_SHARE,
    GUEST_LINE_SHARE,
    MAX_CUSTOMERS,
    N_PRODUCTS,
    PLANTED_TYPES,
    TYPE_SHARES,
)
from include.segmentation.sources.synthetic.frames import generate_chunk
from include.segmentation.sources.synthetic.load import generate_to_warehouse, validate_arguments

__all__ = [
    "ALL_TYPES",
    "ANONYMOUS_EVENT_SHARE",
    "CATEGORIES",
    "COLUMNS",
    "COUNTRIES",
    "DAY",
    "DORMANT",
    "DORMANT_SHARE",
    "GUEST_LINE_SHARE",
    "MAX_CUSTOMERS",
    "N_PRODUCTS",
    "PLANTED_TYPES",
    "TYPE_SHARES",
    "generate_chunk",
    "generate_to_warehouse",
    "validate_arguments",
]
