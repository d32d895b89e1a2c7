#!/usr/bin/env bash
# bench/cluster/real.sh — the cluster with real processes on loopback, beside HashiCorp Serf
# (Debian's `serf`: memberlist inside, LAN profile) measured the same way in the same run
# (issue 5 item 8). Not a test.
#
# For each cluster size N (default 3 and 20), each round, each contender (serf, then stream-hub):
#   1. start node 0 (the seed) and wait until it answers;
#   2. launch nodes 1..N-1 at once, each told to join the seed (serf: -join=seed; hub:
#      P2P_DISCOVERY=static P2P_SEEDS=seed), and measure launch -> every node lists all N alive
#      (this includes process start-up; "launch -> every process answers" shows how much);
#   3. after BENCH_SETTLE_S, CPU per node over BENCH_STEADY_S s of steady state
#      (/proc/<pid>/stat utime+stime); for the hub also one more hub with P2P_ENABLED=false in
#      the same window, so the cluster's share can be told from the idle hub's own;
#   4. SIGKILL node N/2 and measure kill -> every survivor lists it failed (serf "failed", hub
#      "dead"); for the hub also -> suspect (serf does not show suspicion).
# Polling is done by bench/cluster/probe.py over persistent connections (serf's msgpack RPC,
# GET /api/peers with keep-alive), every BENCH_JOIN_POLL_MS (join) / BENCH_POLL_MS (failure)
# milliseconds; the probe is started and connected before the launch or the kill, so its own
# start-up never delays a measurement. Resolution: one poll period.
#
# Prints per-round lines, then a table of medians with hub/serf ratios. Loopback only, every
# agent on 127.0.0.1 with an encryption key (`serf keygen`, `stream-hub keygen`); data in a temp
# dir removed at the end; every process started here is stopped by its PID (trap).
#
# Knobs (environment):
#   HUB=path                stream-hub executable (default: build/stream-hub of this
#                           repository, else /work/build-rel/stream-hub). Skipped, with a
#                           message, when it has no cluster support (`keygen`, /api/peers).
#   BENCH_NODES="3 20"      cluster sizes (each <= 100)   BENCH_ROUNDS=3   rounds per size
#   BENCH_WHO="serf hub"    contenders                    BENCH_STEADY_S=30 CPU window
#   BENCH_SETTLE_S=3        after convergence, before the CPU window
#   BENCH_POLL_MS=50        failure-detection poll period  BENCH_JOIN_POLL_MS=20
#   BENCH_TIMEOUT_S=60      per wait                       BENCH_PORT_BASE=27000
#   BENCH_TMP=/tmp          BENCH_JSON=file  also copy the raw per-round JSON lines there
# Ports (base B): serf gossip B+i, serf RPC B+100+i, hub P2P B+200+i, hub HTTP B+300+i, the
# cluster-less hub's HTTP B+400.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
if [[ -z ${HUB:-} ]]; then
  HUB=$REPO/build/stream-hub
  [[ -x $HUB ]] || HUB=/work/build-rel/stream-hub
fi
NODES=${BENCH_NODES:-"3 20"}
ROUNDS=${BENCH_ROUNDS:-3}
WHO=${BENCH_WHO:-"serf hub"}
STEADY=${BENCH_STEADY_S:-30}
SETTLE=${BENCH_SETTLE_S:-3}
POLL=$(awk -v ms="${BENCH_POLL_MS:-50}" 'BEGIN{print ms / 1000}')
JOIN_POLL=$(awk -v ms="${BENCH_JOIN_POLL_MS:-20}" 'BEGIN{print ms / 1000}')
TIMEOUT=${BENCH_TIMEOUT_S:-60}
BASE=${BENCH_PORT_BASE:-27000}
TOKEN=bench-token-0123456789
PROBE=(python3 "$HERE/probe.py")

