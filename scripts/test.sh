#!/usr/bin/env bash
# Everything `make test` runs: the warnings-as-errors build with unit,
# integration and browser tests; the ASan+UBSan build of the unit tests; the
# fuzz targets for a bounded time each.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
# ccache hits across clones (CI builds a fresh clone each time).
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=true

step() { printf '\n=== %s ===\n' "$*"; }

step "build (warnings are errors)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUB_WERROR=ON >/dev/null
cmake --build build -j "$JOBS"

step "unit, integration and browser tests"
ctest --test-dir build --output-on-failure --no-tests=error -j "$JOBS"

step "unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DHUB_WERROR=ON -DHUB_SANITIZE=ON -DHUB_UNIT_ONLY=ON >/dev/null
cmake --build build-asan -j "$JOBS"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure --no-tests=error -L unit -j "$JOBS"

step "fuzz targets (${FUZZ_SECONDS}s each)"
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUB_FUZZ=ON -DHUB_UNIT_ONLY=ON >/dev/null
cmake --build build-fuzz -j "$JOBS" --target fuzzers
for f in build-fuzz/fuzz/*_fuzz; do
  name=$(basename "$f")
  corpus=build-fuzz/corpus/$name; mkdir -p "$corpus"
  seeds=fuzz/seeds/$name; [[ -d $seeds ]] || seeds=""
  echo "fuzzing $name"
  "$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -max_len=65536 "$corpus" $seeds 2>&1 | tail -n 3
done
echo "fuzz: all targets ran without a crash"
