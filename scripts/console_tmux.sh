#!/usr/bin/env bash
# The operator's loop in a real terminal (tmux), at 80×24 by default, on the bundled fixtures:
#   1. Launch → train with the held-out scan pre-filled (ctrl+t) → the run ends → Results shows the reconstruction
#      and its metrics, with no path typed;
#   2. a `pinnacle train` started from another shell appears live on the Run screen by itself and is cancelled from
#      the console (c, then y): it ends with exit 130, status cancelled.
# Prints the captured screens (Launch, Run, Results, the outside run live, the confirmation, after the cancel).
#   scripts/console_tmux.sh            # EPOCHS=2 BACKEND=tensorflow COLS=80 ROWS=24 RUNS=<temp dir> TIMEOUT=300
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-2}
BACKEND=${BACKEND:-tensorflow}   # tensorflow | torch
COLS=${COLS:-80}
ROWS=${ROWS:-24}
RUNS=${RUNS:-$(mktemp -d)}
TIMEOUT=${TIMEOUT:-300}
PINNACLE=${PINNACLE:-.venv/bin/pinnacle}
S="pinnacle-console-$$"
command -v tmux >/dev/null || { echo "tmux is not installed (apt-get install -y tmux)" >&2; exit 2; }

shot() { echo "----- $1 -----"; tmux capture-pane -p -t "$S"; }
wait_for() {  # wait_for PATTERN SECONDS: until the screen matches (extended regex), polled 4 times a second
  for _ in $(seq 1 $(($2 * 4))); do
    if tmux capture-pane -p -t "$S" | grep -qE "$1"; then return 0; fi
    sleep 0.25
  done
  echo "timed out waiting for: $1" >&2; shot "screen at timeout" >&2; return 1
}

tmux new-session -d -s "$S" -x "$COLS" -y "$ROWS" "$PINNACLE console --data fixtures/train.npz --runs '$RUNS'"
OUTSIDE_PID=""
cleanup() {
  tmux kill-session -t "$S" 2>/dev/null || true
  if [ -n "$OUTSIDE_PID" ]; then kill "$OUTSIDE_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
wait_for "ground truth" 60

# ---- 1. train with the held-out scan from Launch, then Results ---------------------------------------------------
tmux send-keys -t "$S" l
wait_for "held-out scan" 20
if [ "$BACKEND" = torch ]; then tmux send-keys -t "$S" Right Enter; sleep 0.3; fi   # backend selector has the focus
for key in Tab Tab Tab End C-u; do tmux send-keys -t "$S" "$key"; sleep 0.2; done     # backend -> data -> test -> epochs
tmux send-keys -t "$S" -l "$EPOCHS"
sleep 0.3
tmux send-keys -t "$S" Escape
sleep 0.5
shot "Launch (held-out scan pre-filled; the command line is what runs)"
tmux send-keys -t "$S" C-t
wait_for "1/$EPOCHS epochs" 120
shot "Run, training"
wait_for "(✔ ok|✘ failed|■ cancelled)" "$TIMEOUT"
sleep 1
shot "Run, finished"
tmux send-keys -t "$S" s
wait_for "metric" 20
sleep 1
shot "Results (nothing typed)"

# ---- 2. a training started from another shell: followed live, cancelled from the console -------------------------
tmux send-keys -t "$S" r
$PINNACLE train fixtures/train.npz --epochs 50 --backend "$BACKEND" --runs "$RUNS" --no-progress \
  >"$RUNS/outside.log" 2>&1 &
OUTSIDE_PID=$!
wait_for "started elsewhere" 60
wait_for "[1-9][0-9]*/50 epochs" 120
sleep 1
shot "Run, a train started from another shell (pid $OUTSIDE_PID), live"
tmux send-keys -t "$S" c
wait_for "Cancel run \(y\)" 10
shot "Cancel asks first"
tmux send-keys -t "$S" y
set +e
wait "$OUTSIDE_PID"
CODE=$?
set -e
OUTSIDE_PID=""
wait_for "■ cancelled" 30
sleep 1
shot "Run, the outside run after the cancel"
echo "outside pinnacle train exited with $CODE"
tmux send-keys -t "$S" q   # nothing of ours is running: quits at once
sleep 2
