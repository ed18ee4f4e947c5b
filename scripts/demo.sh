#!/usr/bin/env bash
# Set up .venv (scripts/setup.sh) and run the main job: `mollifier demo` on sample_images/.
# Extra arguments go to `mollifier demo` (e.g. --out DIR).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
exec .venv/bin/mollifier demo "$@"
