"""Rules every DAG in dags/ follows: it parses cleanly and cheaply, and says who owns it and what it does.

Top level of a DAG file imports only the standard library, ``pendulum``, ``airflow.sdk`` and the
package's dependency-free declarative modules (``LIGHT_MODULES``); everything else is imported
inside the tasks, so the DAG processor parses each file in well under a second.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

LIGHT_MODULES = {
    "include.segmentation.params",
    "include.segmentation.orchestration.assets",
    "include.segmentation.orchestration.params",
}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
# Loaded at parse time only if a DAG file (or what it imports) pulls them in.
HEAVY = (
    "pandas", "numpy", "scipy", "sklearn", "great_expectations", "sqlalchemy", "psycopg2", "requests",
    "include.segmentation.pipeline", "include.segmentation.store", "include.segmentation.sources",
    "include.segmentation.model", "include.segmentation.quality", "include.segmentation.explain",
    "include.segmentation.audiences",
)


def allowed_import(module: str, names: tuple[str, ...] = ()) -> bool:
    """True for ``import module`` / ``from module import names`` that a DAG file may run at parse time."""
    if module.split(".")[0] in STDLIB or module == "pendulum" or module.startswith("pendulum."):
        return True
    if module in ("airflow.sdk", *LIGHT_MODULES):
        return True
    # ``from include.segmentation import params`` names a light module too.
    return bool(names) and all(f"{module}.{name}" in LIGHT_MODULES for name in names)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def parse_time_imports(tree: ast.Module) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, module, imported names) of every import that runs when the file is imported:
    anywhere except inside functions and ``if TYPE_CHECKING:`` blocks."""
    found: list[tuple[int, str, tuple[str, ...]]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]))
                continue
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name, ()) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                module = "." * child.level + (child.module or "")
                found.append((child.lineno, module, tuple(alias.name for alias in child.names)))
            else:
                visit(child)

    visit(tree)
    return found


@pytest.mark.parametrize(
    ("source", "ok"),
    [
        ("import os, json\nfrom datetime import timedelta\nimport pendulum", True),
        ("from airflow.sdk import dag, task\nfrom include.segmentation.orchestration.assets import X", True),
        ("from include.segmentation import params\nfrom __future__ import annotations", True),
        ("import json\ndef f():\n    import pandas\nif TYPE_CHECKING:\n    import pandas", True),
        ("import pandas", False),
        ("from airflow.providers.standard.operators.python import PythonOperator", False),
        ("from include.segmentation.pipeline import run", False),
        ("from include.segmentation import params, pipeline", False),
        ("try:\n    import sqlalchemy\nexcept ImportError:\n    pass", False),
        ("class C:\n    import numpy", False),
        ("from . import helpers", False),
    ],
)
def test_the_import_rule_itself(source: str, ok: bool) -> None:
    imports = parse_time_imports(ast.parse(source))
    assert imports, "every example imports something"
    assert all(allowed_import(module, names) for _, module, names in imports) is ok


def test_dag_file_imports_only_light_modules_at_parse_time(dag_file: Path) -> None:
    tree = ast.parse(dag_file.read_text())
    bad = [f"line {line}: {module}" for line, module, names in parse_time_imports(tree) if not allowed_import(module, names)]
    assert bad == [], f"{dag_file.name} imports these at parse time (import them inside the tasks, or use a module of LIGHT_MODULES): {bad}"


def test_parsing_a_dag_file_loads_no_heavy_module(dag_file: Path) -> None:
    """What parsing the file loads beyond ``pendulum`` and ``airflow.sdk`` themselves, in a fresh interpreter."""
    code = (
        "import sys, runpy\n"
        "heavy = sys.argv[2].split(',')\n"
        "def loaded(): return {h for h in heavy for m in sys.modules if m == h or m.startswith(h + '.')}\n"
        "import pendulum, airflow.sdk\n"
        "before = loaded()\n"
        "runpy.run_path(sys.argv[1])\n"
        "print('HEAVY=' + ','.join(sorted(loaded() - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(dag_file), ",".join(HEAVY)],
        capture_output=True, text=True, env=os.environ.copy(),
    )
    assert out.returncode == 0, f"parsing {dag_file.name} failed:\n{out.stderr[-3000:]}"
    line = [x for x in out.stdout.splitlines() if x.startswith("HEAVY=")][-1]
    assert line == "HEAVY=", f"parsing {dag_file.name} loads {line[6:]}"


def test_dag_file_parses_and_defines_a_dag(dagbag, dag_file: Path) -> None:
    errors = {f: e for f, e in dagbag.import_errors.items() if Path(f).resolve() == dag_file.resolve()}
    assert errors == {}, errors
    assert [d for d in dagbag.dags.values() if Path(d.fileloc).resolve() == dag_file.resolve()], f"{dag_file.name} defines no DAG"


def test_every_dag_is_owned_documented_tagged_and_retried(dagbag, dag_file: Path) -> None:
    docstring = ast.get_docstring(ast.parse(dag_file.read_text()), clean=False)
    assert docstring and docstring.strip(), f"{dag_file.name} needs a module docstring (it is the DAG's doc_md)"
    dags = [d for d in dagbag.dags.values() if Path(d.fileloc).resolve() == dag_file.resolve()]
    for dag in dags:
        assert dag.tags, f"{dag.dag_id}: no tags"
        assert isinstance(dag.description, str) and dag.description.strip(), f"{dag.dag_id}: no description"
        assert dag.doc_md == docstring, f"{dag.dag_id}: doc_md must be the module docstring (doc_md=__doc__)"
        owner = dag.default_args.get("owner")
        assert owner and owner != "airflow", f"{dag.dag_id}: default_args owner is {owner!r}"
        assert [t.task_id for t in dag.tasks if t.owner in (None, "", "airflow")] == [], f"{dag.dag_id}: unowned tasks"
        retries = dag.default_args.get("retries")
        assert isinstance(retries, int) and retries >= 1, f"{dag.dag_id}: default_args retries is {retries!r}"
