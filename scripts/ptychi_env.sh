#!/usr/bin/env bash
# Create .venv-ptychi: a separate environment with pty-chi (the `ptychi` package), used ONLY by
# benchmarks/bench_reconstruct.py --ptychi-python .venv-ptychi/bin/python to compare Pinnacle's refinement with
# pty-chi's LSQML engine (docs/performance.md, "Compared with pty-chi LSQML"). It is a benchmark-only tool: not part
# of CI, of the tests or of the default install (scripts/setup.sh), and Pinnacle never imports ptychi.
#
# Why a separate environment: pty-chi imports torchvision at module level, and no torchvision release matches the
# CPU torch that Pinnacle pins; torch 2.14.1 + torchvision 0.29.1 work together (a CUDA build of torch; it runs on
# CPU). ptychi is installed with --no-deps because it declares development tools (mypy, ruff, pytest) as
# requirements; its real runtime imports are installed explicitly below.
#
# Idempotent: a second run with unchanged pins does nothing. Usage: scripts/ptychi_env.sh   (PYTHON=python3.11 to
# choose the interpreter; needs Python >= 3.11 and ~6 GB of disk for the CUDA build of torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
ENV=.venv-ptychi
FRAMEWORK=(torch==2.14.1 torchvision==0.29.1)
PTYCHI=ptychi==2.2.0
RUNTIME=("numpy>=2.1" scipy h5py "pydantic>=2,<3" scikit-image scikit-learn pandas tqdm "matplotlib>=3.10.6")
stamp=$ENV/.ptychi-installed
want=$(printf '%s\n' "${FRAMEWORK[@]}" "$PTYCHI" "${RUNTIME[@]}" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x $ENV/bin/python ] || "$PY" -m venv $ENV
pip() { $ENV/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 | grep -v "is ignored" >&2 || true; }
pip "${FRAMEWORK[@]}" "${RUNTIME[@]}"
pip --no-deps "$PTYCHI"
$ENV/bin/python -c "import ptychi, ptychi.api, torchvision" >/dev/null 2>&1 || { echo "ptychi_env: install failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "ptychi_env: $ENV ready" >&2
