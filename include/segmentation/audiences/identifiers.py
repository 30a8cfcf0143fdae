"""Identifier normalisation and SHA-256 hashing by each ad platform's published rules.

Ad platforms match customers on hashes, so the clear-text value must be normalised exactly as the
platform does before hashing, or nothing matches. Rules implemented here (see docs/audience_sync.md
for the sources):

- Meta (Custom Audiences / customer information parameters): e-mail trimmed and lower-cased; phone
  as digits only with the country code, no ``+``, no leading zeros.
- Google Ads (Customer Match, Data Manager "Format user data"): e-mail with all whitespace removed
  and lower-cased; for ``gmail.com`` / ``googlemail.com`` every ``.`` in the local part is removed
  and a ``+suffix`` is cut off; phone in E.164 with the leading ``+``.

Hashes are SHA-256 of the UTF-8 bytes, lower-case hex (64 characters). Phone numbers are parsed
with ``phonenumbers`` (Google's libphonenumber metadata, every country): national formats become
international ones with the customer's country (calling code, trunk prefix, international dialling
prefix, possible lengths). Values that cannot be normalised are *invalid*: they are counted, never
sent, and never logged.
"""

from __future__ import annotations

import hashlib
import re

import phonenumbers

from include.segmentation.errors import SegmentationError

PLATFORMS: tuple[str, ...] = ("meta", "google_ads")
IDENTIFIER_KINDS: tuple[str, ...] = ("email", "phone")
GMAIL_DOMAINS: frozenset[str] = frozenset({"gmail.com", "googlemail.com"})
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

_LOCAL_PART = re.compile(r"^[^\s@\"(),:;<>\[\\\]]{1,64}$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[\w-]{1,63}(?<!-)$", re.UNICODE)
_PHONE_CHARS = re.compile(r"^\+?[0-9 ()./\-]+$")
_NON_DIGITS = re.compile(r"\D")
_WHITESPACE = re.compile(r"\s+")


# Countries are ISO 3166-1 alpha-2 codes of any region phonenumbers knows, or one of these other
# spellings seen in customer data (ISO alpha-3, English names, UCI Online Retail names).
COUNTRY_ALIASES: dict[str, str] = {
    "USA": "US", "UNITED STATES": "US", "UNITED STATES OF AMERICA": "US", "CAN": "CA", "CANADA": "CA",
    "GBR": "GB", "UK": "GB", "UNITED KINGDOM": "GB", "GREAT BRITAIN": "GB", "ENGLAND": "GB", "SCOTLAND": "GB",
    "WALES": "GB", "NORTHERN IRELAND": "GB", "CHANNEL ISLANDS": "GB", "JERSEY": "JE", "GUERNSEY": "GG",
    "ISLE OF MAN": "IM", "IRL": "IE", "IRELAND": "IE", "EIRE": "IE", "DEU": "DE", "GERMANY": "DE",
    "FRA": "FR", "FRANCE": "FR", "ESP": "ES", "SPAIN": "ES", "ITA": "IT", "ITALY": "IT", "NLD": "NL",
    "NETHERLANDS": "NL", "HOLLAND": "NL", "BEL": "BE", "BELGIUM": "BE", "LUX": "LU", "LUXEMBOURG": "LU",
    "CHE": "CH", "SWITZERLAND": "CH", "AUT": "AT", "AUSTRIA": "AT", "PRT": "PT", "PORTUGAL": "PT",
    "SWE": "SE", "SWEDEN": "SE", "NOR": "NO", "NORWAY": "NO", "DNK": "DK", "DENMARK": "DK", "FIN": "FI",
    "FINLAND": "FI", "ISL": "IS", "ICELAND": "IS", "POL": "PL", "POLAND": "PL", "CZE": "CZ",
    "CZECH REPUBLIC": "CZ", "CZECHIA": "CZ", "GRC": "GR", "GREECE": "GR", "CYP": "CY", "CYPRUS": "CY",
    "MLT": "MT", "MALTA": "MT", "LTU": "LT", "LITHUANIA": "LT", "AUS": "AU", "AUSTRALIA": "AU",
    "NZL": "NZ", "NEW ZEALAND": "NZ", "JPN": "JP", "JAPAN": "JP", "SGP": "SG", "SINGAPORE": "SG",
    "HKG": "HK", "HONG KONG": "HK", "CHN": "CN", "CHINA": "CN", "IND": "IN", "INDIA": "IN", "ISR": "IL",
    "ISRAEL": "IL", "ARE": "AE", "UAE": "AE", "UNITED ARAB EMIRATES": "AE", "SAU": "SA",
    "SAUDI ARABIA": "SA", "BHR": "BH", "BAHRAIN": "BH", "LBN": "LB", "LEBANON": "LB", "ZAF": "ZA",
    "SOUTH AFRICA": "ZA", "RSA": "ZA", "BRA": "BR", "BRAZIL": "BR", "MEX": "MX", "MEXICO": "MX",
}


