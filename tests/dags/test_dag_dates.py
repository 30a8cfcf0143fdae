"""Any snapshot date the data supports can be run: the DAGs start long before any plausible data.

A start_date later than a requested logical date makes Airflow create a run with no task
instances that reports success — a historical date would silently do nothing.
"""

from __future__ import annotations

import pendulum
import pytest

EARLIEST_SUPPORTED = pendulum.datetime(2009, 1, 1, tz="UTC")  # Online Retail starts 2009-12


@pytest.mark.parametrize("dag_id", ["customer_segmentation", "audience_sync"])
def test_dag_starts_before_any_supported_snapshot_and_never_catches_up(get_dag, dag_id: str) -> None:
    dag = get_dag(dag_id)
    assert dag.start_date is not None and dag.start_date <= EARLIEST_SUPPORTED
    assert dag.catchup is False  # an early start_date must not schedule decades of runs
