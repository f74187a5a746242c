#!/usr/bin/env bash
# Set everything up, then serve the genre widget on the embedded default
# (bundled model + demo library of freely licensed music, built at set-up) at http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/genrify serve "$@"
