#!/usr/bin/env bash
# bench/run.sh — serving, ingest and memory benchmarks of stream-hub (issue 2). Not a test.
#
#   (a) GET /media/<id>/original: 4 KiB files, 1 MiB random Range requests into a 1 GiB file, a
#       100 MiB file — hub vs nginx (the reference config of /work/shared/PERFORMANCE.md) serving
#       the same directory, alternating hub, nginx, hub, nginx ... with wrk, and with a small C
#       client (bench/lib/getload.c, recv 1 MiB at a time) for large bodies.
#   (b) tus ingest of a 1 GiB file (one PATCH, and 4 x 256 MiB PATCHes) vs the machine's
#       loopback + disk ceiling (bench/lib/sink.c: recv, pwrite, fdatasync), same client, same run.
#   (c) VmRSS/Pss idle and with 1,000 idle keep-alive connections, hub and nginx.
#
# Prints a table and writes bench/results/latest.md. Loopback only; data in /tmp, removed at the
# end; every process it starts is stopped by its PID. Knobs (environment):
#   BENCH_HUB=path       the executable (default: build/stream-hub of this repository)
#   BENCH_ROUNDS=3       serving rounds per contender    BENCH_SECONDS=5   seconds per load run
#   BENCH_INGEST_ROUNDS=5  ingest rounds (1 GiB each; disk speed varies more than CPU)
#   BENCH_QUIET_WAIT=20  before each run, wait up to this long for an idle machine (budget
#                        BENCH_QUIET_BUDGET=90 s per invocation); a run disturbed by other
#                        processes anyway is measured again (BENCH_RETRY_BUDGET=90 s of retries)
#   BENCH_LARGE_MIB=1024 BENCH_WHOLE_MIB=100 BENCH_SMALL_KIB=4 BENCH_RANGE_KIB=1024
#   BENCH_CHUNK_MIB=256  BENCH_IDLE_CONNS=1000  BENCH_TMP=/tmp
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
HUB=${BENCH_HUB:-$REPO/build/stream-hub}
ROUNDS=${BENCH_ROUNDS:-3}
INGEST_ROUNDS=${BENCH_INGEST_ROUNDS:-5}
DUR=${BENCH_SECONDS:-5}
LARGE_MIB=${BENCH_LARGE_MIB:-1024}
WHOLE_MIB=${BENCH_WHOLE_MIB:-100}
SMALL_KIB=${BENCH_SMALL_KIB:-4}
RANGE_KIB=${BENCH_RANGE_KIB:-1024}
CHUNK_MIB=${BENCH_CHUNK_MIB:-256}
IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
TOKEN=bench-token-0123456789
HOST=127.0.0.1

LARGE=$((LARGE_MIB << 20)); WHOLE=$((WHOLE_MIB << 20)); SMALL=$((SMALL_KIB << 10))
RANGE=$((RANGE_KIB << 10)); CHUNK=$((CHUNK_MIB << 20))

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in wrk nginx curl cc python3; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install -y --no-install-recommends nginx wrk curl gcc python3"
done
[[ -x $HUB ]] || die "no hub executable at $HUB — build it first (make build) or set BENCH_HUB"

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/stream-hub-bench.XXXXXX") || die "cannot create a temp dir"
chmod 755 "$WORK"  # nginx workers run as nobody and must reach the data directory
PIDS=()            # every process started here, stopped by PID on exit

