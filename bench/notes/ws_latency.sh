#!/usr/bin/env bash
# bench/notes/ws_latency.sh — edit-to-visible latency between two WebSocket
# clients of one note on loopback (p50/p90/p99), through a real stream-hub: client
# A pushes a one-character edit, client B receives the update. Each edit is
# fsynced to the note's log before it is broadcast, so the figure includes one
# fdatasync; it is measured on DATA_DIR (default: a directory under /tmp, i.e. the
# machine's disk) and, for comparison, on tmpfs (/dev/shm: no real sync). Not a test.
#   bench/notes/ws_latency.sh [path/to/stream-hub]   (default build/stream-hub)
# Knobs: BENCH_N=1000 edits per run, BENCH_INTERVAL_MS=15 between edits (under the
# per-connection rate limit of 100 messages/s, which would otherwise pace the run).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "${1:-$REPO/build/stream-hub}")
N=${BENCH_N:-1000}
INTERVAL=${BENCH_INTERVAL_MS:-15}
WORK=$(mktemp -d /tmp/hub-wslat-XXXXXX)
SHM=$(mktemp -d /dev/shm/hub-wslat-XXXXXX)
HUB_PID=""
cleanup() {
  if [[ -n $HUB_PID ]] && kill -0 "$HUB_PID" 2>/dev/null; then kill -TERM "$HUB_PID"; wait "$HUB_PID" || true; fi
  rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT
cc -O2 -o "$WORK/wslat" "$HERE/wslat.c"
TOKEN=bench-token-0123456789

run() {  # label data_dir
  local label=$1 data=$2 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$WORK" && exec env HTTP_BIND=127.0.0.1 HTTP_PORT="$port" ADMIN_TOKEN=$TOKEN DATA_DIR="$data" \
    STATE_DIR="$WORK/state-$label" LOGS_DIR="$WORK/logs-$label" TEMP_DIR="$WORK/tmp-$label" LOG_LEVEL=warn \
    "$BIN" serve >"$WORK/hub-$label.log" 2>&1) &
  HUB_PID=$!
  for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break; sleep 0.1; done
  local id
  id=$(curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"title":"latency","text":"hello"}' "http://127.0.0.1:$port/api/notes" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  local out
  out=$("$WORK/wslat" 127.0.0.1 "$port" "$TOKEN" "$id" "$N" "$INTERVAL")
  kill -TERM "$HUB_PID"; wait "$HUB_PID" || true; HUB_PID=""
  python3 - "$label" "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
ms = lambda k: f"{r[k] / 1000:.2f} ms"
print(f"{sys.argv[1]:<24} n={r['n']}  p50 {ms('p50_us')}  p90 {ms('p90_us')}  p99 {ms('p99_us')}  max {ms('max_us')}")
PY
}
echo "edit-to-visible latency, two WebSocket clients, loopback, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
run "disk ($(df --output=fstype "$WORK" | tail -1 | tr -d ' '))" "$WORK/data"
run "tmpfs (no real fsync)" "$SHM/data"
