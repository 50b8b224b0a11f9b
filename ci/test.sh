#!/usr/bin/env bash
# The project's test command (README "Run the tests"); .ci/run calls it.
#
# 0. static checks first (fail fast): ruff lint and ruff format --check over the repo;
# 1. builds an sdist and a wheel for every package (the wheel is built FROM the sdist, so a
#    file missing from the sdist fails here), the umbrella included; then, in the environment
#    of step 4 (every wheel installed), the type check (basedpyright over src and
#    packages/*/src, settings in pyproject's [tool.pyright]) and the docstring examples
#    (pytest --doctest-modules over the installed packages);
# 2. builds and runs dp-ot's plain-C++ unit tests (ctest);
# 3. for each package separately: a fresh virtual environment, only that package's wheel (its
#    declared dependencies from PyPI), an import check that it is the installed copy, and that
#    package's own tests run against it;
# 4. an environment with every wheel plus the umbrella, running the cross-package and
#    end-to-end tests in tests/.
# pytest exits 5 when it collects nothing; `set -e` turns that into a failure.
#
# Usage: bash ci/test.sh [--fast]     (--fast skips tests marked slow)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
WORK=${DP_CI_WORK:-$ROOT/.ci-work}
MARK=()
if [[ "${1:-}" == "--fast" ]]; then MARK=(-m "not slow"); fi
PACKAGES=(dp-ot dp-mock dp-cbe dp-flows)
start=$(date +%s)
stamp() { echo "[ci $(( $(date +%s) - start ))s] $*"; }

rm -rf "$WORK/dist" "$WORK"/venv-* "$WORK/cpp-build"
mkdir -p "$WORK/dist"

# Disk: the build venv, the umbrella venv and one package venv at a time (each removed after its
# tests) peak at about 4 GB. A full disk otherwise fails minutes in, inside pip, as "OSError:
# [Errno 28] No space left on device"; say so up front instead.
need_kb=$((5 * 1024 * 1024))
free_kb=$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')
if (( free_kb < need_kb )); then
  echo "ci: only $((free_kb / 1024)) MiB free under $WORK; the checks need about 5 GiB" \
       "(free some space, or point DP_CI_WORK at a bigger disk)" >&2
  exit 1
fi

stamp "bootstrap build tools"
"$PY" -m venv "$WORK/venv-build"
# cmake/ctest from PyPI: a fresh machine needs only a C++ compiler. ruff's minor versions
# change the format style, hence the range.
"$WORK/venv-build/bin/pip" install -q --upgrade pip build cmake "ruff>=0.17,<0.18"
BIN="$WORK/venv-build/bin"

stamp "ruff lint + format check"
"$BIN/ruff" check .
"$BIN/ruff" format --check .

for pkg in "${PACKAGES[@]}"; do
  stamp "build sdist + wheel: $pkg"
  "$WORK/venv-build/bin/python" -m build -q --outdir "$WORK/dist" "packages/$pkg" >/dev/null
done
stamp "build sdist + wheel: deep-potential (umbrella)"
"$WORK/venv-build/bin/python" -m build -q --outdir "$WORK/dist" . >/dev/null
ls -1 "$WORK/dist"

wheel_of() { ls "$WORK/dist/$(echo "$1" | tr - _)"-*.whl; }
# The extras a package's own tests install with its wheel: [test], and dp-mock's [plot] too so
# that its Fig. 1 tests run (matplotlib is optional there; without it they would be skipped).
extras_of() { case "$1" in dp-mock) echo "test,plot" ;; *) echo "test" ;; esac; }

# The umbrella environment (every wheel + deep-potential[test]) is built here, used for the
# type check and the doctests, and reused for the cross-package tests at the end.
stamp "umbrella venv: every wheel + deep-potential"
venv_all="$WORK/venv-all"
"$PY" -m venv "$venv_all"
"$venv_all/bin/pip" install -q --upgrade pip
# basedpyright is pyright with Node.js shipped as a PyPI wheel (plain pyright downloads it).
"$venv_all/bin/pip" install -q $(for p in "${PACKAGES[@]}"; do wheel_of "$p"; done) \
    "$(wheel_of deep-potential)[test]" "basedpyright>=1.40,<1.41"

stamp "type check: basedpyright (pyproject [tool.pyright])"
"$venv_all/bin/basedpyright" --pythonpath "$venv_all/bin/python"

stamp "docstring examples: doctests of the installed packages"
(cd "$WORK" && "$venv_all/bin/python" -m pytest -q -p no:cacheprovider -c "$ROOT/pyproject.toml" \
    --rootdir "$ROOT" --doctest-modules --pyargs dp_mock dp_ot dp_flows dp_cbe deep_potential)

stamp "dp-ot C++ unit tests (no Python)"
"$BIN/cmake" -S packages/dp-ot/cpp -B "$WORK/cpp-build" -DCMAKE_BUILD_TYPE=Release >/dev/null
"$BIN/cmake" --build "$WORK/cpp-build" -j 2 >/dev/null
(cd "$WORK/cpp-build" && "$BIN/ctest" --output-on-failure)

for pkg in "${PACKAGES[@]}"; do
  mod=$(echo "$pkg" | tr - _)
  venv="$WORK/venv-$pkg"
  stamp "fresh venv with only $pkg's wheel"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "$(wheel_of "$pkg")[$(extras_of "$pkg")]"
  # The import must resolve to the installed wheel, never to the source tree.
  (cd "$WORK" && "$venv/bin/python" -c "
import $mod, sys
assert '/site-packages/' in $mod.__file__, $mod.__file__
print('$pkg', $mod.__version__, 'from', $mod.__file__)
")
  stamp "$pkg tests against the installed wheel"
  (cd "$WORK" && "$venv/bin/python" -m pytest -q -p no:cacheprovider -c "$ROOT/pyproject.toml" \
      --rootdir "$ROOT" "${MARK[@]}" "$ROOT/packages/$pkg/tests")
  rm -rf "$venv"  # keeps the peak disk use to one package venv at a time
done

stamp "cross-package and end-to-end tests (umbrella venv)"
(cd "$WORK" && "$venv_all/bin/python" -m pytest -q -p no:cacheprovider -c "$ROOT/pyproject.toml" \
    --rootdir "$ROOT" "${MARK[@]}" "$ROOT/tests")
stamp "all checks passed"
