"""docker-compose.yaml and docker/ agree with the project.

No Docker engine runs where these tests run: the compose file is parsed (PyYAML), interpolated with
the documented .env values the way the Compose specification describes, and checked against the
project's own files (requirements pin, mounts, connection id, source contract, pool, roles).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.segmentation.store import parse_airflow_conn_env

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yaml"
DOCKER = ROOT / "docker"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
ONE_OFF = ("airflow-init", "demo-data")


def requirement_pin(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(rf"^{re.escape(name)}==([\w.]+)\s*(#.*)?$", line.strip(), re.IGNORECASE)
        if m:
            return m.group(1)
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def env_example() -> dict[str, str]:
    values = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?\}$")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose-spec interpolation (direct, defaults, required, nested, $$) of one string."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            depth, j = 0, i
            while j < len(text):  # the matching brace, allowing nested ${...}
                if text.startswith("${", j):
                    depth += 1
                    j += 2
                    continue
                if text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            m = _VAR.match(text[i : j + 1])
            assert m, f"unsupported interpolation {text[i : j + 1]!r}"
            name, op, arg = m.group("name"), m.group("op"), m.group("arg")
            value = env.get(name)
            if op in (":-", "-"):
                if value is None or (op == ":-" and value == ""):
                    value = interpolate(arg, env)
            elif op in (":?", "?"):
                if value is None or (op == ":?" and value == ""):
                    raise KeyError(f"{name}: {arg}")
            elif op in (":+", "+"):
                value = interpolate(arg, env) if value not in (None, "") or (op == "+" and value is not None) else ""
            out.append(value or "")
            i = j + 1
        elif text[i] == "$" and i + 1 < len(text) and (text[i + 1].isalpha() or text[i + 1] == "_"):
            m = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)", text[i:])
            out.append(env.get(m.group(1), ""))
            i += len(m.group(0))
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(x, env) for x in node]
    if isinstance(node, dict):
        return {k: resolve(v, env) for k, v in node.items()}
    return node


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # anchors and merge keys are resolved by PyYAML


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    env = {k: (v.replace("change-me", "s3cret") if "change-me" in v else v) for k, v in env_example().items()}
    return resolve(raw_compose, env)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


# --- versions -----------------------------------------------------------------------------------


def test_airflow_image_version_matches_requirements(raw_compose: dict[str, Any]) -> None:
    pin = requirement_pin("apache-airflow")
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(rf"^ARG AIRFLOW_VERSION={re.escape(pin)}$", dockerfile, re.M), "Dockerfile default AIRFLOW_VERSION"
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python\$\{PYTHON_VERSION\}$", dockerfile, re.M)
    py = re.search(r'requires-python = ">=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text()).group(1)
    assert re.search(rf"^ARG PYTHON_VERSION={re.escape(py)}$", dockerfile, re.M)
    for name in AIRFLOW_SERVICES + ONE_OFF:
        svc = raw_compose["services"][name]
        assert svc["build"]["args"]["AIRFLOW_VERSION"] == pin, name
        assert svc["build"]["args"]["PYTHON_VERSION"] == py, name
        assert svc["build"]["dockerfile"] == "docker/Dockerfile" and svc["build"]["context"] == "."
        assert svc["image"].endswith(f":{pin}"), name
    # The image installs the project's pins, with Airflow held at the image's own version.
    assert "-r /opt/custseg/requirements.txt -c /opt/custseg/constraints.txt" in dockerfile
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in dockerfile


def test_build_context_ships_only_what_the_image_copies() -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("**") :][:1] == ["**"], "everything excluded first"
    copied = set(re.findall(r"^COPY --chown=\S+ (.+) /opt/", (DOCKER / "Dockerfile").read_text(), re.M))
    sources = {p for line in copied for p in line.split()}
    assert sources == {"requirements.txt", "constraints.txt", "include", "dags", "plugins"}
    for src in sources:
        assert f"!{src}" in ignore, src
        assert (ROOT / src).exists(), src


# --- services, health checks, dependencies -------------------------------------------------------


def test_services_and_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"airflow-db", "warehouse", *AIRFLOW_SERVICES, *ONE_OFF}
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
    }
    for name, svc in services.items():
        if name in ONE_OFF:
            assert svc.get("restart") == "no", name
            continue
        test = svc["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        assert svc["restart"] == "always", name
    # The API server is checked on the endpoint that reports every component.
    assert "http://localhost:8080/api/v2/monitor/health" in services["airflow-apiserver"]["healthcheck"]["test"]
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"


def test_dependencies_exist_and_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services, (name, dep)
            expected = "service_completed_successfully" if dep == "airflow-init" else "service_healthy"
            assert cond["condition"] == expected, (name, dep)
    for name in AIRFLOW_SERVICES:
        assert set(services[name]["depends_on"]) == {"airflow-db", "warehouse", "airflow-init"}, name


def test_airflow_configuration(compose: dict[str, Any]) -> None:
    env = environment(compose["services"]["airflow-scheduler"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) > 1
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    meta = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert re.fullmatch(r"postgresql\+psycopg2://airflow:s3cret@airflow-db:5432/airflow", meta)
    db_env = environment(compose["services"]["airflow-db"])
    assert (db_env["POSTGRES_USER"], db_env["POSTGRES_DB"], db_env["POSTGRES_PASSWORD"]) == ("airflow", "airflow", "s3cret")
    # All components share the same secrets (JWT between scheduler and API server, Fernet).
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY"):
        assert {environment(compose["services"][n])[key] for n in AIRFLOW_SERVICES} == {"s3cret"}, key


def test_required_secrets_fail_loudly_when_missing(raw_compose: dict[str, Any]) -> None:
    env = {k: v for k, v in env_example().items() if k != "WAREHOUSE_WRITER_PASSWORD"}
    with pytest.raises(KeyError, match="WAREHOUSE_WRITER_PASSWORD"):
        resolve(raw_compose["services"]["airflow-scheduler"], env)
    # Every required variable is documented in docker/.env.example, with a placeholder, not a secret.
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", COMPOSE.read_text()))
    documented = env_example()
    assert required <= set(documented), required - set(documented)
    for key in required:
        if "PASSWORD" in key or "SECRET" in key or "KEY" in key:
            assert documented[key] == "change-me", key


# --- mounts and code ----------------------------------------------------------------------------


def test_mounts_exist_and_make_the_package_importable(compose: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        svc = compose["services"][name]
        binds = {}
        for vol in svc["volumes"]:
            src, dst = vol.split(":")[:2]
            if src.startswith("./"):
                binds[dst] = src
                assert (ROOT / src).is_dir(), f"{name}: mount source {src} does not exist"
        assert binds == {"/opt/airflow/dags": "./dags", "/opt/airflow/plugins": "./plugins", "/opt/airflow/include": "./include"}
        env = environment(svc)
        # /opt/airflow on the path + /opt/airflow/include mounted = `import include.segmentation` works.
        assert env["PYTHONPATH"] == "/opt/airflow"
    wh = compose["services"]["warehouse"]
    init_mount = next(v for v in wh["volumes"] if v.split(":")[1] == "/docker-entrypoint-initdb.d")
    assert init_mount.split(":")[0] == "./docker/warehouse-init" and init_mount.endswith(":ro")
    named = {v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert named <= set(compose["volumes"])


def test_warehouse_connection_from_the_environment(compose: dict[str, Any], raw_compose: dict[str, Any]) -> None:
    from include.segmentation.orchestration.connection import WAREHOUSE_CONN_ID

    env_key = f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}"
    for name in AIRFLOW_SERVICES:
        assert env_key in environment(compose["services"][name]), name
    url = parse_airflow_conn_env(environment(compose["services"]["airflow-scheduler"])[env_key])
    wh = environment(compose["services"]["warehouse"])
    assert url.host == "warehouse" and url.port == 5432 and url.database == wh["POSTGRES_DB"]
    assert url.username == "segment_writer" and url.password == "s3cret" == wh["WAREHOUSE_WRITER_PASSWORD"]
    assert url.username in (DOCKER / "warehouse-init" / "02_roles.sh").read_text()
    # An explicit AIRFLOW_CONN_WAREHOUSE (another warehouse) wins over the bundled one.
    other = "postgresql://u:p@db.example.internal:5432/prod?sslmode=require"
    env = {**env_example(), "WAREHOUSE_WRITER_PASSWORD": "x", "AIRFLOW_CONN_WAREHOUSE": other}
    assert environment(resolve(raw_compose["services"]["airflow-scheduler"], env))[env_key] == other


def test_pool_matches_the_local_stack_and_the_dag(compose: dict[str, Any]) -> None:
    init_cmd = " ".join(compose["services"]["airflow-init"]["command"])
    pools = re.findall(r"airflow pools set (\w+)", init_cmd)
    stack_pool = re.search(r'CUSTSEG_POOL="\$\{CUSTSEG_POOL:-(\w+)\}"', (ROOT / "scripts" / "stack_env.sh").read_text())
    assert pools == [stack_pool.group(1)] == ["warehouse"]
    dag_pools = set(re.findall(r"""["']pool["']\s*:\s*["'](\w+)["']|pool\s*=\s*["'](\w+)["']""",
                               (ROOT / "dags" / "customer_segmentation.py").read_text()))
    for found in {p for pair in dag_pools for p in pair if p}:
        assert found == "warehouse", "the DAG's pool must be the one the stacks create"


# --- warehouse initialisation -------------------------------------------------------------------


def test_init_sql_is_generated_from_the_contract() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_init_sql", DOCKER / "render_init_sql.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (DOCKER / "warehouse-init" / "01_contract.sql").read_text()
    assert committed == module.render(), "run: python docker/render_init_sql.py"


def test_init_sql_creates_exactly_the_contract_tables() -> None:
    from include.segmentation.sources import RAW_INDEXES, RAW_TABLES, evaluation_metadata, raw_metadata

    sql = (DOCKER / "warehouse-init" / "01_contract.sql").read_text()
    created = re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)\.(\w+) \(", sql)
    expected = [(t.schema, t.name) for md in (raw_metadata, evaluation_metadata) for t in md.sorted_tables]
    assert sorted(created) == sorted(expected)
    assert sorted(name for schema, name in created if schema == "raw") == sorted(RAW_TABLES)
    for table in raw_metadata.sorted_tables:  # every column, in contract order
        body = re.search(rf"CREATE TABLE IF NOT EXISTS raw\.{table.name} \((.*?)\n\);", sql, re.S).group(1)
        cols = [line.split()[0] for line in body.strip().splitlines() if not line.strip().startswith(("PRIMARY", "CONSTRAINT"))]
        assert cols == [c.name for c in table.columns], table.name
    assert sorted(re.findall(r"CREATE INDEX IF NOT EXISTS (\w+) ON", sql)) == sorted(ix.name for ix in RAW_INDEXES)


def test_roles_script_creates_writer_and_read_only_reader() -> None:
    script = (DOCKER / "warehouse-init" / "02_roles.sh").read_text()
    assert 'WRITER="${WAREHOUSE_WRITER_ROLE:-segment_writer}"' in script
    assert 'READER="${WAREHOUSE_READER_ROLE:-segment_reader}"' in script
    from include.segmentation.store import READER_ROLE

    assert READER_ROLE == "segment_reader"
    grants_to_reader = re.findall(r'^GRANT (.+?) TO :"reader";', script, re.M)
    assert grants_to_reader == ["CONNECT ON DATABASE :\"db\"", "USAGE ON SCHEMA segmentation"]
    assert "PASSWORD :'writer_password'" in script and "PASSWORD :'reader_password'" in script
    assert not re.search(r"PASSWORD '[^:]", script), "no literal passwords in the init script"
    # The entrypoint runs files in name order: the contract exists before the grants on it.
    assert sorted(p.name for p in (DOCKER / "warehouse-init").iterdir()) == ["01_contract.sql", "02_roles.sh"]