class IdentifierError(SegmentationError, ValueError):
    """A programming error in how identifiers are asked for (unknown platform or kind)."""


def _check_platform(platform: str) -> None:
    if platform not in PLATFORMS:
        raise IdentifierError(f"unknown platform {platform!r}: use one of {', '.join(PLATFORMS)}")


def country_code(country: str | None) -> str | None:
    """ISO alpha-2 code for a country given as alpha-2, alpha-3 or English name; None if unknown."""
    if not country or not isinstance(country, str):
        return None
    key = _WHITESPACE.sub(" ", country.strip().upper())
    if key in phonenumbers.SUPPORTED_REGIONS:
        return key
    return COUNTRY_ALIASES.get(key)


def normalize_email(value: str | None, platform: str) -> str | None:
    """The platform's normalised form of an e-mail address, or None when it is missing or invalid."""
    _check_platform(platform)
    if value is None or not isinstance(value, str):
        return None
    text = _WHITESPACE.sub("", value) if platform == "google_ads" else value.strip()
    text = text.lower()
    if not text or len(text) > 254 or text.count("@") != 1:
        return None
    local, domain = text.split("@")
    if not _LOCAL_PART.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253 or not all(_DOMAIN_LABEL.match(lab) for lab in labels):
        return None
    if labels[-1].isdigit() or "_" in domain:
        return None
    if platform == "google_ads" and domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
    return f"{local}@{domain}"


def to_e164_digits(value: str | None, country: str | None) -> str | None:
    """Country code + national significant number as digits, or None when not a usable number.

    ``+`` or ``00`` mark an international number (and the country's own international prefix, e.g.
    ``011`` in North America); anything else is read as a national number of ``country`` (its
    trunk prefix, e.g. the leading 0, is dropped; Italy keeps its leading 0). The number must have
    a possible length for its country (``phonenumbers.is_possible_number``).
    """
    if value is None or not isinstance(value, str):
        return None
    text = value.strip()
    if not text or not _PHONE_CHARS.match(text):  # letters ("ext 4", "call me") are not guessed away
        return None
    digits = _NON_DIGITS.sub("", text)
    region = country_code(country)
    if text.startswith("+"):
        candidate, region = "+" + digits, None
    elif digits.startswith("00") and region is None:
        candidate = "+" + digits[2:]
    elif region is None:
        return None  # a national number without a (known) country
    else:
        candidate = digits
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(parsed) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]
    if not 7 <= len(number) <= 15 or number.startswith("0"):
        return None
    return number


def normalize_phone(value: str | None, country: str | None, platform: str) -> str | None:
    """The platform's normalised form of a phone number (Meta: digits; Google: E.164 with '+')."""
    _check_platform(platform)
    number = to_e164_digits(value, country)
    if number is None:
        return None
    return "+" + number if platform == "google_ads" else number


def sha256_hex(normalised: str) -> str:
    """SHA-256 of the UTF-8 bytes as lower-case hex: the only form an identifier leaves in."""
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def is_sha256_hex(value: str) -> bool:
    """Whether ``value`` is 64 lower-case hex characters."""
    return isinstance(value, str) and bool(SHA256_HEX.match(value))


def hash_identifier(kind: str, value: str | None, country: str | None, platform: str) -> str | None:
    """Normalise and hash one identifier; None when missing or invalid."""
    if kind == "email":
        norm = normalize_email(value, platform)
    elif kind == "phone":
        norm = normalize_phone(value, country, platform)
    else:
        raise IdentifierError(f"unknown identifier kind {kind!r}: use one of {', '.join(IDENTIFIER_KINDS)}")
    return sha256_hex(norm) if norm is not None else None


def is_blank(value: object) -> bool:
    """True for a missing identifier (None, NaN, empty text): missing is not the same as invalid."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, str) and not value.strip()
