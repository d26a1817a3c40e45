#!/usr/bin/env bash
# Create .venv-only-BACKEND: Pinnacle installed the way a beamline machine with ONE framework has it
# (`pip install -e .[tensorflow]` or `.[torch]`, CPU pins from requirements-cpu.txt), so tests can prove the other
# framework is not needed. Idempotent (a stamp of the requirements). Usage: scripts/one_framework_env.sh tensorflow|torch
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:?usage: scripts/one_framework_env.sh tensorflow|torch}
case "$backend" in tensorflow|torch) ;; *) echo "one_framework_env: tensorflow or torch, not $backend" >&2; exit 2;; esac
PY=${PYTHON:-python3}
env=.venv-only-$backend
stamp=$env/.pinnacle-installed
want=$(cat requirements-cpu.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$env"
  exit 0
fi
rm -rf "$env"
"$PY" -m venv "$env"
# -c: the CPU pins (torch==2.13.0 is the local CPU wheel; an open range would pull a CUDA build)
"$env/bin/python" -m pip install -q --disable-pip-version-check -c requirements-cpu.txt -e ".[$backend]" 2>&1 \
  | grep -v "is ignored" >&2 || true
"$env/bin/python" -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('$backend') else 1)" \
  || { echo "one_framework_env: install of $backend failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "$env"
