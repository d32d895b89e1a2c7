#!/usr/bin/env bash
# bench/notes/run.sh — the notes CRDT (notes_bench) against Yjs and Automerge
# (node, this directory's package-lock.json) on the editing traces, one edit per
# transaction, in the same run, alternating hub / Yjs / hub / Yjs ...; prints
# medians and ratios. Not a test.
#
# Knobs (environment):
#   BENCH_BUILD=/work/build-notes-rel   build dir (configured RelWithDebInfo if missing)
#   BENCH_ROUNDS=3                      rounds of hub and Yjs per trace (medians)
#   BENCH_AUTOMERGE=1                   also Automerge, one round (slow: tens of seconds)
#   BENCH_BIG_MB=100                    size of the generated note whose load is timed (0: skip)
#   BENCH_TRACES="automerge-paper seph-blog1"
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${BENCH_BUILD:-/work/build-notes-rel}
ROUNDS=${BENCH_ROUNDS:-3}
AUTOMERGE=${BENCH_AUTOMERGE:-1}
BIG_MB=${BENCH_BIG_MB:-100}
TRACES_DIR=$(cd "$REPO/../shared/data/editing-traces" && pwd)
TRACES=${BENCH_TRACES:-"automerge-paper seph-blog1"}

if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S "$REPO" -B "$BUILD" -G Ninja -DHUB_UNIT_ONLY=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C "$BUILD" notes_bench >/dev/null
[[ -d "$HERE/node_modules" ]] || (cd "$HERE" && npm ci --no-audit --no-fund >/dev/null)

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
echo "node $(node --version), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for t in $TRACES; do
  for ((r = 1; r <= ROUNDS; r++)); do
    echo "round $r: $t hub, yjs" >&2
    "$BUILD/src/notes/notes_bench" --traces "$TRACES_DIR" --trace "$t" --rounds 1 --big-mb 0 >>"$OUT"
    node --expose-gc "$HERE/yjs_automerge.mjs" yjs "$TRACES_DIR/$t.json.gz" >>"$OUT"
  done
  if [[ "$AUTOMERGE" == 1 ]]; then
    echo "$t automerge" >&2
    node --expose-gc "$HERE/yjs_automerge.mjs" automerge "$TRACES_DIR/$t.json.gz" >>"$OUT"
  fi
done
if [[ "$BIG_MB" != 0 ]]; then
  echo "big note: $BIG_MB MB" >&2
  "$BUILD/src/notes/notes_bench" --traces "$TRACES_DIR" --trace none --big-mb "$BIG_MB" --rounds "$ROUNDS" >>"$OUT"
fi

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(impl, trace, key):
    v = [r[key] for r in rows if r["impl"] == impl and r["trace"] == trace and key in r]
    return statistics.median(v) if v else None
mb = lambda b: f"{b / 2**20:.1f} MiB" if b is not None else "-"
for trace in dict.fromkeys(r["trace"] for r in rows if r["trace"] != "big-note"):
    print(f"\n{trace} ({med('hub', trace, 'edits'):.0f} edits, one per transaction; medians)")
    print(f"{'':10} {'replay':>10} {'doc memory':>12} {'peak RSS':>10} {'encoded':>10} {'load':>10}")
    for impl in ("hub", "yjs", "automerge"):
        if med(impl, trace, "replay_ms") is None: continue
        print(f"{impl:10} {med(impl, trace, 'replay_ms'):8.1f}ms {mb(med(impl, trace, 'heap_bytes')):>12}"
              f" {mb(med(impl, trace, 'maxrss_kb') * 1024):>10} {med(impl, trace, 'encoded_bytes') / 1024:8.0f}KB"
              f" {med(impl, trace, 'load_ms'):8.1f}ms")
    hub = med("hub", trace, "replay_ms")
    for impl in ("yjs", "automerge"):
        o = med(impl, trace, "replay_ms")
        if o:
            print(f"  hub is {o / hub:.1f}x faster than {impl}; memory {med(impl, trace, 'heap_bytes') / med('hub', trace, 'heap_bytes'):.1f}x less"
                  if impl == "yjs" else f"  hub is {o / hub:.1f}x faster than {impl} (Automerge's WASM heap is not measurable from JS; see peak RSS)")
big = [r for r in rows if r["trace"] == "big-note"]
if big:
    b = big[0]
    print(f"\nbig note: {b['size_bytes'] / 2**20:.0f} MiB text, {b['runs']} runs, encoded {b['encoded_bytes'] / 2**20:.0f} MiB:"
          f" load {b['load_ms']:.0f} ms (median), Text() {b['text_ms']:.0f} ms, peak RSS {b['maxrss_kb'] / 1024:.0f} MiB")
PY
