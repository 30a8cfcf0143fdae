# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
# `make test-fast` is the quick loop: lint, types and every test that needs no local Airflow stack,
# no browser and is not marked slow, spread over the CPUs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# pytest-xdist workers for test-fast (`logical` = one per logical CPU).
WORKERS ?= logical
FAST_MARKERS := not stack and not browser and not slow

.PHONY: setup demo test test-fast lint typecheck unit integration stack-up stack-down clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@bash scripts/pg_up.sh
	@bash scripts/install_browser.sh
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy
	@$(PY) -m pytest tests -m "not stack and not browser" -n $(WORKERS) --dist worksteal
	@$(PY) -m pytest tests -m "stack or browser"

test-fast: setup
	@bash scripts/pg_up.sh
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy
	@$(PY) -m pytest tests -m "$(FAST_MARKERS)" -n $(WORKERS) --dist worksteal

lint: setup
	@$(VENV)/bin/ruff check .

typecheck: setup
	@$(VENV)/bin/mypy

unit: setup
	@$(PY) -m pytest tests/unit tests/dags

integration: setup
	@bash scripts/pg_up.sh
	@$(PY) -m pytest tests/integration

stack-up: setup
	@bash scripts/stack_up.sh

stack-down:
	@bash scripts/stack_down.sh

clean:
	-@bash scripts/stack_down.sh --purge
	rm -rf data artifacts .airflow
