"""``python -m <package>`` runs the same command line as the installed script, for every package."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

MODULES = {
    "dp_mock": "dp-mock",
    "dp_ot": "dp-ot",
    "dp_flows": "dp-flows",
    "dp_cbe": "dp-cbe",
    "deep_potential": "deep-potential",
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_python_m_prints_the_cli_usage(module: str) -> None:
    importlib.import_module(module)  # every package is a hard dependency: missing fails
    out = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=300
    )
    # argparse exits 0 after --help, and names the installed script as the program.
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: {MODULES[module]} "), out.stdout[:200]
