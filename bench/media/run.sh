#!/usr/bin/env bash
# bench/media/run.sh — media pipeline benchmarks of issue 3 item 8. Not a test.
#
#   (a) the pipeline's wall time and CPU (hub process + every ffmpeg/ffprobe it ran) for a
#       generated 60 s 1080p30 H.264/AAC clip, from the tus upload complete (final PATCH answered)
#       to media_status ready, against the very same commands run by hand one after the other
#       (/usr/bin/time), in the same run. The commands are not reconstructed: the hub runs with
#       bench/media/ffwrap.sh first in its PATH, which records each argv and execs the real
#       program (same PID). By hand, outputs go to a scratch directory, input is the same stored
#       original.
#   (b) upload complete -> first playable (hls_url in the video's JSON and the master playlist
#       lists a rendition) for 10 s, 60 s and 600 s sources (the 600 s one is the 60 s clip
#       concatenated by stream copy); each video is deleted once playable (its ladder cancelled).
#   (c) upload complete -> full ladder (the same pipeline runs as (a)) against the single-pass
#       multi-output ffmpeg a skilled operator would write: one decode, split, scale, libx264 +
#       AAC per rendition, one HLS muxer with -var_stream_map and a master playlist, with the
#       pipeline's own preset, bitrates, VBV, profiles, levels, GOP and forced keyframes (read from
#       its recorded ladder argv). The command is printed.
#
# Prints a table (medians, ratios, load average, CPU other processes used meanwhile). Loopback
# only; everything in a temp dir, removed at the end; processes stopped by their PID.
# Knobs (environment):
#   BENCH_HUB=path          hub executable (default /work/build-rel/stream-hub, else build/stream-hub)
#   BENCH_ROUNDS=1          rounds of (a)+(c) (each ~5 min on 2 idle cores, ~14 min on a busy one)
#   BENCH_FP_ROUNDS=3       rounds of (b) per length     BENCH_LENGTHS="10 60 600"  (seconds)
#   BENCH_CLIP_S=60         length of the (a)/(c) clip   BENCH_BITRATE=8M  (video, 1080p30, 1 s GOP)
#   BENCH_MEDIA_WORKERS=    MEDIA_WORKERS of the hub (default: the hub's, max(1, cores/2))
#   BENCH_TMP=/tmp          BENCH_CLIP_CACHE=dir  keep/reuse the generated clips there
#   BENCH_JSON=file         also copy the raw figures there
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
HUB=${BENCH_HUB:-}
if [[ -z $HUB ]]; then
  HUB=/work/build-rel/stream-hub
  [[ -x $HUB ]] || HUB=$REPO/build/stream-hub
fi
ROUNDS=${BENCH_ROUNDS:-1}
FP_ROUNDS=${BENCH_FP_ROUNDS:-3}
LENGTHS=${BENCH_LENGTHS:-"10 60 600"}
CLIP_S=${BENCH_CLIP_S:-60}
BITRATE=${BENCH_BITRATE:-8M}
TOKEN=bench-token-0123456789
HOST=127.0.0.1

