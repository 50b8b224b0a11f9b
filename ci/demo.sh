#!/usr/bin/env bash
# The main job (README "Run the demo"): set up a virtual environment with every package and run
# the CPU demo end to end, config -> mock -> flows -> gradients -> potentials -> report.
# Usage: bash ci/demo.sh [RUN_DIR]   (default runs/demo; a rerun resumes / skips finished stages)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${DP_VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q ./packages/dp-ot ./packages/dp-mock ./packages/dp-flows ./packages/dp-cbe .
exec "$VENV/bin/deep-potential" run configs/demo.toml --out "${1:-runs/demo}"
