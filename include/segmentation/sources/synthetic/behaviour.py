"""How each customer type behaves, as numbers indexed by type code, and when people shop.

Type codes: 0-5 = ``PLANTED_TYPES``, 6 = dormant, 7 = guests / anonymous visitors (``GUEST``).
"""

from __future__ import annotations

import numpy as np

from include.segmentation.sources.synthetic.catalogue import ALL_TYPES

GUEST = 7
TYPE_CODE: dict[str, int] = {name: i for i, name in enumerate(ALL_TYPES)}

# created_at, in (nominal) days before S.
CREATED_AGO = np.array([(400, 1800), (200, 1400), (120, 900), (400, 1600), (60, 1200), (2, 44), (500, 2200)], dtype=float)
# Extra lines per order (Poisson), quantity lognormal mu, price skew exponent (<1: expensive items),
# favourite-category share, discount probability, discount fraction range, return probability.
EXTRA_LINES = np.array([0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])
QTY_MU = np.array([-1.3, -0.4, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0])
PRICE_SKEW = np.array([0.2, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
FAV_SHARE = np.array([0.15, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0])
DISC_P = np.array([0.05, 0.85, 0.25, 0.2, 0.3, 0.4, 0.2, 0.15])
DISC_LO = np.array([0.05, 0.30, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
DISC_HI = np.array([0.20, 0.60, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25])
RETURN_P = np.array([0.03, 0.18, 0.01, 0.08, 0.06, 0.01, 0.05, 0.05])
# Browsing: probability that an order comes with a (checkout) session, extra events per browsing
# session (Poisson), median dwell seconds, share of deal searches, mix of the events after the
# first page_view: page_view, product_view, search, add_to_cart, remove_from_cart.
PURCHASE_SESSION_P = np.array([0.2, 0.3, 1.0, 0.45, 0.5, 0.8, 0.3, 0.3])
EXTRA_EVENTS = np.array([3.0, 4.0, 2.0, 3.0, 4.0, 3.0, 2.0, 2.0])
DWELL_MEDIAN = np.array([30.0, 25.0, 30.0, 30.0, 95.0, 35.0, 30.0, 25.0])
DEAL_SEARCH = np.array([0.1, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
MIX = np.array(
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
MIX_CUM = np.cumsum(MIX, axis=1)
# Event kinds: codes into contract.EVENT_TYPES.
EV_PAGE, EV_PRODUCT, EV_SEARCH, EV_ADD, EV_REMOVE, EV_CHECKOUT = range(6)
DWELL_FACTOR = np.array([0.7, 1.0, 0.4, 0.3, 0.3, 1.5])

WEEKDAY_FACTOR = np.array([0.9, 0.9, 0.95, 1.0, 1.1, 1.3, 1.35])  # Monday .. Sunday
MONTH_FACTOR = np.array([0.95, 0.8, 0.9, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 1.0, 1.4, 1.7])
HOUR_WEIGHT = np.array(
    [0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 1.0, 1.1, 1.2, 1.2, 1.3, 1.3, 1.2, 1.2, 1.3, 1.5, 1.8, 2.0, 2.1, 1.9, 1.3, 0.7]
)
HOUR_P = HOUR_WEIGHT / HOUR_WEIGHT.sum()
