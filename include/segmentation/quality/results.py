"""Check results: what one check found, how it is stored, and the error a failed validation raises.

Every validation (one ``validate_*`` call) stores all its results in
``segmentation.quality_results`` in one transaction, logs a summary and each failure, and raises
``DataQualityError`` when an error-severity check failed. The table itself is declared in
``include.segmentation.store.schema``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from include.segmentation.errors import PermanentError
from include.segmentation.quality.masking import mask_text
from include.segmentation.store import SCHEMA, bulk_insert, quality_results

log = logging.getLogger(__name__)

#: Example rows shown per failed check (read from the warehouse with ``LIMIT``).
MAX_EXAMPLES = 5


@dataclass
class CheckResult:
    """The outcome of one check. ``examples`` are masked; ``status`` is passed, failed or skipped."""

    check: str
    table: str
    column: str | None
    rule: str
    severity: str
    success: bool
    observed: str
    examples: list[dict[str, Any]] = field(default_factory=list)
    suite: str = ""
    status: str = "passed"
    observed_value: float | None = None

    @property
    def failed(self) -> bool:
        """True when the check ran and did not pass (skipped checks never fail)."""
        return self.status == "failed"

    def describe(self) -> str:
        """One line for logs and error messages: check, severity, table.column, rule, observed, examples."""
        where = self.table if not self.column else f"{self.table}.{self.column}"
        line = f"{self.check} [{self.severity}] {where}: rule '{self.rule}'; observed {self.observed}"
        if self.examples:
            shown = "; ".join(json.dumps(e, default=str, sort_keys=False) for e in self.examples[:MAX_EXAMPLES])
            line += f"; examples: {shown}"
        return line


class DataQualityError(PermanentError, RuntimeError):
    """An error-severity check failed: ``str(exc)`` lists each failed check; ``results`` holds all results."""

    def __init__(self, message: str, results: list[CheckResult], data_docs: Path | None = None) -> None:
        super().__init__(message)
        self.results = results
        self.data_docs = data_docs


def store_results(engine: Engine, validation_id: str, run_id: str, snapshot_date: date, results: list[CheckResult],
                  docs: Path | None) -> None:
    """Write every result of one validation in ONE transaction (all or nothing)."""
    checked_at = datetime.now(timezone.utc).replace(microsecond=0)
    frame = pd.DataFrame(
        {
            "validation_id": validation_id,
            "run_id": run_id,
            "snapshot_date": [snapshot_date] * len(results),
            "suite": [r.suite for r in results],
            "check_name": [r.check for r in results],
            "table_name": [r.table for r in results],
            "column_name": [r.column for r in results],
            "rule": [r.rule for r in results],
            "severity": [r.severity for r in results],
            "status": [r.status for r in results],
            "success": pd.array([None if r.status == "skipped" else r.success for r in results], dtype="boolean"),
            "observed": [mask_text(r.observed) for r in results],
            "observed_value": pd.array([r.observed_value for r in results], dtype="Float64"),
            "examples": [json.dumps(r.examples, default=str) if r.examples else None for r in results],
            "data_docs": str(docs) if docs else None,
            "checked_at": pd.Timestamp(checked_at),
        }
    )
    with engine.begin() as conn:
        bulk_insert(conn, SCHEMA, quality_results.name, frame)


def _failure_message(stage: str, run_id: str, snapshot_date: date, total: int, errors: list[CheckResult],
                     warns: list[CheckResult], where: str) -> str:
    """The text of a ``DataQualityError``: every failed error check, then the warnings, then the Data Docs."""
    lines = [
        f"data quality ({stage}) failed for snapshot {snapshot_date.isoformat()} (run {run_id}): "
        f"{len(errors)} error check(s) failed out of {total}:"
    ]
    lines += [f"- {r.describe()}" for r in errors]
    if warns:
        lines.append(f"warnings ({len(warns)}):")
        lines += [f"- {r.describe()}" for r in warns]
    lines.append(f"Data Docs: {where}")
    return "\n".join(lines)


def finish_validation(engine: Engine, stage: str, validation_id: str, run_id: str, snapshot_date: date,
                      results: list[CheckResult], docs: Path | None, started: float) -> list[CheckResult]:
    """Store, log, and raise ``DataQualityError`` when an error-severity check failed; else return ``results``."""
    store_results(engine, validation_id, run_id, snapshot_date, results, docs)
    errors = [r for r in results if r.failed and r.severity == "error"]
    warns = [r for r in results if r.failed and r.severity != "error"]
    where = str(docs) if docs else "not written (see the error above)"
    log.info("data quality (%s): %d checks, %d failed errors, %d warnings, %.1fs; Data Docs: %s",
             stage, len(results), len(errors), len(warns), time.perf_counter() - started, where)
    for r in warns:
        log.warning("data quality warning: %s", r.describe())
    for r in errors:
        log.error("data quality error: %s", r.describe())
    if errors:
        message = _failure_message(stage, run_id, snapshot_date, len(results), errors, warns, where)
        raise DataQualityError(message, results, docs)
    return results
