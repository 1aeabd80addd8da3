#!/usr/bin/env bash
# Regenerates docs/output.png: a real `devup` run of examples/monorepo in tmux, its colours captured
# with `tmux capture-pane -e`, turned into HTML by `aha` and photographed by headless Chromium.
# Needs: tmux, aha, chromium (Debian: apt-get install -y tmux aha chromium), devup's venv.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=$(command -v python3)
work=$(mktemp -d)
session="devup-shot-$$"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT

cp -r "$repo/examples/monorepo" "$work/monorepo"
rm -rf "$work/monorepo/.devup" "$work/monorepo/var"
export DEVUP_HOME="$work/home"   # a fresh lease registry: ports 3000, 3001, ... as a newcomer sees
tmux new-session -d -s "$session" -x 120 -y 24 \
  "cd $work/monorepo && PYTHONPATH=$repo PATH=$(dirname "$python"):\$PATH $python -m orchestrator --no-watch; sleep 30"
for _ in $(seq 100); do  # until the summary is on screen
  tmux capture-pane -p -t "$session" | grep -q "ready in" && break
  sleep 0.1
done
sleep 1.5  # let the worker print a few lines under the summary
tmux capture-pane -e -p -t "$session" > "$work/pane.ansi"
tmux send-keys -t "$session" C-c
{
  echo '<!DOCTYPE html><html><head><meta charset="utf-8"><style>'
  echo 'body{background:#1e1e1e;color:#d4d4d4;margin:0;padding:14px 18px}'
  echo 'pre{font:15px/1.35 "DejaVu Sans Mono",monospace;margin:0}</style></head><body>'
  echo '<pre>'; aha --no-header --black < "$work/pane.ansi"; echo '</pre>'
  echo '</body></html>'
} > "$work/pane.html"
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --hide-scrollbars \
  --screenshot="$repo/docs/output.png" --window-size=1200,500 "file://$work/pane.html" 2>/dev/null
echo "wrote $repo/docs/output.png"
