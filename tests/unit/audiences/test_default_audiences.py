"""The shipped audiences: every segment at once, and one ready-made audience per segment name."""

from __future__ import annotations

from include.segmentation.audiences import load_audiences, select_audiences
from include.segmentation.audiences.config import (
    AUDIENCES,
    SEGMENT_NAMES,
    audience_name_for,
    per_segment_audiences,
    validate_audiences,
)
from include.segmentation.model.identity import NAME_DEFINITIONS


def test_segment_names_follow_the_naming_vocabulary() -> None:
    assert SEGMENT_NAMES == tuple(NAME_DEFINITIONS)


def test_one_file_audience_per_segment_name() -> None:
    audiences = load_audiences()
    by_name = {a.name: a for a in audiences}
    assert by_name["all_segments_file"].all_segments and by_name["all_segments_file"].enabled
    for seg in SEGMENT_NAMES:
        a = by_name[audience_name_for(seg)]
        assert a.segments == (seg,) and a.destination == "file" and a.mode == "mirror"
        assert a.effective_connection_id is None, "no ad account needed"
    assert audience_name_for("One-time buyers") == "one_time_buyers_file"
    assert audience_name_for("Champions") == "champions_file"
    assert len(audiences) == 1 + len(SEGMENT_NAMES)
    validate_audiences(AUDIENCES)  # valid, unique names


def test_a_marketer_targets_one_segment_by_name() -> None:
    audiences = load_audiences()
    # Scheduled (Asset-triggered) syncs take the enabled ones: every segment in one audience.
    assert [a.name for a in select_audiences(audiences)] == ["all_segments_file"]
    # Named in the trigger form or on the command line, a per-segment audience syncs on its own.
    [champions] = select_audiences(audiences, "champions_file")
    assert champions.segments == ("Champions",)
    picked = select_audiences(audiences, ["lapsing_file", "new_customers_file"])
    assert [a.segments for a in picked] == [("Lapsing",), ("New customers",)]


def test_per_segment_audiences_can_be_built_enabled() -> None:
    [vip] = per_segment_audiences(["Champions"], enabled=True)
    assert vip.enabled and vip.name == "champions_file"
