"""The report's Fig. 3 (recovered S and n in the z = 0 plane), built in _figures."""

from __future__ import annotations

from pathlib import Path

import dp_mock
import numpy as np
import pytest

from deep_potential import _figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Fields:
    """A model-like whose ln S and ln n are the truth's plus constants (as a fit recovers them:
    up to a constant), so every Δ map of Fig. 3 is zero after the median is removed."""

    def __init__(self, truth: dp_mock.Truth) -> None:
        self.truth = truth

    def ln_selection(self, x: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(self.truth.selection(x), 1e-300)) + 0.3

    def ln_n(self, x: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(self.truth.number_density(x), 1e-300)) - 2.0


@pytest.fixture(scope="module")
def truth() -> dp_mock.Truth:
    return dp_mock.Truth(dp_mock.preset("demo").replace(dust=False))


def test_fig_fields_with_and_without_truth(truth: dp_mock.Truth, tmp_path: Path) -> None:
    model = _Fields(truth)
    models = {"selection": model, "conditional": model}
    kw = {"resolution": 16, "s_cut": 0.01}
    out = _figures.fig_fields(models, truth, truth.r_max, tmp_path / "a.png", **kw)
    assert out == tmp_path / "a.png" and out.read_bytes()[:8] == PNG_MAGIC
    out = _figures.fig_fields(models, None, truth.r_max, tmp_path / "b.png", **kw)
    assert out == tmp_path / "b.png" and out.read_bytes()[:8] == PNG_MAGIC
    # The vanilla method fits neither S nor n: no Fig. 3, nothing written.
    assert _figures.fig_fields({"vanilla": model}, truth, 8.0, tmp_path / "c.png", **kw) is None
    assert not (tmp_path / "c.png").exists()


def test_one_fig1() -> None:
    # Fig. 1 is dp-mock's plot_truth; the report's module has no copy of its own.
    assert callable(dp_mock.plot_truth)
    assert not [n for n in dir(_figures) if "mock" in n.lower() or n.startswith("fig1")]