stop_pid() {  # PID: TERM, wait up to 5 s, then KILL; nginx workers (its children) too
  local pid=$1 kids i
  kill -0 "$pid" 2>/dev/null || return 0
  kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null)
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  for k in $kids; do kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null; done
  return 0
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ---- helpers ----------------------------------------------------------------------------------
BIN=$WORK/bin; mkdir -p "$BIN"
for c in getload upclient sink; do
  cc -O2 -pthread -o "$BIN/$c" "$HERE/lib/$c.c" || die "cannot compile bench/lib/$c.c"
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
# CPU ticks (utime+stime) of the given PIDs, all threads; nginx: pass master + workers.
ticks() { local t=0 p v; for p in "$@"; do v=$(awk '{sub(/.*\) /,""); print $12+$13}' /proc/"$p"/stat 2>/dev/null); t=$((t + ${v:-0})); done; echo $t; }
machine() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6, $7+$8}' /proc/stat; }  # ticks: total, idle+iowait, irq+softirq
# "pid ticks" of every kernel thread (children of kthreadd: writeback, ksoftirqd, kworkers ...).
kthread_snap() { cat /proc/[0-9]*/stat 2>/dev/null | awk '{p=$1; s=$0; sub(/.*\) /,"",s); split(s,f," "); if (f[2]==2) print p, f[12]+f[13]}'; }
# Ticks kernel threads used between two snapshots (threads born meanwhile count in full).
kthread_delta() { awk 'NR==FNR{a[$1]=$2; next} {d+=$2-($1 in a ? a[$1] : 0)} END{print d+0}' "$1" "$2"; }
# Waits (at most QUIET_WAIT s per call, QUIET_BUDGET s per run) for a second in which the machine
# is >= 90% idle, so that a measurement does not start on top of someone else's compile.
QUIET_WAIT=${BENCH_QUIET_WAIT:-20}; QUIET_BUDGET=${BENCH_QUIET_BUDGET:-90}; QUIET_SPENT=0
wait_quiet() {
  local i a b
  for ((i = 0; i < QUIET_WAIT && QUIET_SPENT < QUIET_BUDGET; i++)); do
    read -r a < <(machine | awk '{print $1 - $2}'); sleep 1; read -r b < <(machine | awk '{print $1 - $2}')
    (( (b - a) * 100 / HZ <= 20 )) && return 0
    QUIET_SPENT=$((QUIET_SPENT + 1))
  done
  (( i > 0 )) && log "the machine is busy (other processes): measuring anyway"
  return 0
}
HZ=$(getconf CLK_TCK)
nginx_pids() { echo "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); }
wait_http() {  # URL: up to 30 s
  local i
  for i in $(seq 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
rss_kib() { local t=0 p v; for p in "$@"; do v=$(awk '/^VmRSS:/{print $2}' /proc/"$p"/status 2>/dev/null); t=$((t + ${v:-0})); done; echo $t; }
pss_kib() { local t=0 p v; for p in "$@"; do v=$(awk '/^Pss:/{print $2}' /proc/"$p"/smaps_rollup 2>/dev/null); t=$((t + ${v:-0})); done; echo $t; }
tcp_mem_kib() { awk '/^TCP:/{for(i=1;i<=NF;i++) if($i=="mem") print $(i+1)*4}' /proc/net/sockstat; }

RAW=$WORK/raw.tsv; : >"$RAW"
META=$WORK/meta; : >"$META"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

# Measures "$@" (a command printing key=value pairs) while watching the server PIDs in SRV_PIDS.
# Sets M_OUT (the command's output), M_RC, and CPU use during the run in % of one core:
# M_CPU (the server), M_CLIENT (the command itself), M_KERNEL (kernel threads: writeback,
# ksoftirqd, kworkers; softirq work done on behalf of a process is in that process's figure),
# M_OTHER (everything else on the machine: more than 25% means something else was running and the
# round is disturbed), and M_IDLE (machine idle + iowait, % of all cores).
measure() {
  local t0 c0 t1 c1 m0tot m0idle m1tot m1idle cu cs kt TIMEFORMAT='%U %S'
  wait_quiet
  kthread_snap >"$WORK/kthreads.0"
  read -r m0tot m0idle _ < <(machine); c0=$(ticks $SRV_PIDS); t0=$(now)
  { time "$@" >"$WORK/measure.out" 2>&1; } 2>"$WORK/measure.time"; M_RC=$?
  t1=$(now); c1=$(ticks $SRV_PIDS); read -r m1tot m1idle _ < <(machine)
  kthread_snap >"$WORK/kthreads.1"; kt=$(kthread_delta "$WORK/kthreads.0" "$WORK/kthreads.1")
  M_OUT=$(cat "$WORK/measure.out")
  read -r cu cs <"$WORK/measure.time"
  local pct='function pct(ticks) { return ticks / hz / (t1 - t0) * 100 }'
  M_CPU=$(awk -v hz="$HZ" -v t0="$t0" -v t1="$t1" "$pct"' BEGIN{printf "%.0f", pct('"$c1 - $c0"')}')
  M_CLIENT=$(awk -v t0="$t0" -v t1="$t1" -v u="$cu" -v s="$cs" 'BEGIN{printf "%.0f", (u + s) / (t1 - t0) * 100}')
  M_KERNEL=$(awk -v hz="$HZ" -v t0="$t0" -v t1="$t1" "$pct"' BEGIN{printf "%.0f", pct('"$kt"')}')
  M_IDLE=$(awk -v a="$m0tot" -v b="$m1tot" -v i="$m0idle" -v j="$m1idle" 'BEGIN{ if (b>a) printf "%.0f", (j-i)/(b-a)*100; else print 0}')
  M_OTHER=$(awk -v hz="$HZ" -v t0="$t0" -v t1="$t1" "$pct"' BEGIN{o = pct('"($m1tot - $m0tot) - ($m1idle - $m0idle)"') - '"$M_CPU - $M_CLIENT - $M_KERNEL"'; printf "%.0f", o < 0 ? 0 : o}')
}
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$M_OUT" | tail -1; }
# measure, and when the run was disturbed (other processes used more than 25% of a core) measure
# again after waiting for a quiet machine — at most twice, within RETRY_BUDGET seconds of
# discarded runs per invocation of this script. ON_RETRY: a command run before a new attempt.
RETRY_BUDGET=${BENCH_RETRY_BUDGET:-90}; RETRY_SPENT=0
measure_retry() {
  local attempt start
  for attempt in 1 2 3; do
    start=$SECONDS
    measure "$@"
    (( M_RC != 0 || M_OTHER <= 25 || attempt == 3 || RETRY_SPENT >= RETRY_BUDGET )) && return 0
    RETRY_SPENT=$((RETRY_SPENT + SECONDS - start))
    log "disturbed (other processes used ${M_OTHER}% of a core meanwhile): measuring again"
    [[ -n ${ON_RETRY:-} ]] && $ON_RETRY
    QUIET_WAIT=60 wait_quiet
  done
}

# ---- the hub ----------------------------------------------------------------------------------
HUB_PORT=$(free_port)
HUB_DIR=$WORK/hub; mkdir -p "$HUB_DIR"/{data,state,logs,tmp,cwd}
DATA=$HUB_DIR/data
log "starting the hub on $HOST:$HUB_PORT ($HUB)"
(cd "$HUB_DIR/cwd" && exec env HTTP_BIND=$HOST HTTP_PORT="$HUB_PORT" DATA_DIR="$DATA" STATE_DIR="$HUB_DIR/state" \
  LOGS_DIR="$HUB_DIR/logs" TEMP_DIR="$HUB_DIR/tmp" ADMIN_TOKEN=$TOKEN LOG_LEVEL=warn "$HUB" serve) \
  >"$HUB_DIR/stdout.log" 2>&1 &
HUB_PID=$!; PIDS+=("$HUB_PID")
if ! wait_http "http://$HOST:$HUB_PORT/healthz"; then
  tail -20 "$HUB_DIR/stdout.log" >&2
  die "the hub did not answer /healthz within 30 s"
fi
HUB_URL=http://$HOST:$HUB_PORT
sleep 1
echo -e "mem\thub\tfresh, idle\t$(rss_kib $HUB_PID)\t$(pss_kib $HUB_PID)\t$(tcp_mem_kib)\t" >>"$RAW"

# ---- source files -----------------------------------------------------------------------------
SRC=$WORK/src; mkdir -p "$SRC"
log "generating ${SMALL_KIB} KiB, ${WHOLE_MIB} MiB and ${LARGE_MIB} MiB random files"
head -c "$SMALL" /dev/urandom >"$SRC/small.mp4"
head -c "$WHOLE" /dev/urandom >"$SRC/whole.mp4"
head -c "$LARGE" /dev/urandom >"$SRC/large.mp4"
sync

# ---- (b) ingest -------------------------------------------------------------------------------
SINK_PORT=$(free_port); SINK_DIR=$WORK/sink; mkdir -p "$SINK_DIR"
"$BIN/sink" "$SINK_PORT" "$SINK_DIR" >"$WORK/sink.log" 2>&1 &
SINK_PID=$!; PIDS+=("$SINK_PID")

# A second nginx, WebDAV PUT to the same filesystem: a reference (no fsync), as PERFORMANCE.md.
DAV_PORT=$(free_port); DAV=$WORK/nginx-dav; mkdir -p "$DAV"/{root,body,logs}; chmod 777 "$DAV"/root "$DAV"/body
cat >"$DAV/nginx.conf" <<EOF
worker_processes 2;
pid $DAV/nginx.pid;
error_log $DAV/logs/error.log warn;
events { worker_connections 8192; }
http {
  sendfile on; tcp_nopush on; access_log off; keepalive_requests 1000000;
  client_body_temp_path $DAV/body;
  server {
    listen $HOST:$DAV_PORT backlog=4096;
    root $DAV/root;
    client_max_body_size 0;
    dav_methods PUT;
  }
}
EOF
nginx -p "$DAV" -e "$DAV/logs/error.log" -c "$DAV/nginx.conf" -g 'daemon off;' >"$DAV/logs/stdout.log" 2>&1 &
DAV_PID=$!; PIDS+=("$DAV_PID")
sleep 0.5

tus_create() {  # SIZE NAME -> prints the upload path /files/<id>
  curl -sS -D - -o /dev/null -X POST "$HUB_URL/files/" -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $1" \
    -H "Authorization: Bearer $TOKEN" \
    -H "Upload-Metadata: filename $(printf %s "$2" | base64 -w0),filetype $(printf video/mp4 | base64 -w0)" |
    tr -d '\r' | awk 'tolower($1)=="location:"{print $2}'
}
TUS_HEADERS=("Tus-Resumable: 1.0.0" "Content-Type: application/offset+octet-stream" "Authorization: Bearer $TOKEN")
LARGE_ID=""

HUB_UP_ID=""
hub_upload() {  # CHUNK: a tus upload of the large file (creation untimed by upclient)
  local path
  path=$(tus_create "$LARGE" "large-$1.mp4")
  [[ $path == /files/* ]] || { echo "tus creation failed"; return 1; }
  HUB_UP_ID=${path#/files/}
  "$BIN/upclient" $HOST "$HUB_PORT" PATCH "$path" "$SRC/large.mp4" "$1" "${TUS_HEADERS[@]}"
}
ingest_cleanup() {  # frees what an ingest run wrote (the first one-PATCH hub upload is kept)
  if [[ -n $HUB_UP_ID && $HUB_UP_ID != "$LARGE_ID" ]]; then
    curl -sS -o /dev/null -X DELETE -H "Authorization: Bearer $TOKEN" "$HUB_URL/api/videos/$HUB_UP_ID"
    rm -f "$DATA/videos/$HUB_UP_ID/original"
  fi
  HUB_UP_ID=""
  rm -f "$SINK_DIR"/* "$DAV/root"/* 2>/dev/null
  sync  # so that no writeback of this run spills into the next one
}
ingest_run() {  # CASE_LABEL TARGET ROUND CHUNK
  local label=$1 target=$2 round=$3 chunk=$4
  case $target in
    hub) SRV_PIDS=$HUB_PID ON_RETRY=ingest_cleanup measure_retry hub_upload "$chunk" ;;
    sink)
      SRV_PIDS=$SINK_PID ON_RETRY=ingest_cleanup measure_retry \
        "$BIN/upclient" $HOST "$SINK_PORT" PUT "/up/r$round-$chunk" "$SRC/large.mp4" "$chunk" ;;
    "loopback only (discard)")
      SRV_PIDS=$SINK_PID ON_RETRY=ingest_cleanup measure_retry \
        "$BIN/upclient" $HOST "$SINK_PORT" PUT "/discard" "$SRC/large.mp4" "$chunk" ;;
    "nginx WebDAV PUT, no fsync")
      SRV_PIDS=$(nginx_pids "$DAV_PID") ON_RETRY=ingest_cleanup measure_retry \
        "$BIN/upclient" $HOST "$DAV_PORT" PUT "/r$round" "$SRC/large.mp4" "$chunk" ;;
  esac
  if [[ $M_RC -ne 0 ]]; then
    log "ingest $label -> $target failed: $M_OUT"
    ingest_cleanup
    return 1
  fi
  local bytes secs
  bytes=$(kv bytes); secs=$(kv seconds)
  echo -e "ingest\t$label\t$target\t$round\t$(awk -v b="$bytes" -v s="$secs" 'BEGIN{printf "%.1f", b/s/1e6}')\t$secs\t$M_CPU\t$M_IDLE\t$M_OTHER\t$M_CLIENT\t$M_KERNEL" >>"$RAW"
  log "ingest $label -> $target round $round: $(awk -v b="$bytes" -v s="$secs" 'BEGIN{printf "%.0f MB/s", b/s/1e6}') (CPU: server $M_CPU%, client $M_CLIENT%, kernel $M_KERNEL%, other $M_OTHER%)"
  # The first one-PATCH hub upload becomes the 1 GiB file to serve.
  [[ $target == hub && -z $LARGE_ID && $chunk -ge $LARGE ]] && LARGE_ID=$HUB_UP_ID
  ingest_cleanup
}

log "(b) ingest: ${LARGE_MIB} MiB, $INGEST_ROUNDS rounds"
ONE="${LARGE_MIB} MiB, one PATCH"
MANY="${LARGE_MIB} MiB, $((LARGE_MIB / CHUNK_MIB)) x ${CHUNK_MIB} MiB PATCHes"
for r in $(seq "$INGEST_ROUNDS"); do
  ingest_run "$ONE" sink "$r" "$LARGE"
  ingest_run "$ONE" hub "$r" "$LARGE"
  ingest_run "$MANY" sink "$r" "$CHUNK"
  ingest_run "$MANY" hub "$r" "$CHUNK"
  ingest_run "$ONE" "loopback only (discard)" "$r" "$LARGE"
  ingest_run "$ONE" "nginx WebDAV PUT, no fsync" "$r" "$LARGE"
done
stop_pid "$SINK_PID"; stop_pid "$DAV_PID"

# ---- fixtures for serving ---------------------------------------------------------------------
upload_multipart() {  # FILE -> prints the id
  curl -sS -f -H "Authorization: Bearer $TOKEN" -F "file=@$1;type=video/mp4" -F "title=$(basename "$1")" \
    "$HUB_URL/api/videos" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
SMALL_ID=$(upload_multipart "$SRC/small.mp4") || die "multipart upload of the small file failed"
WHOLE_ID=$(upload_multipart "$SRC/whole.mp4") || die "multipart upload of the ${WHOLE_MIB} MiB file failed"
if [[ -z $LARGE_ID ]]; then
  log "no tus upload succeeded; uploading the large file with multipart"
  LARGE_ID=$(upload_multipart "$SRC/large.mp4") || die "multipart upload of the large file failed"
fi
for id in "$SMALL_ID" "$WHOLE_ID" "$LARGE_ID"; do
  [[ -f $DATA/videos/$id/original ]] || die "$DATA/videos/$id/original is missing"
done
cmp -s "$SRC/large.mp4" "$DATA/videos/$LARGE_ID/original" || die "the hub's stored 1 GiB original differs from the source"
cmp -s "$SRC/whole.mp4" "$DATA/videos/$WHOLE_ID/original" || die "the hub's stored ${WHOLE_MIB} MiB original differs"
rm -f "$SRC/large.mp4"  # the stored original is the same bytes; free the page cache it uses
chmod -R a+rX "$DATA/videos"
cat "$DATA/videos/$LARGE_ID/original" "$DATA/videos/$WHOLE_ID/original" >/dev/null  # warm the page cache

# ---- nginx, the reference config of PERFORMANCE.md, serving DATA_DIR/videos -------------------
NGX_PORT=$(free_port); NGX=$WORK/nginx; mkdir -p "$NGX"/{logs,tmp}
cat >"$NGX/nginx.conf" <<EOF
worker_processes 2;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 8192; }
http {
  sendfile on;
  tcp_nopush on;
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $NGX/tmp;
  default_type application/octet-stream;
  server {
    listen $HOST:$NGX_PORT backlog=4096;
    root $DATA/videos;
  }
}
EOF
nginx -p "$NGX" -e "$NGX/logs/error.log" -c "$NGX/nginx.conf" -g 'daemon off;' >"$NGX/logs/stdout.log" 2>&1 &
NGX_PID=$!; PIDS+=("$NGX_PID")
NGX_URL=http://$HOST:$NGX_PORT
wait_http "$NGX_URL/$SMALL_ID/original" || { cat "$NGX/logs/error.log" >&2; die "nginx does not serve /$SMALL_ID/original"; }
sleep 0.5
echo -e "mem\tnginx\tfresh, idle\t$(rss_kib $(nginx_pids $NGX_PID))\t$(pss_kib $(nginx_pids $NGX_PID))\t$(tcp_mem_kib)\tmaster + 2 workers" >>"$RAW"

# Same bytes from both?
for u in "$HUB_URL/media/$SMALL_ID/original" "$NGX_URL/$SMALL_ID/original"; do
  curl -fsS "$u" | cmp -s - "$SRC/small.mp4" || die "$u does not return the small file's bytes"
done
for u in "$HUB_URL/media/$LARGE_ID/original" "$NGX_URL/$LARGE_ID/original"; do
  code=$(curl -sS -o "$WORK/range.bin" -w '%{http_code}' -H "Range: bytes=1000-$((1000 + RANGE - 1))" "$u")
  [[ $code == 206 && $(stat -c %s "$WORK/range.bin") == "$RANGE" ]] || die "$u: Range answered $code"
  cmp -s "$WORK/range.bin" <(tail -c +1001 "$DATA/videos/$LARGE_ID/original" | head -c "$RANGE") || die "$u: wrong range bytes"
done

# ---- (a) serving ------------------------------------------------------------------------------
serve_run() {  # SERVER CASE TOOL ROUND(0 = warm-up) THREADS CONNS PATH_ID SIZE [RANGE_LEN]
  local server=$1 label=$2 tool=$3 round=$4 threads=$5 conns=$6 id=$7 size=$8 rlen=${9:-} port path secs
  if [[ $server == hub ]]; then port=$HUB_PORT; path=/media/$id/original; SRV_PIDS=$HUB_PID
  else port=$NGX_PORT; path=/$id/original; SRV_PIDS=$(nginx_pids "$NGX_PID"); fi
  local how=measure_retry; secs=$DUR
  [[ $round == 0 ]] && { secs=1; how=measure; }
  if [[ $tool == wrk ]]; then
    BENCH_PATH=$path BENCH_RANGE_LEN=$rlen BENCH_FILE_SIZE=$size $how timeout $((secs + 60)) \
      wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s -s "$HERE/lib/wrk.lua" "http://$HOST:$port$path"
    local e1 e2; e1=$(kv errors); e2=$(kv status_errors); M_ERR=$(( ${e1:-0} + ${e2:-0} ))
  else
    $how timeout $((secs + 60)) "$BIN/getload" $HOST "$port" "$path" "$conns" "$secs" "$size" $rlen
    M_ERR=$(kv errors); M_ERR=${M_ERR:-0}
  fi
  [[ $round == 0 ]] && return 0
  local req bytes s
  req=$(kv requests); bytes=$(kv bytes); s=$(kv seconds)
  if [[ -z $req || -z $s ]]; then
    log "serve $label $tool $server: no result: $M_OUT"
    return 0
  fi
  echo -e "serve\t$label\t$tool\t$server\t$round\t$(awk -v n="$req" -v s="$s" 'BEGIN{printf "%.0f", n/s}')\t$(awk -v b="$bytes" -v s="$s" 'BEGIN{printf "%.1f", b/s/1e6}')\t$M_ERR\t$M_CPU\t$M_IDLE\t$M_OTHER\t$M_CLIENT\t$M_KERNEL" >>"$RAW"
  log "serve $label ($tool) $server round $round: $(awk -v n="$req" -v b="$bytes" -v s="$s" 'BEGIN{printf "%.0f req/s, %.0f MB/s", n/s, b/s/1e6}'), errors $M_ERR, CPU: server $M_CPU%, client $M_CLIENT%, kernel $M_KERNEL%, other $M_OTHER%"
}
serve_case() {  # CASE TOOL THREADS CONNS ID SIZE [RANGE_LEN]
  local r
  serve_run hub "$1" "$2" 0 "${@:3}"; serve_run nginx "$1" "$2" 0 "${@:3}"
  for r in $(seq "$ROUNDS"); do
    serve_run hub "$1" "$2" "$r" "${@:3}"
    serve_run nginx "$1" "$2" "$r" "${@:3}"
  done
}
log "(a) serving: $ROUNDS rounds x ${DUR}s per contender and case"
serve_case "${SMALL_KIB} KiB file" "wrk -t2 -c50" 2 50 "$SMALL_ID" "$SMALL"
serve_case "${RANGE_KIB} KiB random ranges of ${LARGE_MIB} MiB" "wrk -t2 -c10" 2 10 "$LARGE_ID" "$LARGE" "$RANGE"
serve_case "${RANGE_KIB} KiB random ranges of ${LARGE_MIB} MiB" "getload -c10" 0 10 "$LARGE_ID" "$LARGE" "$RANGE"
serve_case "${WHOLE_MIB} MiB whole file" "wrk -t2 -c4" 2 4 "$WHOLE_ID" "$WHOLE"
serve_case "${WHOLE_MIB} MiB whole file" "getload -c4" 0 4 "$WHOLE_ID" "$WHOLE"

# ---- (c) memory -------------------------------------------------------------------------------
log "(c) memory: idle, then $IDLE_CONNS idle keep-alive connections"
sleep 2
echo -e "mem\thub\tidle after the load\t$(rss_kib $HUB_PID)\t$(pss_kib $HUB_PID)\t$(tcp_mem_kib)\t" >>"$RAW"
echo -e "mem\tnginx\tidle after the load\t$(rss_kib $(nginx_pids $NGX_PID))\t$(pss_kib $(nginx_pids $NGX_PID))\t$(tcp_mem_kib)\tmaster + 2 workers" >>"$RAW"
hold_conns() {  # SERVER PORT PATH
  local stop=$WORK/stop-$1 out=$WORK/conns-$1.out pid i pids
  rm -f "$stop"
  python3 "$HERE/lib/idle_conns.py" $HOST "$2" "$3" "$IDLE_CONNS" "$stop" >"$out" 2>&1 &
  pid=$!; PIDS+=("$pid")
  for i in $(seq 600); do grep -q READY "$out" && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  sleep 1
  if [[ $1 == hub ]]; then pids=$HUB_PID; else pids=$(nginx_pids "$NGX_PID"); fi
  local rss pss tcp
  rss=$(rss_kib $pids); pss=$(pss_kib $pids); tcp=$(tcp_mem_kib)
  touch "$stop"; wait "$pid" 2>/dev/null
  local note
  note="$(grep -o 'ok=[0-9]*' "$out") answered, $(grep -o 'still_open=[0-9]*' "$out") at the end"
  [[ $1 == nginx ]] && note="master + 2 workers; GET of the ${SMALL_KIB} KiB file; $note"
  [[ $1 == hub ]] && note="GET /healthz; $note"
  echo -e "mem\t$1\t$IDLE_CONNS idle keep-alive connections\t$rss\t$pss\t$tcp\t$note" >>"$RAW"
  log "memory $1 with $IDLE_CONNS connections: VmRSS $((rss / 1024)) MiB ($note)"
}
hold_conns hub "$HUB_PORT" /healthz
hold_conns nginx "$NGX_PORT" "/$SMALL_ID/original"
echo -e "mem\thub\tpeak (VmHWM) over the whole run\t$(awk '/^VmHWM:/{print $2}' /proc/$HUB_PID/status)\t\t\t" >>"$RAW"

# ---- report -----------------------------------------------------------------------------------
LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg)
{
  echo "date=$(date -u +'%Y-%m-%d %H:%M UTC')"
  echo "command=bench/run.sh (make bench)"
  echo "machine=$(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(nginx -v 2>&1 | sed 's/.*: //'), wrk $(wrk -v 2>&1 | awk 'NR==1{print $2}'), hub $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git -C "$REPO" status --porcelain 2>/dev/null) ]] && echo '+local changes'), load average $LOAD_BEFORE before / $LOAD_AFTER after"
  echo "params=Serving: $ROUNDS rounds per contender, alternating hub, nginx, ${DUR} s per load run after a 1 s warm-up each; ingest: $INGEST_ROUNDS rounds, alternating ceiling, hub. Files: ${SMALL_KIB} KiB, ${WHOLE_MIB} MiB, ${LARGE_MIB} MiB random bytes on $(df --output=fstype "$WORK" | tail -1) ($(df --output=source "$WORK" | tail -1)), served from the page cache. Client and servers share the same $(nproc) cores."
  awk -v l="$LOAD_BEFORE" 'BEGIN{ if (l > 1.5) print "warning=the load average was " l " when the run started: other work was running."}'
} >"$META"
mkdir -p "$HERE/results"
echo
python3 "$HERE/lib/report.py" "$RAW" "$META" "$HERE/results/latest.md"
echo
log "written: $HERE/results/latest.md"
exit 0
