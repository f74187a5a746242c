#!/usr/bin/env bash
# Create ./.venv and install genrify into it (idempotent: skips work already done).
#   scripts/setup.sh          runtime dependencies
#   scripts/setup.sh --test   plus the test dependencies and Debian's Chromium for browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

SUDO=""
[ "$(id -u)" != 0 ] && command -v sudo >/dev/null && SUDO="sudo"
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian ships venv/ensurepip separately from python3.
    rm -rf .venv
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    "$PY" -m venv .venv
  fi
fi
extras=""
stamp=".venv/.genrify-installed"
if [ $want_test = 1 ]; then
  extras="[test,ray,beets]"  # the Ray tests run against a real local cluster, the plugin's against real beets
  stamp=".venv/.genrify-installed-test"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch is pinned to 2.13.0 (CPU build); the rest follows pyproject.toml.
  .venv/bin/python -m pip install --quiet -e ".${extras}"
  touch "$stamp"
fi

# genrify audit fingerprints recordings with Chromaprint's fpcalc (used through pyacoustid).
if ! command -v fpcalc >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libchromaprint-tools >/dev/null
fi

# The demo library `genrify serve` starts on: 30 s clips of freely licensed music from the Debian
# archive (credits in `genrify serve --help` and on the page), cut once into the user data folder.
# Offline, set-up goes on and the server says so and serves synthetic test clips instead.
if ! .venv/bin/python -m genrify.sources.demo --check; then
  music="${GENRIFY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/genrify}/debian-music"
  fetch_demo() {
    # shellcheck disable=SC2046
    .venv/bin/python tools/fetch_debian_music.py --out "$music" \
      $(printf -- '--package %s ' $(.venv/bin/python -m genrify.sources.demo --list-packages)) >/dev/null 2>&1
  }
  # A fresh machine may have no package lists yet: update them once if the first try fails.
  if fetch_demo || { $SUDO apt-get update -qq >/dev/null 2>&1 && fetch_demo; }; then
    .venv/bin/python -m genrify.sources.demo --debian "$music"
  else
    echo "setup: the demo music could not be fetched from the Debian archive (offline?);" \
         "genrify serve will use synthetic test clips until scripts/setup.sh runs online" >&2
  fi
fi

if [ $want_test = 1 ] && [ ! -x /usr/bin/chromium ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
