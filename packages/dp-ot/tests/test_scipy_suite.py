"""scipy's own linear_sum_assignment tests, run against dp_ot.linear_sum_assignment.

scipy wheels ship their test modules; this loads the installed
``scipy/optimize/tests/test_linear_assignment.py`` as a module, replaces the name
``linear_sum_assignment`` in it by dp-ot's, and re-exports its test functions so that pytest
collects them here (parametrisation included). The suite checks scipy's exact answers,
including the identity assignment for a constant cost matrix, so it needs dp-ot's scipy tie rule.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dp_ot
import pytest
import scipy.optimize

_PATH = Path(scipy.optimize.__file__).parent / "tests" / "test_linear_assignment.py"
if not _PATH.is_file():
    pytest.skip(
        f"the installed scipy does not ship its tests (no {_PATH}); install a scipy wheel "
        "from PyPI, which includes them",
        allow_module_level=True,
    )

_spec = importlib.util.spec_from_file_location("_scipy_test_linear_assignment", _PATH)
assert _spec is not None and _spec.loader is not None
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)
assert _suite.linear_sum_assignment is scipy.optimize.linear_sum_assignment
_suite.linear_sum_assignment = dp_ot.linear_sum_assignment  # the tests look it up at call time

_TESTS = {name: obj for name, obj in vars(_suite).items() if name.startswith("test_")}
for _test in _TESTS.values():
    # scipy parametrises over an itertools.product iterator, which current pytest deprecates
    # (an error under filterwarnings=error): hand pytest the same values as a list.
    _test.pytestmark = [
        pytest.mark.parametrize(m.args[0], list(m.args[1]), *m.args[2:], **m.kwargs).mark
        if m.name == "parametrize" and not isinstance(m.args[1], (list, tuple))
        else m
        for m in getattr(_test, "pytestmark", [])
    ]
globals().update(_TESTS)


def test_suite_found_and_patched() -> None:
    """Guard against collecting nothing (a renamed file) or testing scipy against itself."""
    assert len(_TESTS) >= 10, sorted(_TESTS)
    assert _suite.linear_sum_assignment is dp_ot.linear_sum_assignment
