"""gradients.h5 round trip and validation errors that name the problem."""

from __future__ import annotations

from pathlib import Path

import _cbe_oracle as oracle
import dp_cbe
import h5py
import numpy as np
import pytest


def _gs(n: int = 64) -> dp_cbe.GradientSet:
    return dp_cbe.GradientSet(**oracle.gradients("vanilla", 0, n))


def test_gradients_round_trip(tmp_path: Path) -> None:
    gs = _gs()
    path = dp_cbe.write_gradients(tmp_path / "g.h5", gs)
    back = dp_cbe.read_gradients(path)
    assert back.density == "f" and len(back) == 64
    for k in ("x", "v", "dlnf_dx", "dlnf_dv"):
        np.testing.assert_array_equal(getattr(back, k), getattr(gs, k))  # float64 stored exactly
    with h5py.File(path) as fh:
        assert fh.attrs["schema"] == "dp-gradients/1" and "units" in fh.attrs
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file


def test_gradient_set_rejects_bad_arrays() -> None:
    g = oracle.gradients("vanilla", 0, 10)
    bad = dict(g, dlnf_dx=g["dlnf_dx"][:, :2])
    with pytest.raises(ValueError, match=r"'dlnf_dx'.*\(N, 3\)"):
        dp_cbe.GradientSet(**bad)
    short = dict(g, v=g["v"][:9])
    with pytest.raises(ValueError, match="'v' has 9 rows"):
        dp_cbe.GradientSet(**short)
    nan = g["dlnf_dv"].copy()
    nan[[1, 4, 5], 0] = np.nan
    with pytest.raises(ValueError, match="'dlnf_dv' has 3 of 10 rows"):
        dp_cbe.GradientSet(**dict(g, dlnf_dv=nan))
    with pytest.raises(ValueError, match="density must be one of"):
        dp_cbe.GradientSet(**dict(g, density="g"))


def test_read_gradients_missing_dataset_and_attr(tmp_path: Path) -> None:
    path = dp_cbe.write_gradients(tmp_path / "g.h5", _gs())
    with h5py.File(path, "a") as fh:
        del fh["dlnf_dv"]
    with pytest.raises(KeyError, match="/dlnf_dv"):
        dp_cbe.read_gradients(path)
    path2 = dp_cbe.write_gradients(tmp_path / "g2.h5", _gs())
    with h5py.File(path2, "a") as fh:
        del fh.attrs["density"]
    with pytest.raises(KeyError, match="density"):
        dp_cbe.read_gradients(path2)
    with pytest.raises(FileNotFoundError):
        dp_cbe.read_gradients(tmp_path / "nope.h5")


def test_method_density_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs gradients of 'p_v_given_x'"):
        dp_cbe.fit(_gs(), "conditional", progress=False)
