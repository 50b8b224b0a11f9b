#!/usr/bin/env bash
# Developer environment: editable installs of every package into .venv (dp-ot is compiled).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q scikit-build-core pybind11 hatchling editables
.venv/bin/pip install -q --no-build-isolation -e ./packages/dp-ot
.venv/bin/pip install -q -e "./packages/dp-mock[test,plot]" -e "./packages/dp-flows[test]" -e "./packages/dp-cbe[test]" -e ".[test]" ruff
