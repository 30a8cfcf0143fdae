"""Audience definitions (validation, JSON file, selection) and the pure diff / batch planning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.segmentation.audiences import (
    AUDIENCES,
    Audience,
    AudienceConfigError,
    Diff,
    audience_from_dict,
    load_audiences,
    plan_batches,
    plan_diff,
    select_audiences,
    validate_audience,
)


def test_default_audiences_are_valid_and_need_no_account() -> None:
    audiences = load_audiences()
    assert audiences == AUDIENCES
    assert all(a.destination == "file" for a in audiences)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "bad name"}, "name"),
        ({"destination": "tiktok"}, "destination"),
        ({"mode": "replace"}, "mode"),
        ({"segments": ()}, "segments"),
        ({"segments": ("*", 1)}, "segments"),
        ({"segments": (True,)}, "segments"),
        ({"identifiers": ("email", "fax")}, "identifiers"),
        ({"identifiers": ("email", "email")}, "identifiers"),
        ({"destination": "meta"}, "audience_id"),
        ({"destination": "meta", "audience_id": "act_12"}, "audience_id"),
        ({"destination": "google_ads", "audience_id": "list-x"}, "audience_id"),
        ({"destination": "google_ads", "audience_id": "5", "account_id": "12"}, "account_id"),
        ({"destination": "google_ads", "audience_id": "5", "batch_size": 100_001}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"file_layout": "tiktok"}, "file_layout"),
        ({"max_removal_fraction": 1.5}, "max_removal_fraction"),
    ],
)
def test_validation_names_audience_and_field(kwargs: dict, field: str) -> None:
    base = {"name": "vip", "segments": (1,)}
    with pytest.raises(AudienceConfigError, match=rf"audience '.*': field '{field}'"):
        validate_audience(Audience(**{**base, **kwargs}))


def test_json_file_replaces_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "aud.json"
    path.write_text(json.dumps({"audiences": [
        {"name": "vip_meta", "segments": ["Champions", 3], "destination": "meta", "audience_id": 2385001,
         "identifiers": "email", "mode": "add_only"},
        {"name": "lapsed_google", "segments": [2], "destination": "google_ads",
         "audience_id": "customers/1234567890/userLists/77", "enabled": False},
    ]}))
    monkeypatch.setenv("SEGMENTATION_AUDIENCES_FILE", str(path))
    vip, lapsed = load_audiences()
    assert vip.segments == ("Champions", 3) and vip.identifiers == ("email",) and vip.audience_id == "2385001"
    assert vip.platform == "meta" and vip.effective_connection_id == "meta_ads" and vip.effective_batch_size == 10_000
    assert lapsed.google_list_resource() == ("1234567890", "customers/1234567890/userLists/77")
    assert [a.name for a in select_audiences((vip, lapsed))] == ["vip_meta"]
    assert [a.name for a in select_audiences((vip, lapsed), "lapsed_google")] == ["lapsed_google"]
    with pytest.raises(AudienceConfigError, match="unknown audience.*nope.*defined: lapsed_google, vip_meta"):
        select_audiences((vip, lapsed), "vip_meta, nope")


def test_json_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    with pytest.raises(AudienceConfigError, match="not valid JSON"):
        load_audiences(bad)
    bad.write_text(json.dumps([{"name": "x", "segments": [1], "colour": "red"}]))
    with pytest.raises(AudienceConfigError, match="field 'colour': unknown field"):
        load_audiences(bad)
    bad.write_text(json.dumps([{"name": "x", "segments": [1]}, {"name": "x", "segments": [2]}]))
    with pytest.raises(AudienceConfigError, match="defined twice"):
        load_audiences(bad)
    with pytest.raises(AudienceConfigError, match="does not exist"):
        load_audiences(tmp_path / "missing.json")
    with pytest.raises(AudienceConfigError, match="field 'segments': required"):
        audience_from_dict({"name": "y"})


def test_google_bare_list_id_needs_a_customer_id() -> None:
    a = Audience(name="g", segments=(1,), destination="google_ads", audience_id="77")
    with pytest.raises(AudienceConfigError, match="account_id"):
        a.google_list_resource()
    assert a.google_list_resource("123-456-7890") == ("1234567890", "customers/1234567890/userLists/77")


def _k(*names: str) -> set[tuple[str, str]]:
    return {("email", n) for n in names}


def test_plan_diff_modes() -> None:
    mirror = Audience(name="m", segments=(1,))
    add_only = Audience(name="a", segments=(1,), mode="add_only")
    members, state, withdrawn = _k("a", "b", "c"), _k("b", "c", "d", "e"), _k("e", "z")
    d = plan_diff(mirror, members, state, withdrawn=withdrawn)
    assert (d.adds, d.removes, d.consent_removals) == (sorted(_k("a")), sorted(_k("d", "e")), 1)
    d = plan_diff(add_only, members, state, withdrawn=withdrawn)
    assert (d.adds, d.removes) == (sorted(_k("a")), sorted(_k("e")))
    d = plan_diff(mirror, members, state, full_resend=True)
    assert d.adds == sorted(members) and d.removes == sorted(_k("d", "e"))


def test_plan_batches_removes_first_one_kind_per_batch() -> None:
    diff = Diff(adds=[("email", "a1"), ("email", "a2"), ("email", "a3"), ("phone", "p1")],
                removes=[("phone", "r1")])
    assert plan_batches(diff, 2) == [
        ("remove", "phone", ["r1"]), ("add", "email", ["a1", "a2"]), ("add", "email", ["a3"]), ("add", "phone", ["p1"]),
    ]
