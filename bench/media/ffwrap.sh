#!/bin/sh
# Put first in the hub's PATH as "ffmpeg" and "ffprobe" (symlinks): records the argv the hub runs
# (NUL-separated, one file per process, named so that `ls | sort` is start order) into
# $FFWRAP_LOG, then becomes the real program (exec: same PID, so the CPU it uses is the hub's
# child's). Costs one dash start (~1 ms) per process.
name=${0##*/}
if [ -n "$FFWRAP_LOG" ] && [ -d "$FFWRAP_LOG" ]; then
  read -r up _ </proc/uptime
  printf '%s\0' "$name" "$@" >"$FFWRAP_LOG/$(printf '%012.2f' "$up")-$$.argv"
fi
exec "$FFWRAP_DIR/$name" "$@"
