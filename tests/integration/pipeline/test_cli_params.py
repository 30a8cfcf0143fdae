"""``cli run`` refuses what the DAG refuses: one spec (``params.resolve_params``), checked first.

A bad parameter exits 2 at once, naming the parameter, and leaves no ``segment_runs`` row.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from include.segmentation.cli import main
from include.segmentation.store import get_engine, read_sql

ROOT = Path(__file__).resolve().parents[3]
BAD = [
    ('{"k_max": 1000}', "k_max"),
    ('{"random_seed": "x"}', "random_seed"),
    ('{"algorithm": "foo"}', "algorithm"),
    ('{"no_such_param": 1}', "no_such_param"),
    ('{"k_min": 8, "k_max": 3}', "k_min"),
    ("[1, 2]", "JSON object"),
    ("{not json", "error"),
]


def _runs(url: str) -> int:
    engine = get_engine(url)
    try:
        with engine.connect() as conn:
            return int(read_sql(conn, "SELECT COUNT(*) AS n FROM segmentation.segment_runs")["n"].iloc[0])
    finally:
        engine.dispose()


@pytest.mark.parametrize("warehouse_url", ["sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize(("params", "named"), BAD, ids=[b[1] for b in BAD])
def test_cli_run_refuses_bad_params_naming_them_and_records_nothing(
    warehouse_url: str, params: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--warehouse", warehouse_url, "init-warehouse"]) == 0
    capsys.readouterr()
    code = main(["--warehouse", warehouse_url, "run", "--date", "2024-07-01", "--params", params])
    err = capsys.readouterr().err
    assert code == 2
    assert named in err, err
    assert _runs(warehouse_url) == 0


def test_cli_process_exits_2_before_touching_the_warehouse(sqlite_url: str) -> None:
    """As a process: exit status 2, the parameter named on stderr, and no warehouse file created."""
    proc = subprocess.run(
        [sys.executable, "-m", "include.segmentation.cli", "--warehouse", sqlite_url, "run", "--date", "2024-07-01",
         "--params", '{"k_max": 1000}'],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "k_max" in proc.stderr
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()
