"""Customer attributes: country, city and phone; a messy e-mail address; birth year, gender and
marketing consent. Text is StringDType with ``NULL`` for missing values.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from include.segmentation.sources.synthetic.catalogue import (
    COUNTRIES,
    COUNTRY_SPECS,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    NULL,
    PHONE_FORMATS,
    STR,
)


def _fill_template(rng: np.random.Generator, template: str, n: int) -> np.ndarray:
    """``n`` strings from a template whose ``#`` are random digits."""
    tb = np.frombuffer(template.encode("ascii"), dtype=np.uint8)
    mat = np.tile(tb, (n, 1))
    holes = np.flatnonzero(tb == ord("#"))
    mat[:, holes] = rng.integers(0, 10, size=(n, holes.size), dtype=np.uint8) + ord("0")
    return np.ascontiguousarray(mat).view(f"S{tb.size}").ravel().astype(STR)


def _places(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Country, a city of it and a phone number in one of its formats; a few of each missing."""
    country_p = np.array([c[1] for c in COUNTRY_SPECS])
    country = rng.choice(len(COUNTRY_SPECS), size=n, p=country_p / country_p.sum())
    city = np.full(n, "", dtype=STR)
    phone = np.full(n, NULL, dtype=STR)
    for ci, (name, _w, cities) in enumerate(COUNTRY_SPECS):
        members = np.flatnonzero(country == ci)
        if members.size == 0:
            continue
        cw = np.array([c[1] for c in cities])
        city[members] = np.array([c[0] for c in cities], dtype=STR)[rng.choice(len(cities), size=members.size, p=cw / cw.sum())]
        formats = PHONE_FORMATS[name]
        which = rng.integers(0, len(formats), members.size)
        for fi, template in enumerate(formats):
            sel = members[which == fi]
            if sel.size:
                phone[sel] = _fill_template(rng, template, sel.size)
    country_str = np.array(COUNTRIES, dtype=STR)[country]
    no_place = rng.random(n) < 0.01
    country_str[no_place] = NULL
    city[no_place | (rng.random(n) < 0.02)] = NULL
    phone[rng.random(n) < 0.10] = NULL
    return {"country": country_str, "city": city, "phone": phone}


def _emails(rng: np.random.Generator, n: int, numbers: np.ndarray) -> np.ndarray:
    """``first.last123@domain`` and variants; some upper-cased, capitalised, padded or missing."""
    first = np.array(FIRST_NAMES, dtype=STR)[rng.integers(0, len(FIRST_NAMES), n)]
    last = np.array(LAST_NAMES, dtype=STR)[rng.integers(0, len(LAST_NAMES), n)]
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
    local = np.strings.add(local, np.asarray(numbers, dtype=np.int64).astype(STR))  # the number keeps them unique
    dw = np.array([d[1] for d in EMAIL_DOMAINS])
    domain = np.array([d[0] for d in EMAIL_DOMAINS], dtype=STR)[rng.choice(len(EMAIL_DOMAINS), size=n, p=dw / dw.sum())]
    email = np.strings.add(np.strings.add(local, "@"), domain)
    messy = rng.random(n)
    email = np.where(messy < 0.03, np.strings.upper(email), email)
    email = np.where((messy >= 0.03) & (messy < 0.05), np.strings.capitalize(email), email)
    spaced = rng.random(n) < 0.03
    email = np.where(spaced, np.strings.add(np.strings.add(" ", email), "  "), email)
    email[rng.random(n) < 0.05] = NULL
    return email


def customer_attributes(rng: np.random.Generator, n: int, numbers: np.ndarray, end_date: date) -> dict[str, np.ndarray]:
    """The attribute columns of ``n`` customers numbered ``numbers`` (birth year -1 = NULL)."""
    places = _places(rng, n)
    email = _emails(rng, n, numbers)
    age = 18 + np.minimum(np.floor(rng.gamma(3.0, 7.0, n)), 72).astype(np.int64)
    birth_year = np.where(rng.random(n) < 0.08, -1, end_date.year - age)
    gender = np.array(["F", "M", "X", NULL], dtype=STR)[rng.choice(4, size=n, p=[0.48, 0.44, 0.02, 0.06])]
    consent = rng.random(n) < 0.5
    return {
        "birth_year": birth_year,
        "gender": gender,
        "country": places["country"],
        "city": places["city"],
        "email": email,
        "phone": places["phone"],
        "consent": consent,
    }
