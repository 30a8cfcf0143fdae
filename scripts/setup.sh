#!/usr/bin/env bash
# Create .venv inside the project and install the pinned requirements into it.
# Idempotent: re-installs only when requirements*.txt or constraints.txt change.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-dev.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements into .venv (python: $(.venv/bin/python --version))"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt -c constraints.txt
  echo "$want" > "$stamp"
fi
echo "setup: .venv ready"
