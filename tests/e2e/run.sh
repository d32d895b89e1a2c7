#!/usr/bin/env bash
# The browser test against a real stream-hub: starts the given executable on a
# free loopback port with its own directories, makes the test clips with
# ffmpeg, runs ui.test.mjs, notes.test.mjs, watch.test.mjs and cluster.test.mjs
# (node --test, one after the other, against this one hub; the cluster test
# starts two clustered hubs of its own), and stops the hubs by their PIDs.
#   tests/e2e/run.sh [path/to/stream-hub]      (default: build/stream-hub)
# KEEP=1 keeps the hub's directory (logs, data) for a look afterwards.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(realpath "${1:-$HERE/../../build/stream-hub}")
[[ -x $BIN ]] || { echo "run.sh: no executable at $BIN" >&2; exit 1; }

HOME_DIR=$(mktemp -d /tmp/hub-e2e-XXXXXX)
TOKEN="e2e-token-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HUB_PID=""

stop() {
  local rc=$?
  if [[ -n $HUB_PID ]] && kill -0 "$HUB_PID" 2>/dev/null; then
    kill -TERM "$HUB_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$HUB_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 ]]; then echo "--- hub log (last 60 lines) ---"; tail -n 60 "$HOME_DIR/hub.log" 2>/dev/null || true; fi
  if [[ -z ${KEEP:-} ]]; then rm -rf "$HOME_DIR"; else echo "kept $HOME_DIR"; fi
  exit $rc
}
trap stop EXIT

(cd "$HOME_DIR" && exec env HTTP_BIND=127.0.0.1 HTTP_PORT="$PORT" ADMIN_TOKEN="$TOKEN" \
  DATA_DIR="$HOME_DIR/data" STATE_DIR="$HOME_DIR/state" LOGS_DIR="$HOME_DIR/logs" TEMP_DIR="$HOME_DIR/tmp" \
  "$BIN" serve >"$HOME_DIR/hub.log" 2>&1) &
HUB_PID=$!

for _ in $(seq 200); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
  kill -0 "$HUB_PID" 2>/dev/null || { echo "run.sh: the hub exited at start" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz"

clip() { # out seconds extra-x264-args...
  local out=$1 secs=$2; shift 2
  ffmpeg -nostdin -y -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440 \
    -t "$secs" -c:v libx264 "$@" -pix_fmt yuv420p -c:a aac -movflags +faststart "$out"
}
clip "$HOME_DIR/clip.mp4" 10
clip "$HOME_DIR/clip-large.mp4" 36 -preset ultrafast -qp 0   # ~75 MB: several 32 MiB tus chunks
# watch.test.mjs: 8 s, 640x360, H.264/AAC (the pipeline makes 360p and 240p of it).
ffmpeg -nostdin -y -loglevel error -f lavfi -i testsrc2=size=640x360:rate=25 -f lavfi -i sine=frequency=440 \
  -t 8 -c:v libx264 -pix_fmt yuv420p -c:a aac -movflags +faststart "$HOME_DIR/clip-watch.mp4"

cd "$HERE"
[[ -d node_modules/playwright-core ]] || npm ci --no-audit --no-fund --loglevel=error
HUB_URL="http://127.0.0.1:$PORT" HUB_TOKEN="$TOKEN" HUB_CLIP="$HOME_DIR/clip.mp4" HUB_CLIP_LARGE="$HOME_DIR/clip-large.mp4" \
  HUB_WATCH_CLIP="$HOME_DIR/clip-watch.mp4" HUB_BINARY="$BIN" \
  node --test --test-concurrency=1 ui.test.mjs notes.test.mjs watch.test.mjs cluster.test.mjs
