#!/usr/bin/env bash
# Drive the operator console in a detached tmux session: open it on the bundled fixture, launch a short training
# from the Launch screen, wait for the run to end, and print the Run screen as text (then quit the console).
#   scripts/console_tmux.sh                 # EPOCHS=1 BACKEND=tensorflow RUNS=<temp dir> TIMEOUT=300
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-1}
BACKEND=${BACKEND:-tensorflow}   # tensorflow | torch
RUNS=${RUNS:-$(mktemp -d)}
TIMEOUT=${TIMEOUT:-300}
S="pinnacle-console-$$"
command -v tmux >/dev/null || { echo "tmux is not installed (apt-get install -y tmux)" >&2; exit 2; }

tmux new-session -d -s "$S" -x 120 -y 40 ".venv/bin/pinnacle console --data fixtures/train.npz --runs '$RUNS'"
trap 'tmux kill-session -t "$S" 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do   # wait for the first paint of the Datasets screen
  if tmux capture-pane -p -t "$S" | grep -q "ground truth"; then break; fi
  sleep 0.5
done
sleep 1
tmux send-keys -t "$S" l
for _ in $(seq 1 20); do
  if tmux capture-pane -p -t "$S" | grep -q "Start training"; then break; fi
  sleep 0.5
done
if [ "$BACKEND" = torch ]; then tmux send-keys -t "$S" Right Enter; fi
for key in Tab Tab End C-u; do tmux send-keys -t "$S" "$key"; sleep 0.3; done   # backend -> dataset -> epochs
tmux send-keys -t "$S" -l "$EPOCHS"
sleep 0.5
tmux send-keys -t "$S" Escape
sleep 0.5
tmux send-keys -t "$S" C-t                                # start training
for _ in $(seq 1 "$TIMEOUT"); do
  screen=$(tmux capture-pane -p -t "$S")
  if grep -qE "(✔ ok|✘ failed|■ cancelled) +train|fix the fields" <<<"$screen"; then break; fi
  sleep 1
done
sleep 1
tmux capture-pane -p -t "$S"
tmux send-keys -t "$S" q     # quit: cancels and awaits anything still running
sleep 2
