"""Pure helpers of the benchmark command: cache decision, floor selection, no password in the report."""

from __future__ import annotations

import importlib.util
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("bench_pipeline_scale", ROOT / "benchmarks" / "pipeline_scale.py")
bench = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(bench)

END = date(2026, 11, 25)


def test_cached_warehouse_must_hold_the_same_data_set() -> None:
    good = {"customers": 1000, "planted_types": 1000, "first_day": date(2024, 11, 26), "last_day": END}
    assert bench._matches(good, 1000, 730, END)
    assert not bench._matches({**good, "customers": 999}, 1000, 730, END)
    assert not bench._matches({**good, "planted_types": 0}, 1000, 730, END)
    assert not bench._matches({**good, "first_day": date(2024, 1, 1)}, 1000, 730, END)  # longer history
    assert not bench._matches({**good, "last_day": date(2026, 10, 1)}, 1000, 730, END)  # other end date
    assert not bench._matches(None, 1000, 730, END)


def test_best_floor_takes_the_fastest_run_per_table() -> None:
    a = {"transactions": {"best": 3.0}, "browsing_events": {"best": 4.0}, "server_settings_seconds": 9.0, "load_before": 1.0}
    b = {"transactions": {"best": 2.5}, "browsing_events": {"best": 5.0}, "server_settings_seconds": 8.0, "load_before": 2.0}
    floor = bench.best_floor(a, b)
    assert floor["seconds"] == 6.5 and floor["server_settings_seconds"] == 8.0 and floor["runs"] == [a, b]


def test_command_line_masks_passwords() -> None:
    shown = bench._command_line(["benchmarks/pipeline_scale.py", "--url", "postgresql://bob:s3cret@db:5432/x",
                                 "--url=postgresql://bob:s3cret@db/x", "--customers", "100"])
    assert "s3cret" not in shown and shown.count("bob:***@db") == 2 and "--customers 100" in shown
