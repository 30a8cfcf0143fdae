"""The declarative parameters of the synthetic data: planted types and their shares, the contract's
columns, the vocabularies (categories, search terms, countries, cities, phones, names, e-mail
domains) and the product catalogue built from them.

Vocabularies hold no commas, quotes, backslashes or newlines: they go into CSV unquoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.dtypes import StringDType

from include.segmentation.sources import contract

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

STR = StringDType()
NULL = "\\N"  # NULL marker of the text columns and the COPY payloads

# (category, weight, median price in GBP, nouns people search for)
CATEGORY_SPECS: tuple[tuple[str, float, float, tuple[str, ...]], ...] = (
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
CATEGORIES: tuple[str, ...] = tuple(c[0] for c in CATEGORY_SPECS)
PLAIN_MODIFIERS = ("", "", "", "best", "new", "black", "white", "blue", "large", "small", "gift", "premium", "kids", "womens", "mens")
DEAL_MODIFIERS = ("cheap", "sale", "discount", "clearance", "deals", "offer", "cheapest", "bargain", "half price", "under 20")
N_PRODUCTS = 4_000

# (country, weight, ((city, weight), ...))
COUNTRY_SPECS: tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...] = (
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
COUNTRIES: tuple[str, ...] = tuple(c[0] for c in COUNTRY_SPECS)
# '#' is a random digit. First the national formats, then the international ones.
PHONE_FORMATS: dict[str, tuple[str, ...]] = {
    "United Kingdom": ("07### ######", "+44 7### ######", "+447#########", "07700 900###", "+44 7700 900###"),
    "Ireland": ("08# ### ####", "+353 8# ### ####"),
    "Germany": ("015# ########", "+49 15# ########"),
    "France": ("06 ## ## ## ##", "+33 6 ## ## ## ##"),
    "Spain": ("6## ### ###", "+34 6## ### ###"),
    "Netherlands": ("06-########", "+31 6 ########"),
    "Italy": ("3## ### ####", "+39 3## ### ####"),
    "United States": ("(212) 555-0###", "(415) ###-####", "+1 312-###-####", "617.###.####", "(206) ###-####"),
}
FIRST_NAMES = (
    "oliver", "george", "harry", "jack", "noah", "leo", "arthur", "muhammad", "oscar", "charlie", "james", "william",
    "thomas", "lucas", "henry", "olivia", "amelia", "isla", "ava", "mia", "ivy", "lily", "isabella", "rosie", "sophia",
    "grace", "freya", "emily", "ella", "sophie", "liam", "emma", "lena", "paul", "marie", "luca", "giulia", "pablo",
    "lucia", "daan", "sanne", "aoife", "sean", "michael", "sarah", "david", "jessica", "daniel", "ashley", "chloe",
)
LAST_NAMES = (
    "smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel", "wright", "robinson",
    "thompson", "evans", "walker", "white", "roberts", "green", "hall", "wood", "jackson", "clarke", "khan", "murphy",
    "kelly", "obrien", "muller", "schmidt", "schneider", "martin", "bernard", "dubois", "garcia", "fernandez",
    "lopez", "rossi", "russo", "ferrari", "dejong", "devries", "jansen", "miller", "davis", "anderson", "moore",
    "lee", "harris", "clark", "lewis", "young", "king",
)
EMAIL_DOMAINS = (
    ("gmail.com", 0.33), ("outlook.com", 0.13), ("hotmail.co.uk", 0.10), ("yahoo.com", 0.09), ("icloud.com", 0.09),
    ("example.com", 0.12), ("example.org", 0.06), ("btinternet.com", 0.04), ("gmx.de", 0.02), ("orange.fr", 0.02),
)


@dataclass(frozen=True)
class Catalogue:
    """Products (sorted by category, then price) and search queries of one seed."""

    product_str: np.ndarray  # StringDType, product ids by catalogue index
    category: np.ndarray  # category code by catalogue index
    price_cents: np.ndarray  # by catalogue index
    cat_start: np.ndarray  # first index of each category (catalogue sorted by category, then price)
    cat_count: np.ndarray
    cat_p: np.ndarray
    query_str: np.ndarray  # StringDType: all search queries
    query_start: np.ndarray  # [category, deal] -> first query index
    query_count: np.ndarray


def _products(rng: np.random.Generator, cat_p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Category codes, prices in cents (sorted by category, then price) and product ids."""
    counts = np.maximum(rng.multinomial(N_PRODUCTS - 20 * len(CATEGORIES), cat_p) + 20, 1)
    category = np.repeat(np.arange(len(CATEGORIES)), counts)
    median = np.array([c[2] for c in CATEGORY_SPECS])[category]
    price = np.round(rng.lognormal(np.log(median), 0.7) * 100).astype(np.int64)
    price = np.maximum(price, 50)
    # Psychological prices: most end in .99 or .49.
    ending = rng.choice(np.array([99, 49, 0]), size=price.size, p=[0.6, 0.25, 0.15])
    price = np.where(ending > 0, (price // 100) * 100 + ending, price)
    order = np.lexsort((price, category))
    category, price = category[order], price[order]
    ids = rng.permutation(N_PRODUCTS) + 1  # product ids do not reveal the price rank
    product_str = np.strings.add("P", np.strings.zfill(ids.astype(STR), 5))
    return category, price, product_str


def _queries() -> tuple[list[str], np.ndarray, np.ndarray]:
    """All search queries, blocked by (category, plain/deal): the list, block starts and sizes."""
    queries: list[str] = []
    q_start = np.zeros((len(CATEGORIES), 2), dtype=np.int64)
    q_count = np.zeros((len(CATEGORIES), 2), dtype=np.int64)
    for ci, (_name, _w, _m, nouns) in enumerate(CATEGORY_SPECS):
        for deal, mods in enumerate((PLAIN_MODIFIERS, DEAL_MODIFIERS)):
            q_start[ci, deal] = len(queries)
            block = sorted({f"{m} {n}".strip() for m in mods for n in nouns})
            queries.extend(block)
            q_count[ci, deal] = len(block)
    return queries, q_start, q_count


@lru_cache(maxsize=8)
def catalogue(seed: int) -> Catalogue:
    """The product catalogue of ``seed`` (its own generator ``(seed, 0)``, shared by all chunks)."""
    rng = np.random.default_rng([seed, 0])
    cat_p = np.array([c[1] for c in CATEGORY_SPECS])
    cat_p = cat_p / cat_p.sum()
    category, price, product_str = _products(rng, cat_p)
    cat_count = np.bincount(category, minlength=len(CATEGORIES))
    queries, q_start, q_count = _queries()
    return Catalogue(
        product_str=product_str,
        category=category,
        price_cents=price,
        cat_start=np.cumsum(cat_count) - cat_count,
        cat_count=cat_count,
        cat_p=cat_p,
        query_str=np.array(queries, dtype=STR),
        query_start=q_start,
        query_count=q_count,
    )
