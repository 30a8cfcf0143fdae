"""One DagBag of the project's dags/ folder, parsed once per session and shared by the DAG tests."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(DAGS_DIR.glob("*.py"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes ``dag_file`` runs once per file of dags/."""
    if "dag_file" in metafunc.fixturenames:
        metafunc.parametrize("dag_file", DAG_FILES, ids=[p.name for p in DAG_FILES])


@pytest.fixture(scope="session")
def dagbag():
    """Every DAG file of dags/, parsed the way the DAG processor parses it."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.fixture(scope="session")
def get_dag(dagbag):
    """``get_dag(dag_id)``: that DAG from the bag; fails naming the import errors when it is missing."""

    def get(dag_id: str):
        if dag_id not in dagbag.dags:
            pytest.fail(f"DAG {dag_id} not in the bag; import errors: {dagbag.import_errors}", pytrace=False)
        return dagbag.dags[dag_id]

    return get
