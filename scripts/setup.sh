#!/usr/bin/env bash
# Create .venv and install Pinnacle with both backends (CPU builds). Idempotent: a second run with unchanged
# requirements does nothing. Usage: scripts/setup.sh   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.pinnacle-installed
want=$(cat requirements-cpu.txt requirements-test-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-cpu.txt 2>&1 | grep -v "is ignored" >&2 || true
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-test-nodeps.txt 2>&1 | grep -v "is ignored" >&2 || true
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "is ignored" >&2 || true
.venv/bin/python -c "import torch, tensorflow, lightning, textual" >/dev/null 2>&1 || { echo "setup: install failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup: .venv ready" >&2