log() { printf '[cluster-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v python3 >/dev/null || die "python3 is missing"
for n in $NODES; do ((n >= 2 && n <= 100)) || die "BENCH_NODES: each size must be 2..100 (got $n)"; done

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/stream-hub-cluster-bench.XXXXXX") || die "cannot create a temp dir"
RESULTS=$WORK/results.jsonl; : >"$RESULTS"
# Every process started here (all children of this shell) and not yet reaped. A PID leaves the
# list only once `wait` has reaped it, so a signal never reaches a recycled PID.
PIDS=()
forget() {  # PID...
  local p q keep=()
  for p in "${PIDS[@]}"; do
    for q in "$@"; do [[ $p == "$q" ]] && continue 2; done
    keep+=("$p")
  done
  PIDS=("${keep[@]}")
}
alive() { [[ -e /proc/$1 && $(awk '{sub(/.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
stop_pids() {  # PID...: TERM, up to 5 s, then KILL; reaped
  local pid i
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "$@"; do
    for i in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  forget "$@"
  return 0
}
cleanup() {
  # No `wait` here: bash 5.2 aborts ("reader_loop: bad jump") when a trap that interrupted a
  # `wait` runs `wait` itself. Unreaped children are reaped by init once this shell exits.
  local pid i
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
  done
  [[ -n ${BENCH_JSON:-} && -s $RESULTS ]] && cp "$RESULTS" "$BENCH_JSON"
  rm -rf "$WORK"
}
trap cleanup EXIT
# On a signal: clean up, then die of the same signal. Not `exit` from the trap: bash 5.2 can
# abort with "reader_loop: bad jump" when a trap's `exit` interrupts some builtins, leaving the
# agents running.
on_signal() { trap - EXIT INT TERM; cleanup; kill -s "$1" $$; }
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

# ---- contenders ---------------------------------------------------------------------------
# start_<who> N I JOIN: launches node I of an N-node cluster in the background (a child of this
# shell: never call it in $(...)) and adds its PID to PIDS and STARTED.
# addr_<who> I: the address the probe polls.   name_<who> I: its member name.

SERF_KEY=""
have_serf() {
  command -v serf >/dev/null || {
    log "serf is missing: apt-get install -y --no-install-recommends serf (scripts/install-deps.sh --test)"
    return 1
  }
  SERF_KEY=$(serf keygen) || return 1
}
start_serf() {  # N I JOIN(0|1)
  local i=$2 join=()
  (($3)) && join=("-join=127.0.0.1:$BASE")
  serf agent -node="s$i" -bind=127.0.0.1:$((BASE + i)) -rpc-addr=127.0.0.1:$((BASE + 100 + i)) \
    -encrypt="$SERF_KEY" -log-level=warn "${join[@]}" >>"$WORK/logs/serf-$1-$i.log" 2>&1 &
  PIDS+=($!); STARTED+=($!)
}
addr_serf() { echo "127.0.0.1:$((BASE + 100 + $1))"; }
name_serf() { echo "s$1"; }
ports_serf() { local i; for ((i = 0; i < $1; i++)); do echo $((BASE + i)) $((BASE + 100 + i)); done; }

HUB_KEY=""
have_hub() {
  [[ -x $HUB ]] || { log "no hub executable at $HUB (set HUB=...): skipping stream-hub"; return 1; }
  HUB_KEY=$("$HUB" keygen 2>/dev/null | tr -d '[:space:]')
  if [[ ! $HUB_KEY =~ ^[A-Za-z0-9+/]{43}=$ ]]; then
    log "$HUB has no cluster support yet (\`stream-hub keygen\` did not print a key): skipping stream-hub"
    return 1
  fi
}
start_hub_process() {  # DIR HTTP_PORT LOG VAR=VALUE...: a hub with its own dirs (see start_<who>)
  local d=$1 http=$2 out=$3
  shift 3
  mkdir -p "$d/data" "$d/state" "$d/logs" "$d/tmp"
  # A clean environment and its own working directory: no .env or P2P_* from the caller.
  (cd "$d" && exec env -i PATH="$PATH" HOME="$d" HTTP_BIND=127.0.0.1 HTTP_PORT="$http" \
    DATA_DIR="$d/data" STATE_DIR="$d/state" LOGS_DIR="$d/logs" TEMP_DIR="$d/tmp" \
    ADMIN_TOKEN="$TOKEN" MEDIA_WORKERS=1 "$@" "$HUB" serve) >>"$out" 2>&1 &
  PIDS+=($!); STARTED+=($!)
}
start_hub() {  # N I JOIN(ignored: every hub has the seed in P2P_SEEDS, as a real deployment)
  local i=$2
  start_hub_process "$WORK/hub-$1-$i" $((BASE + 300 + i)) "$WORK/logs/hub-$1-$i.log" \
    P2P_ENABLED=true P2P_PORT=$((BASE + 200 + i)) P2P_BIND=127.0.0.1 P2P_DISCOVERY=static \
    P2P_SEEDS=127.0.0.1:$((BASE + 200)) P2P_CLUSTER_KEY="$HUB_KEY" P2P_NODE_NAME="n$i"
}
addr_hub() { echo "127.0.0.1:$((BASE + 300 + $1))"; }
name_hub() { echo "n$1"; }
ports_hub() { local i; for ((i = 0; i < $1; i++)); do echo $((BASE + 200 + i)) $((BASE + 300 + i)); done; echo $((BASE + 400)); }
probe_kind() { [[ $1 == serf ]] && echo serf || echo hub; }

# ---- one measurement ----------------------------------------------------------------------

join_by() { local IFS=$1; shift; echo "$*"; }
# Runs a command in the background and waits for it, so that a signal to this script runs the
# trap at once (bash defers traps while a foreground child runs); its stdout goes to FILE.
# Returns the command's status.
bg() {  # FILE CMD...
  local out=$1 pid rc
  shift
  "$@" >"$out" &
  pid=$!
  PIDS+=("$pid")
  wait "$pid"; rc=$?
  forget "$pid"
  return "$rc"
}
wait_file() {  # FILE: up to 30 s
  local i
  for ((i = 0; i < 3000; i++)); do [[ -e $1 ]] && return 0; sleep 0.01; done
  return 1
}
record() {  # WHO N ROUND JSON
  python3 -c 'import json,sys; print(json.dumps({"who":sys.argv[1],"n":int(sys.argv[2]),"round":int(sys.argv[3]),"result":json.loads(sys.argv[4])}))' \
    "$1" "$2" "$3" "$4" >>"$RESULTS"
}
field() {  # JSON PATH.KEY: a number, or "-"
  python3 -c 'import json,sys
d=json.loads(sys.argv[1])
for k in sys.argv[2].split("."): d=d.get(k, {}) if isinstance(d, dict) else {}
print("%.2f" % d if isinstance(d,(int,float)) else "-")' "$1" "$2"
}

# Runs steps 1-4 for WHO with N nodes; returns non-zero when the contender cannot run
# (3: a hub without /api/peers).
run_one() {
  local who=$1 n=$2 round=$3 kind i pid out rc go
  kind=$(probe_kind "$who")
  local -a targets=() names=()
  STARTED=()   # this run's nodes, by index
  # shellcheck disable=SC2046
  "${PROBE[@]}" free $("ports_$who" "$n") >/dev/null || {
    log "$who N=$n: a port in $BASE..$((BASE + 400)) is taken; set BENCH_PORT_BASE"
    return 1
  }
  for ((i = 0; i < n; i++)); do targets+=("$("addr_$who" "$i")"); names+=("$("name_$who" "$i")"); done
  local all_targets all_names
  all_targets=$(join_by , "${targets[@]}")
  all_names=$(join_by , "${names[@]}")

  # 1. the seed
  "start_$who" "$n" 0 0
  bg "$WORK/ready.out" "${PROBE[@]}" ready --kind "$kind" --token "$TOKEN" --targets "${targets[0]}" \
    --timeout "$TIMEOUT"
  rc=$?
  out=$(cat "$WORK/ready.out")
  if ((rc != 0)); then
    log "$who N=$n: the seed did not answer: $out"
    stop_pids "${STARTED[@]}"
    return "$rc"
  fi

  # 2. join
  go=$WORK/go.join.$who.$n.$round
  "${PROBE[@]}" converge --kind "$kind" --token "$TOKEN" --targets "$all_targets" --names "$all_names" \
    --period "$JOIN_POLL" --timeout "$TIMEOUT" --go "$go" >"$WORK/converge.out" &
  local probe_pid=$!
  PIDS+=("$probe_pid")
  wait_file "$go.armed" || { log "the probe did not start"; stop_pids "${STARTED[@]}" "$probe_pid"; return 1; }
  date +%s.%N >"$go"
  for ((i = 1; i < n; i++)); do "start_$who" "$n" "$i" 1; done
  wait "$probe_pid"; rc=$?
  forget "$probe_pid"
  out=$(cat "$WORK/converge.out")
  if ((rc != 0)); then
    log "$who N=$n round $round: no convergence (rc $rc): $out"
    stop_pids "${STARTED[@]}"
    return "$rc"
  fi
  record "$who" "$n" "$round" "$out"
  log "$who N=$n round $round: launch -> all alive $(field "$out" converge.all) s (median node $(field "$out" converge.median) s; all answering after $(field "$out" ready.all) s)"

  # 3. steady-state CPU
  bg /dev/null sleep "$SETTLE"
  local baseline_pid="" nodes
  nodes=$(join_by , "${STARTED[@]}")
  if [[ $who == hub ]]; then
    start_hub_process "$WORK/hub-$n-solo" $((BASE + 400)) "$WORK/logs/hub-$n-solo.log" P2P_ENABLED=false
    baseline_pid=${STARTED[-1]}
    # Up when /api/peers answers at all (404, exit 3, is a fine answer for a cluster-less hub).
    bg /dev/null "${PROBE[@]}" ready --kind hub --token "$TOKEN" \
      --targets "127.0.0.1:$((BASE + 400))" --timeout "$TIMEOUT"
    bg /dev/null sleep 1
  fi
  bg "$WORK/cpu.out" "${PROBE[@]}" cpu --pids "$nodes" \
    --seconds "$STEADY" ${baseline_pid:+--baseline "$baseline_pid"}
  out=$(cat "$WORK/cpu.out")
  record "$who" "$n" "$round" "$out"
  log "$who N=$n round $round: CPU per node mean $(field "$out" cpu.mean)% max $(field "$out" cpu.max)% of a core${baseline_pid:+ (hub without cluster: $(field "$out" cpu.baseline)%)}; others used $(field "$out" cpu.others)%"

  # 4. failure detection
  local victim=$((n / 2))
  local -a survivors=()
  for ((i = 0; i < n; i++)); do ((i != victim)) && survivors+=("${targets[i]}"); done
  go=$WORK/go.kill.$who.$n.$round
  "${PROBE[@]}" detect --kind "$kind" --token "$TOKEN" --targets "$(join_by , "${survivors[@]}")" \
    --victim "${names[victim]}" --period "$POLL" --timeout "$TIMEOUT" --go "$go" >"$WORK/detect.out" &
  probe_pid=$!
  PIDS+=("$probe_pid")
  wait_file "$go.armed" || { log "the probe did not start"; stop_pids "${STARTED[@]}" "$probe_pid"; return 1; }
  date +%s.%N >"$go"
  pid=${STARTED[victim]}
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null
  forget "$pid"
  unset "STARTED[victim]"
  wait "$probe_pid"; rc=$?
  forget "$probe_pid"
  out=$(cat "$WORK/detect.out")
  if ((rc == 0)); then
    record "$who" "$n" "$round" "$out"
    log "$who N=$n round $round: kill -> failed everywhere $(field "$out" failed.all) s (first survivor $(field "$out" failed.first) s; suspect everywhere $(field "$out" suspect.all) s)"
  else
    log "$who N=$n round $round: the failure was not seen everywhere (rc $rc): $out"
  fi

  stop_pids "${STARTED[@]}"
  return 0
}

# ---- main ---------------------------------------------------------------------------------

mkdir -p "$WORK/logs"
declare -A ENABLED=()
for who in $WHO; do
  case $who in
    serf) have_serf && ENABLED[serf]=1 ;;
    hub) have_hub && ENABLED[hub]=1 ;;
    *) die "BENCH_WHO: unknown contender $who (serf, hub)" ;;
  esac
done
((${#ENABLED[@]})) || die "nothing to measure"
log "sizes: $NODES; rounds: $ROUNDS; CPU window ${STEADY} s; poll ${POLL} s (join ${JOIN_POLL} s); load average $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -n ${ENABLED[hub]:-} ]] && log "hub: $HUB"
[[ -n ${ENABLED[serf]:-} ]] && log "serf: $(serf version | head -1)"

for ((round = 1; round <= ROUNDS; round++)); do
  for n in $NODES; do
    for who in $WHO; do
      [[ -n ${ENABLED[$who]:-} ]] || continue
      run_one "$who" "$n" "$round"
      rc=$?
      if ((rc == 3)); then
        log "$HUB answers GET /api/peers with 404: no cluster API yet; skipping stream-hub"
        unset "ENABLED[$who]"
      elif ((rc != 0)); then
        log "$who N=$n round $round failed; the seed's log ends:"
        tail -5 "$WORK/logs/$who-$n-0.log" >&2 2>/dev/null
      fi
    done
  done
done

log "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
"${PROBE[@]}" report "$RESULTS"
