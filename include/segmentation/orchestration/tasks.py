"""Run a pipeline stage inside an Airflow task: one engine per task, and no retry for permanent errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine

from include.segmentation.errors import PermanentError
from include.segmentation.orchestration.connection import warehouse_engine

T = TypeVar("T")


def run_stage(stage: str | Callable[..., T], *args: Any) -> T:
    """``stage(engine, *args)`` on the warehouse connection; a PermanentError fails the task at once.

    ``stage`` is a function or the name of one in ``include.segmentation.pipeline``.

    Data and model problems (a failed check, an empty window, a rejected model, a bad parameter)
    give the same answer on every try, so they raise ``AirflowFailException`` (no retries, the
    message says why); anything else is left to the task's retries.
    """
    from airflow.sdk.exceptions import AirflowFailException

    if isinstance(stage, str):
        import include.segmentation.pipeline as pipeline

        stage = getattr(pipeline, stage)
    engine: Engine = warehouse_engine()
    try:
        return stage(engine, *args)  # type: ignore[operator]
    except PermanentError as exc:
        raise AirflowFailException(str(exc)) from exc
    finally:
        engine.dispose()


def logical_utc(context: Any) -> Any:
    """The run's logical date (its ``run_after`` for a run without one) as a pendulum DateTime in UTC."""
    import pendulum

    logical = context.get("logical_date") or context["dag_run"].run_after
    return pendulum.instance(logical).in_timezone("UTC")