log() { printf '[media-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
for tool in ffmpeg ffprobe python3 curl; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing: apt-get install -y time"
[[ -x $HUB ]] || die "no hub executable at $HUB — build it or set BENCH_HUB"

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/stream-hub-media-bench.XXXXXX") || die "cannot create a temp dir"
HUB_PID=""
cleanup() {
  local i
  if [[ -n $HUB_PID ]] && kill -0 "$HUB_PID" 2>/dev/null; then
    kill -TERM "$HUB_PID" 2>/dev/null
    for i in $(seq 100); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$HUB_PID" 2>/dev/null && kill -KILL "$HUB_PID" 2>/dev/null
    wait "$HUB_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- sources: testsrc2 + a sine, 1080p30, x264 superfast (CABAC, B-frames: High profile like a
# phone's), BITRATE video (8 Mbit/s: YouTube's recommendation for 1080p30 uploads), 1 s GOP, AAC
# 128k stereo 48 kHz, moov first. Shorter/longer ones by stream copy (cut, concat): cheap.
CLIPS=${BENCH_CLIP_CACHE:-$WORK/clips}; mkdir -p "$CLIPS"
TAG="1080p30-${BITRATE}"
SRC=$CLIPS/src-${CLIP_S}s-$TAG.mp4
if [[ ! -s $SRC ]]; then
  log "generating the ${CLIP_S} s 1080p clip ($BITRATE)"
  ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$CLIP_S" \
    -c:v libx264 -preset superfast -profile:v high -b:v "$BITRATE" -maxrate "$BITRATE" -bufsize 16M \
    -g 30 -pix_fmt yuv420p -c:a aac -b:a 128k -ac 2 -movflags +faststart "$SRC.tmp.mp4"
  mv "$SRC.tmp.mp4" "$SRC"
fi
FP_ARGS=()
for L in $LENGTHS; do
  f=$CLIPS/src-${L}s-$TAG.mp4
  if [[ ! -s $f ]]; then
    if (( L <= CLIP_S )); then
      ffmpeg -hide_banner -loglevel error -nostdin -y -i "$SRC" -t "$L" -c copy -movflags +faststart "$f.tmp.mp4"
    else
      : >"$WORK/concat.txt"
      for ((i = 0; i * CLIP_S < L; i++)); do echo "file '$SRC'" >>"$WORK/concat.txt"; done
      ffmpeg -hide_banner -loglevel error -nostdin -y -f concat -safe 0 -i "$WORK/concat.txt" -t "$L" \
        -c copy -movflags +faststart "$f.tmp.mp4"
    fi
    mv "$f.tmp.mp4" "$f"
  fi
  FP_ARGS+=("${L}s=$f")
done
log "sources: $(for a in "${FP_ARGS[@]}"; do f=${a#*=}; printf '%s %s MB, ' "${a%%=*}" $(( $(stat -c %s "$f") / 1000000 )); done)"

# ---- the hub, with the argv recorder first in its PATH --------------------------------------
WRAP=$WORK/wrap; mkdir -p "$WRAP" "$WORK/argv"
cp "$HERE/ffwrap.sh" "$WRAP/ffwrap"; chmod +x "$WRAP/ffwrap"
ln -s ffwrap "$WRAP/ffmpeg"; ln -s ffwrap "$WRAP/ffprobe"
REAL_DIR=$(dirname "$(command -v ffmpeg)")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
H=$WORK/hub; mkdir -p "$H"/{data,state,logs,tmp}
log "starting the hub on $HOST:$PORT ($HUB)"
ENV=(HTTP_BIND=$HOST HTTP_PORT="$PORT" DATA_DIR="$H/data" STATE_DIR="$H/state" LOGS_DIR="$H/logs"
     TEMP_DIR="$H/tmp" ADMIN_TOKEN=$TOKEN LOG_LEVEL=info PATH="$WRAP:$PATH"
     FFWRAP_DIR="$REAL_DIR" FFWRAP_LOG="$WORK/argv")
[[ -n ${BENCH_MEDIA_WORKERS:-} ]] && ENV+=(MEDIA_WORKERS="$BENCH_MEDIA_WORKERS")
(cd "$H" && exec env "${ENV[@]}" "$HUB" serve) >"$H/hub.log" 2>&1 &
HUB_PID=$!
for i in $(seq 300); do curl -fsS -o /dev/null "http://$HOST:$PORT/healthz" 2>/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "http://$HOST:$PORT/healthz" || { tail -20 "$H/hub.log" >&2; die "the hub did not start"; }
grep -m1 'media:' "$H/hub.log" >&2 || true

log "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
FFWRAP_DIR=$REAL_DIR python3 "$HERE/media_bench.py" --port "$PORT" --token "$TOKEN" --hub-pid "$HUB_PID" \
  --hub-log "$H/hub.log" --streams "$H/data/videos/streams" --argv-dir "$WORK/argv" --work "$WORK" \
  --clip "$SRC" --fp-clips "${FP_ARGS[@]}" --rounds "$ROUNDS" --fp-rounds "$FP_ROUNDS" \
  --json "$WORK/results.json"
[[ -n ${BENCH_JSON:-} ]] && cp "$WORK/results.json" "$BENCH_JSON"
python3 - "$WORK/results.json" "$WORK" <<'PY'
import json, shlex, sys
r = json.load(open(sys.argv[1]))
short = lambda c: shlex.join(c).replace(sys.argv[2], "$WORK")
if "cmds" in r:
    print("\ncommands the pipeline ran (last round):")
    for c in r["cmds"]:
        print("  " + short(c))
if "operator_cmd" in r:
    print("\nthe operator's command:\n  " + short(r["operator_cmd"]))
PY
log "done; load average $(cut -d' ' -f1-3 /proc/loadavg)"
