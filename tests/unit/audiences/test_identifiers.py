"""Identifier normalisation and hashing, against the platforms' published examples."""

from __future__ import annotations

import hashlib

import pytest

from include.segmentation.audiences import (
    IdentifierError,
    country_code,
    hash_identifier,
    is_blank,
    is_sha256_hex,
    normalize_email,
    normalize_phone,
    sha256_hex,
)

# Meta, Conversions API "Customer Information Parameters" (em / ph examples).
META_EMAIL_IN, META_EMAIL_NORM = "John_Smith@gmail.com", "john_smith@gmail.com"
META_EMAIL_SHA = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
META_PHONE_IN, META_PHONE_NORM = "(650)555-1212", "16505551212"
META_PHONE_SHA = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"


def test_meta_published_email_example() -> None:
    assert normalize_email(META_EMAIL_IN, "meta") == META_EMAIL_NORM
    assert hash_identifier("email", META_EMAIL_IN, "US", "meta") == META_EMAIL_SHA


def test_meta_published_phone_example() -> None:
    assert normalize_phone(META_PHONE_IN, "US", "meta") == META_PHONE_NORM
    assert hash_identifier("phone", META_PHONE_IN, "US", "meta") == META_PHONE_SHA


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Google Data Manager API, "Format user data" examples.
        ("cloudy.sanfrancisco+shopping@gmail.com", "cloudysanfrancisco@gmail.com"),
        ("user.name+NYC@Example.com", "user.name+nyc@example.com"),
        # The same rule for googlemail.com; whitespace anywhere is removed.
        ("  Jane.Doe+news@GoogleMail.com ", "janedoe@googlemail.com"),
        ("jane doe@example.com", "janedoe@example.com"),
    ],
)
def test_google_email_rules(raw: str, expected: str) -> None:
    assert normalize_email(raw, "google_ads") == expected
    assert hash_identifier("email", raw, None, "google_ads") == hashlib.sha256(expected.encode()).hexdigest()


def test_meta_keeps_gmail_dots_and_plus() -> None:
    assert normalize_email(" Jane.Doe+news@Gmail.com\t", "meta") == "jane.doe+news@gmail.com"


@pytest.mark.parametrize(
    ("raw", "country", "google", "meta"),
    [
        ("(800)555-0100", "US", "+18005550100", "18005550100"),  # Google Data Manager example
        ("+1 800 5550101", None, "+18005550101", "18005550101"),  # google-ads-python example
        ("1-650-555-1212", "USA", "+16505551212", "16505551212"),  # trunk prefix 1
        ("020 7031 3000", "United Kingdom", "+442070313000", "442070313000"),  # trunk 0 dropped
        ("0044 20 7031 3000", "GB", "+442070313000", "442070313000"),  # 00 international prefix
        ("06 1234 5678", "IT", "+390612345678", "390612345678"),  # Italy keeps its leading 0
        ("0170 1234567", "DE", "+491701234567", "491701234567"),
        ("+49 (0)170 1234567".replace("(0)", ""), "FR", "+491701234567", "491701234567"),  # '+' wins over country
        ("011 44 20 7031 3000", "CA", "+442070313000", "442070313000"),  # NANP international prefix
    ],
)
def test_phone_to_e164(raw: str, country: str | None, google: str, meta: str) -> None:
    assert normalize_phone(raw, country, "google_ads") == google
    assert normalize_phone(raw, country, "meta") == meta


@pytest.mark.parametrize(
    ("raw", "country"),
    [
        ("555-0100", "US"),  # too short for a national number
        ("020 7031 3000", None),  # national format without a country
        ("020 7031 3000", "Atlantis"),  # unknown country
        ("call me", "US"),
        ("650-555-1212 ext 4", "US"),  # letters are not guessed away
        ("+0 123 456 789", None),
        ("+1234", None),  # too short for E.164
        ("+1 234 567 890 123 456", None),  # longer than 15 digits
        ("", "US"),
    ],
)
def test_invalid_phones(raw: str, country: str | None) -> None:
    assert normalize_phone(raw, country, "google_ads") is None
    assert normalize_phone(raw, country, "meta") is None


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "no-at-sign", "two@@example.com", "a@b@example.com", "@example.com", "jane@", "jane@localhost",
     ".jane@example.com", "ja..ne@example.com", "jane@-example.com", "jane@example.123", "jane@exa_mple.com"],
)
def test_invalid_emails(raw: str) -> None:
    assert normalize_email(raw, "google_ads") is None
    assert normalize_email(raw, "meta") is None


def test_whitespace_inside_an_email_per_platform() -> None:
    # Google removes intermediate whitespace; Meta only trims, so the address stays malformed.
    assert normalize_email("jane@exa mple.com", "google_ads") == "jane@example.com"
    assert normalize_email("jane@exa mple.com", "meta") is None


def test_gmail_local_part_that_normalises_to_nothing_is_invalid_for_google() -> None:
    assert normalize_email("+news@gmail.com", "google_ads") is None
    assert normalize_email("+news@gmail.com", "meta") == "+news@gmail.com"


def test_hash_is_lower_hex_of_utf8() -> None:
    h = sha256_hex("zoë@example.com")
    assert is_sha256_hex(h)
    assert h == hashlib.sha256("zoë@example.com".encode()).hexdigest()
    assert not is_sha256_hex(h.upper())
    assert not is_sha256_hex(h[:-1])


def test_country_lookup_and_blank() -> None:
    assert country_code(" eire ") == "IE"
    assert country_code("deu") == "DE"
    assert country_code("Narnia") is None
    assert is_blank(None) and is_blank(float("nan")) and is_blank("  ")
    assert not is_blank("x@example.com")


def test_unknown_platform_or_kind_is_a_programming_error() -> None:
    with pytest.raises(IdentifierError, match="platform"):
        normalize_email("a@example.com", "tiktok")
    with pytest.raises(IdentifierError, match="kind"):
        hash_identifier("fax", "123", "US", "meta")


@pytest.mark.parametrize(
    ("raw", "country", "google"),
    [
        # Countries the old hand-kept table did not have: phonenumbers knows every numbering plan.
        ("010-1234-5678", "KR", "+821012345678"),  # South Korea mobile, trunk 0
        ("011 15-2345-6789", "AR", "+5491123456789"),  # Argentina mobile: 0 + area, 15 prefix
        ("0812-3456-789", "ID", "+628123456789"),  # Indonesia
        ("0612345678", "NL", "+31612345678"),
        ("00 33 1 42 68 53 00", "DE", "+33142685300"),  # Germany's international prefix 00
        ("0 (30) 123456", "DE", "+4930123456"),  # a short German landline
    ],
)
def test_phone_numbers_of_any_country(raw: str, country: str, google: str) -> None:
    assert normalize_phone(raw, country, "google_ads") == google
    assert normalize_phone(raw, country, "meta") == google[1:]


def test_any_iso_country_code_is_known() -> None:
    assert country_code("kr") == "KR" and country_code("AR") == "AR"
    assert normalize_phone("0612345678", "Netherlands", "meta") == "31612345678"
