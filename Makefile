# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint unit integration stack-up stack-down clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@bash scripts/pg_up.sh
	@bash scripts/install_browser.sh
	@$(VENV)/bin/ruff check .
	@$(PY) -m pytest tests

lint: setup
	@$(VENV)/bin/ruff check .

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
