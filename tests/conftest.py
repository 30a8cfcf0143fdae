"""Shared fixtures: real PostgreSQL databases and SQLite files, generated warehouses, the shared data
files beside the checkout, and an isolated Airflow home.

Airflow reads its configuration at import time, so the environment is set here, before any test
module imports airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pytest

from include.segmentation.settings import ONLINE_RETAIL_ENV, SHARED_DATA_DIR, online_retail_path

ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="custseg-airflow-"))


def _own_default(name: str, value: str) -> None:
    """Set ``name`` unless the caller did; a value inherited from the pytest-xdist controller
    (``_CUSTSEG_SET_<name>``) is replaced, so every worker has its own Airflow home."""
    marker = f"_CUSTSEG_SET_{name}"
    if name not in os.environ or os.environ[name] == os.environ.get(marker):
        os.environ[name] = os.environ[marker] = value


_own_default("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
_own_default("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME}/airflow.db")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
_own_default("SEGMENTATION_ARTIFACTS_DIR", str(_AIRFLOW_HOME / "artifacts"))
# Tests never read a developer's own warehouse settings.
os.environ.pop("WAREHOUSE_URL", None)
os.environ.pop("AIRFLOW_CONN_WAREHOUSE", None)

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")

Flavour = Literal["sqlite", "postgres"]


def _admin_engine():
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def _pg_database_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


# --- databases ----------------------------------------------------------------------------------


class WarehouseFactory:
    """Creates test warehouses and drops every one it created.

    ``copy(flavour, customers=..., days=..., end_date=..., seed=...)`` returns the URL of a new
    warehouse filled with generated data. The data is generated once per session and argument set
    (a *template*), then copied: ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL, a copy of the main
    file and its attached schema files on SQLite. ``prepare(engine)``, a module-level function, may
    add to the template once (e.g. publish a snapshot); it is part of the cache key.
    ``empty(flavour)`` returns a new empty warehouse. ``drop(url)`` drops one; ``close()`` all.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self._templates: dict[tuple[Any, ...], str] = {}
        self._pg_templates: list[str] = []
        self._live: set[str] = set()

    # -- public
    def empty(self, flavour: Flavour) -> str:
        """A new empty warehouse (no tables) of this flavour."""
        if flavour == "postgres":
            return self._pg_create()
        if flavour == "sqlite":
            url = f"sqlite:///{self._new_dir('empty') / 'warehouse.db'}"
            self._live.add(url)
            return url
        raise ValueError(f"unknown warehouse flavour {flavour!r}")

    def copy(
        self,
        flavour: Flavour,
        customers: int = 1500,
        days: int = 400,
        end_date: date = date(2024, 6, 30),
        seed: int = 7,
        prepare: Callable[[Any], object] | None = None,
    ) -> str:
        """A new warehouse holding the generated data of these arguments (see the class docstring)."""
        template = self._template(flavour, customers, days, end_date, seed, prepare)
        if flavour == "postgres":
            return self._pg_create(template=template)
        target = self._new_dir("copy") / "warehouse.db"
        _copy_sqlite_warehouse(Path(template), target)
        url = f"sqlite:///{target}"
        self._live.add(url)
        return url

    @contextmanager
    def copied(self, flavour: Flavour, **spec: Any) -> Iterator[str]:
        """``copy()`` for one ``with`` block (e.g. a module-scoped fixture), dropped on exit."""
        url = self.copy(flavour, **spec)
        try:
            yield url
        finally:
            self.drop(url)

    def drop(self, url: str) -> None:
        """Drop a warehouse this factory created."""
        self._live.discard(url)
        if url.startswith("sqlite:"):
            shutil.rmtree(Path(url.removeprefix("sqlite:///")).parent, ignore_errors=True)
        else:
            self._pg_drop(url.rsplit("/", 1)[1])

    def close(self) -> None:
        """Drop every warehouse and template still there."""
        for url in sorted(self._live):
            self.drop(url)
        for name in self._pg_templates:
            self._pg_drop(name)
        self._pg_templates.clear()
        self._templates.clear()
        shutil.rmtree(self.base, ignore_errors=True)

    # -- templates
    def _template(self, flavour: Flavour, customers: int, days: int, end_date: date, seed: int,
                  prepare: Callable[[Any], object] | None) -> str:
        key = (flavour, customers, days, end_date, seed, prepare)
        if key not in self._templates:
            self._templates[key] = self._build(flavour, customers, days, end_date, seed, prepare)
        return self._templates[key]

    def _build(self, flavour: Flavour, customers: int, days: int, end_date: date, seed: int,
               prepare: Callable[[Any], object] | None) -> str:
        """Generate a template with the project's generator; PostgreSQL: its name, SQLite: its main file."""
        from include.segmentation.sources import create_source_contract, generate_to_warehouse
        from include.segmentation.store import get_engine

        if flavour == "postgres":
            name = f"custseg_tpl_{uuid.uuid4().hex[:12]}"
            self._admin_exec(f"CREATE DATABASE {name}")
            self._pg_templates.append(name)
            url, ref = _pg_database_url(name), name
        elif flavour == "sqlite":
            path = self._new_dir("template") / "warehouse.db"
            url, ref = f"sqlite:///{path}", str(path)
        else:
            raise ValueError(f"unknown warehouse flavour {flavour!r}")
        engine = get_engine(url)
        try:
            create_source_contract(engine)
            generate_to_warehouse(engine, customers=customers, days=days, end_date=end_date, seed=seed)
            if prepare is not None:
                prepare(engine)
        finally:
            engine.dispose()
        if flavour == "postgres":
            # Copies need a template nobody is connected to; refusing connections also keeps it pristine.
            self._admin_exec(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
        return ref

    # -- plumbing
    def _new_dir(self, kind: str) -> Path:
        path = self.base / f"{kind}-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        return path

    def _pg_create(self, template: str | None = None) -> str:
        name = f"custseg_test_{uuid.uuid4().hex[:12]}"
        self._admin_exec(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        url = _pg_database_url(name)
        self._live.add(url)
        return url

    def _pg_drop(self, name: str) -> None:
        self._admin_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    @staticmethod
    def _admin_exec(sql: str) -> None:
        admin = _admin_engine()
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(sql)
        finally:
            admin.dispose()


def _copy_sqlite_warehouse(source: Path, target: Path) -> None:
    """Copy a SQLite warehouse: the main file and its ``<stem>.<schema>.db`` files."""
    from include.segmentation.store import SCHEMAS, sqlite_schema_path

    shutil.copyfile(source, target)
    for schema in SCHEMAS:
        src = sqlite_schema_path(source, schema)
        if src.exists():
            shutil.copyfile(src, sqlite_schema_path(target, schema))


@pytest.fixture(scope="session")
def warehouse_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseFactory]:
    """The session's :class:`WarehouseFactory`; templates and leftovers are dropped at session end."""
    factory = WarehouseFactory(tmp_path_factory.mktemp("warehouses"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def generated_warehouse(warehouse_factory: WarehouseFactory) -> Iterator[Callable[..., str]]:
    """``generated_warehouse(flavour, customers=1500, days=400, end_date=date(2024, 6, 30), seed=7,
    prepare=None) -> url``: a warehouse of this test's own with generated data, dropped afterwards."""
    made: list[str] = []

    def make(flavour: Flavour, **spec: Any) -> str:
        made.append(warehouse_factory.copy(flavour, **spec))
        return made[-1]

    yield make
    for url in made:
        warehouse_factory.drop(url)


@pytest.fixture
def pg_url(warehouse_factory: WarehouseFactory) -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own, dropped afterwards."""
    url = warehouse_factory.empty("postgres")
    try:
        yield url
    finally:
        warehouse_factory.drop(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh embedded SQLite warehouse file."""
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on both warehouse flavours."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def _contract_engine(url: str) -> Any:
    """An engine on ``url`` with the source contract (schemas and raw tables) created."""
    from include.segmentation.sources import create_source_contract
    from include.segmentation.store import get_engine

    eng = get_engine(url)
    create_source_contract(eng)
    return eng


@pytest.fixture
def engine(warehouse_url: str) -> Iterator[Any]:
    """An engine on an empty warehouse (each flavour) with the source contract created."""
    eng = _contract_engine(warehouse_url)
    yield eng
    eng.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Any]:
    """An engine on an empty PostgreSQL warehouse of this test's own with the source contract created."""
    eng = _contract_engine(pg_url)
    yield eng
    eng.dispose()


@pytest.fixture
def generated_engine(generated_warehouse: Callable[..., str]) -> Iterator[Callable[..., Any]]:
    """``generated_engine(flavour, **spec) -> Engine`` on a generated warehouse of this test's own
    (``generated_warehouse``'s arguments); disposed before the warehouse is dropped."""
    from include.segmentation.store import get_engine

    engines: list[Any] = []

    def make(flavour: Flavour, **spec: Any) -> Any:
        engines.append(get_engine(generated_warehouse(flavour, **spec)))
        return engines[-1]

    yield make
    for eng in engines:
        eng.dispose()


# --- data files beside the checkout -------------------------------------------------------------

#: Set (by .ci/run) to turn a missing shared data file into a failure instead of a skip.
REQUIRE_SHARED_DATA_ENV = "CUSTSEG_REQUIRE_SHARED_DATA"

_SHARED_DATA_ORIGIN = {
    "online_retail": (
        'the UCI Machine Learning Repository "Online Retail" data set '
        "(https://archive.ics.uci.edu/dataset/352/online+retail), as gzipped CSV with InvoiceDate "
        f"written YYYY-MM-DD HH:MM:SS; put it at that path or point ${ONLINE_RETAIL_ENV} at it"
    ),
    "cdnow_sample": (
        "the CDNOW sample (CDNOW_sample.txt) from Bruce Hardie's data sets page "
        "(https://www.brucehardie.com/datasets/), also shipped as lifetimes/datasets/CDNOW_sample.txt; "
        "put it at that path"
    ),
}


def shared_data_path(relative: str) -> Path:
    """Where a shared data file should be: ``SHARED_DATA_DIR / relative``, except that the Online
    Retail file follows ``$ONLINE_RETAIL_CSV`` (``settings.online_retail_path()``)."""
    if Path(relative) == Path("online_retail/online_retail.csv.gz"):
        return online_retail_path()
    return SHARED_DATA_DIR / relative


def missing_shared_data_reason(relative: str) -> str | None:
    """Why the shared data file ``relative`` cannot be used, or None when it is there."""
    path = shared_data_path(relative)
    if path.is_file():
        return None
    origin = _SHARED_DATA_ORIGIN.get(Path(relative).parts[0], "see the README beside it")
    return f"shared data file {path} is missing: it is {origin}"


@pytest.fixture(scope="session")
def shared_data() -> Callable[[str], Path]:
    """``shared_data("online_retail/online_retail.csv.gz") -> Path`` of a data file beside the
    checkout (``../shared/data``); skips the test, saying where to get the file, when it is absent
    (fails instead when ``$CUSTSEG_REQUIRE_SHARED_DATA`` is set, as in CI)."""

    def get(relative: str) -> Path:
        reason = missing_shared_data_reason(relative)
        if reason is None:
            return shared_data_path(relative)
        if os.environ.get(REQUIRE_SHARED_DATA_ENV):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)

    return get


# --- Airflow ------------------------------------------------------------------------------------


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this process's temporary Airflow home (metadata database, logs, artifacts)."""
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the isolated Airflow metadata database once per session."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return home
