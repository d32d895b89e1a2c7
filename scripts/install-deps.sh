#!/usr/bin/env bash
# Installs what building, running and testing stream-hub needs on Debian 12.
# Idempotent and quick when everything is present. Never leaves a service
# (nginx, avahi-daemon) running: their packages are installed with service
# start-up blocked by policy-rc.d.
#   scripts/install-deps.sh          build + run
#   scripts/install-deps.sh --test   also what the tests and benchmarks use
# Both run `npm ci` in web/editor and web/player: the notepad's editor
# (CodeMirror 6) and the watch page's HLS player (hls.js) are bundled from npm
# packages by esbuild at build time (web/CMakeLists.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_PKGS=(build-essential cmake ninja-build pkg-config ccache libboost-dev nlohmann-json3-dev
  libsqlite3-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev libssl-dev libsodium-dev
  libgtest-dev libgmock-dev zlib1g-dev libavahi-client-dev ffmpeg nodejs npm)
TEST_PKGS=(clang libclang-rt-14-dev nginx wrk curl python3 chromium ffmpeg procps iproute2
  avahi-daemon avahi-utils dbus python3-zeroconf serf)

want=("${RUN_PKGS[@]}")
if [[ "${1:-}" == "--test" ]]; then want+=("${TEST_PKGS[@]}"); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# An existing node/npm (e.g. from another source) is fine.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]}")
fi

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  # Block service start-up during installation (nginx would start on a systemd host).
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages of web/editor and web/player, exactly as each package-lock.json says; skipped
# when node_modules already holds those versions.
lock_matches() { # dir: node_modules has every non-optional package of the lock, at its version
  (cd "$1" && [[ -d node_modules ]] && node -e '
    const fs = require("fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
    for (const [p, v] of Object.entries(lock.packages || {})) {
      if (!p) continue;
      let got = null;
      try { got = JSON.parse(fs.readFileSync(p + "/package.json", "utf8")).version; } catch {}
      if (got !== v.version && !(v.optional && got === null)) process.exit(1);
    }' 2>/dev/null)
}
if ! lock_matches web/editor; then
  echo "install-deps: npm ci in web/editor"
  (cd web/editor && npm ci --no-audit --no-fund --loglevel=error)
fi
if ! lock_matches web/player; then
  echo "install-deps: npm ci in web/player"
  (cd web/player && npm ci --no-audit --no-fund --loglevel=error)
fi

if [[ "${1:-}" == "--test" ]]; then
  if [[ ! -d tests/e2e/node_modules/playwright-core ]]; then
    echo "install-deps: npm ci in tests/e2e"
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
