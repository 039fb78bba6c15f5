#!/usr/bin/env bash
# Reproduce docs/tensorboard.png: train the default config for 15 epochs in a temporary
# directory, serve it with TensorBoard on 127.0.0.1, and take a headless-Chromium screenshot
# of the scalars dashboard filtered to the info/ charts of the KDE estimator.
#
#   bash docs/make_tensorboard_screenshot.sh [OUT.png]
#
# Needs the project installed (pip install -e .) and Debian's chromium (apt-get install
# chromium). Environment: EPOCHS (15), VIEW (the URL fragment, '#scalars&tagFilter=info%2Fkde';
# '#custom_scalars' gives the custom-scalars layout), BUDGET (virtual-time budget, ms, 15000).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out=$(realpath -m "${1:-docs/tensorboard.png}")
epochs=${EPOCHS:-15}
view=${VIEW:-'#scalars&tagFilter=info%2Fkde'}
budget=${BUDGET:-15000}
chromium=${CHROMIUM:-/usr/bin/chromium}
python=${PYTHON:-python3}

tmp=$(mktemp -d)
tb_pid=""
cleanup() {
  if [[ -n "$tb_pid" ]]; then
    kill "$tb_pid" 2>/dev/null || true
    wait "$tb_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "training $epochs epochs of configs/default.yaml (log: $tmp/fit.log) ..."
(cd "$tmp" && lit-ib fit --config "$repo/configs/default.yaml" \
  --trainer.max_epochs "$epochs" \
  --trainer.logger.init_args.save_dir "$tmp/runs" >"$tmp/fit.log" 2>&1) || {
  tail -n 30 "$tmp/fit.log"
  exit 1
}

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# From inside $tmp, so that the page shows the log dir as "runs", not a temporary path.
(cd "$tmp" && exec "$python" -m tensorboard.main --logdir runs --host 127.0.0.1 --port "$port" \
  >"$tmp/tensorboard.log" 2>&1) &
tb_pid=$!

# Wait (at most 60 s) until the server has loaded the run's info/ scalars.
"$python" - "$port" <<'EOF' || { cat "$tmp/tensorboard.log"; exit 1; }
import json, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/data/plugin/scalars/tags"
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            tags = json.load(r)
        if any(t.startswith("info/") for run in tags.values() for t in run):
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit("TensorBoard did not serve info/ scalars within 60 s")
EOF

mkdir -p "$(dirname "$out")"
HOME="$tmp" timeout 120 "$chromium" --headless --no-sandbox --disable-gpu \
  --disable-background-networking --disable-component-update --disable-sync --no-first-run \
  --disable-quic --user-data-dir="$tmp/profile" --hide-scrollbars --window-size=1400,900 \
  --virtual-time-budget="$budget" --screenshot="$out" \
  "http://127.0.0.1:$port/$view" 2>"$tmp/chromium.log" || {
  tail -n 20 "$tmp/chromium.log"
  exit 1
}
test -s "$out"
echo "wrote $out"
