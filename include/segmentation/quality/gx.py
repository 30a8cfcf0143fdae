"""Great Expectations plumbing: ephemeral context, SQL data sources on the warehouse, Data Docs.

GX is imported lazily (about 2 s) so that DAG parsing and light imports stay fast. Each validation
gets its own ephemeral context whose only persisted output is the Data Docs site under
``data_docs_dir(snapshot_date, run_id, stage)``; the context is closed afterwards so that no
warehouse connection outlives the validation.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import warnings
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from include.segmentation.quality.docs_offline import make_offline
from include.segmentation.quality.masking import mask_text
from include.segmentation.settings import data_docs_root
from include.segmentation.store import SCHEMAS, WarehouseError, is_sqlite, sqlite_schema_path

log = logging.getLogger(__name__)
# GX logs a lot at INFO; the project only wants its warnings.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

_SITE = "segmentation_quality"


def data_docs_dir(snapshot_date: date, run_id: str, stage: str) -> Path:
    """Where one validation's Data Docs go: ``<artifacts>/data_docs/<S>/<run_id>/<stage>/``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "run"
    return data_docs_root() / snapshot_date.isoformat() / safe / stage


def gx_module() -> Any:
    """Import great_expectations lazily (about 2 s): DAG parsing and light imports stay fast."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx


def ephemeral_context(docs: Path) -> Any:
    """An ephemeral GX context (nothing persisted but the Data Docs site in ``docs``)."""
    gx = gx_module()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    docs.mkdir(parents=True, exist_ok=True)
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={
            _SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def add_warehouse_source(context: Any, engine: Engine, name: str, temp_tables: bool) -> Any:
    """A GX SQL data source on the warehouse, connecting through the engine's own driver settings.

    The connection string handed to GX never carries the password (connections come from
    ``creator``); on SQLite the creator attaches the raw/segmentation/evaluation schema files the
    way ``get_engine`` does. With ``temp_tables`` GX materialises each (one-row) profile query
    once and evaluates every expectation on that result; it is off for the source of the table
    assets, which would otherwise be copied whole.
    """
    url = engine.url
    if is_sqlite(engine):
        db = str(url.database)

        def sqlite_creator() -> sqlite3.Connection:
            conn = sqlite3.connect(db, timeout=60, check_same_thread=False)
            for schema in SCHEMAS:
                conn.execute("ATTACH DATABASE ? AS " + schema, (str(sqlite_schema_path(db, schema)),))
            return conn

        return context.data_sources.add_sqlite(
            name=name, connection_string=f"sqlite:///{db}", create_temp_table=temp_tables,
            kwargs={"creator": sqlite_creator},
        )
    if engine.dialect.name != "postgresql":
        raise WarehouseError(f"data quality supports PostgreSQL and SQLite warehouses, not {engine.dialect.name}")
    cargs, cparams = engine.dialect.create_connect_args(url)
    dbapi = engine.dialect.loaded_dbapi

    def pg_creator() -> Any:
        return dbapi.connect(*cargs, **cparams)

    return context.data_sources.add_postgres(
        name=name,
        connection_string=url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=True),
        create_temp_table=temp_tables,
        kwargs={"creator": pg_creator},
    )


def close_context(context: Any) -> None:
    """Dispose GX's engines so no warehouse connection outlives the validation."""
    try:
        sources = context.data_sources.all().values()
    except Exception:  # pragma: no cover - defensive
        return
    for ds in sources:
        for getter in ("get_execution_engine", "get_engine"):
            try:
                obj = getattr(ds, getter)()
                (obj.close if hasattr(obj, "close") else obj.dispose)()
            except Exception:  # noqa: BLE001,S112 - best effort cleanup only
                continue


def run_identifier(run_id: str) -> Any:
    """The GX run identifier of a pipeline run (its name made filesystem-safe for Data Docs)."""
    from great_expectations.core.run_identifier import RunIdentifier

    return RunIdentifier(run_name=re.sub(r"[^A-Za-z0-9._-]+", "_", run_id), run_time=datetime.now(timezone.utc))


def run_suite(gx: Any, context: Any, name: str, batch: Any, expectations: list[Any], run_ident: Any,
              result_format: Any = "SUMMARY", batch_parameters: dict[str, Any] | None = None) -> Any:
    """Add suite ``name`` with ``expectations`` and its validation definition on ``batch``; run it once."""
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for e in expectations:
        suite.add_expectation(e)
    vd = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    if batch_parameters is None:
        return vd.run(result_format=result_format, run_id=run_ident)
    return vd.run(batch_parameters=batch_parameters, result_format=result_format, run_id=run_ident)


def metric_error(result: Any) -> str | None:
    """The masked first line of a metric error (a check that could not run), if any."""
    info = getattr(result, "exception_info", None) or {}
    items = info.values() if isinstance(info, dict) and "raised_exception" not in info else [info]
    for item in items:
        if isinstance(item, dict) and item.get("raised_exception"):
            msg = str(item.get("exception_message") or "error").strip().splitlines()[0]
            return mask_text(msg)[:300]
    return None


def build_docs(context: Any, docs: Path) -> Path | None:
    """Render the context's validation results as HTML Data Docs; returns index.html (None on failure)."""
    try:
        context.build_data_docs(site_names=[_SITE])
    except Exception as exc:  # noqa: BLE001 - docs are a by-product; the results are stored anyway
        log.error("data quality: Data Docs could not be written to %s: %s", docs, mask_text(str(exc))[:500])
        return None
    make_offline(docs)  # no CDN assets: the pages work offline and inside the Airflow UI
    index = docs / "index.html"
    return index if index.exists() else None
