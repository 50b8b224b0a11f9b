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


def test_standard_errors_round_trip_as_a_pair(tmp_path: Path) -> None:
    g = oracle.gradients("conditional", 1, 32)
    se = {"dlnf_dx_std": np.full((32, 3), 0.1), "dlnf_dv_std": np.full((32, 3), 1e-3)}
    back = dp_cbe.read_gradients(
        dp_cbe.write_gradients(tmp_path / "g.h5", dp_cbe.GradientSet(**g, **se))
    )
    for k, a in se.items():
        np.testing.assert_array_equal(getattr(back, k), a)  # float64 stored exactly
    assert (
        dp_cbe.read_gradients(dp_cbe.write_gradients(tmp_path / "n.h5", _gs())).dlnf_dx_std is None
    )
    with pytest.raises(ValueError, match="'dlnf_dx_std' without its pair"):
        dp_cbe.GradientSet(**g, dlnf_dx_std=se["dlnf_dx_std"])
    with pytest.raises(ValueError, match=r"'dlnf_dv_std' must have shape \(N, 3\)"):
        dp_cbe.GradientSet(**g, dlnf_dx_std=se["dlnf_dx_std"], dlnf_dv_std=np.ones(32))
    # A lone standard error in a file is not part of the format: the reader ignores it.
    path = dp_cbe.write_gradients(tmp_path / "lone.h5", dp_cbe.GradientSet(**g))
    with h5py.File(path, "a") as fh:
        fh["dlnf_dx_std"] = se["dlnf_dx_std"]
    assert dp_cbe.read_gradients(path).dlnf_dx_std is None


def _by_hand(path: Path, gs: dp_cbe.GradientSet, *, std: bool) -> Path:
    """The layout the pipeline's gradients.h5 had before dp-cbe wrote them (dp-flows' writer)."""
    with h5py.File(path, "w") as fh:
        fh.attrs["schema"] = "dp-gradients/1"
        fh.attrs["units"] = "x: kpc, v: km/s, dlnf_dx: 1/kpc, dlnf_dv: 1/(km/s)"
        fh.attrs["density"] = gs.density
        names = ["x", "v", "dlnf_dx", "dlnf_dv"] + (["dlnf_dx_std", "dlnf_dv_std"] if std else [])
        for k in names:
            fh.create_dataset(k, data=getattr(gs, k))
    return path


@pytest.mark.parametrize("std", [False, True])
def test_writer_reproduces_existing_files_byte_for_byte(tmp_path: Path, std: bool) -> None:
    """A run's downstream keys hash gradients.h5's bytes: the same set must give the same file
    as the writer that produced existing runs did, so that redrawing it changes nothing."""
    g = oracle.gradients("selection", 3, 40)
    extra = {"dlnf_dx_std": np.full((40, 3), 0.5), "dlnf_dv_std": np.full((40, 3), 0.25)}
    gs = dp_cbe.GradientSet(**g, **(extra if std else {}))
    ours = dp_cbe.write_gradients(tmp_path / "ours.h5", gs).read_bytes()
    assert ours == _by_hand(tmp_path / "theirs.h5", gs, std=std).read_bytes()
    assert ours == dp_cbe.write_gradients(tmp_path / "again.h5", gs).read_bytes()


def test_one_table_of_methods_and_densities() -> None:
    assert (
        dp_cbe.METHODS == tuple(dp_cbe.DENSITY_OF_METHOD) == ("vanilla", "selection", "conditional")
    )
    assert dp_cbe.DENSITY_OF_METHOD["conditional"] == "p_v_given_x"
    with pytest.raises(TypeError):  # read-only: nobody edits the one table in place
        dp_cbe.DENSITY_OF_METHOD["new"] = "g"
    for method, density in dp_cbe.DENSITY_OF_METHOD.items():  # the tests' oracle agrees
        assert oracle.gradients(method, 0, 8)["density"] == density


def test_grouped_gradient_set_round_trip_and_validation(tmp_path: Path) -> None:
    g = oracle.gradients("conditional", 0, 64, group=8)
    gs = dp_cbe.GradientSet(**g)
    assert gs.group_size == 8
    back = dp_cbe.read_gradients(dp_cbe.write_gradients(tmp_path / "g.h5", gs))
    assert back.group_size == 8
    np.testing.assert_array_equal(back.v, gs.v)
    # Ungrouped sets are written without the attribute (files from before groups read as 1).
    with h5py.File(dp_cbe.write_gradients(tmp_path / "g1.h5", _gs()), "r") as fh:
        assert "group_size" not in fh.attrs
    with pytest.raises(ValueError, match="not a whole number of groups of 5"):
        dp_cbe.GradientSet(**dict(g, group_size=5))
    moved = g["x"].copy()
    moved[3] += 1e-9  # one row of the first group off its position
    with pytest.raises(ValueError, match="1 of 8 groups of 8 rows do not share one position"):
        dp_cbe.GradientSet(**dict(g, x=moved))
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="group_size must be an integer >= 1"):
            dp_cbe.GradientSet(**dict(g, group_size=bad))


def test_exact_flag_round_trip_and_validation(tmp_path: Path) -> None:
    """``exact`` is stored only when true (older files read as estimated) and validated."""
    gs = _gs()
    assert gs.exact is False
    with h5py.File(dp_cbe.write_gradients(tmp_path / "est.h5", gs), "r") as fh:
        assert "exact" not in fh.attrs
    ex = dp_cbe.GradientSet(gs.x, gs.v, gs.dlnf_dx, gs.dlnf_dv, gs.density, exact=True)
    assert dp_cbe.read_gradients(dp_cbe.write_gradients(tmp_path / "ex.h5", ex)).exact is True
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="exact must be True or False"):
            dp_cbe.GradientSet(gs.x, gs.v, gs.dlnf_dx, gs.dlnf_dv, gs.density, exact=bad)
    with h5py.File(tmp_path / "ex.h5", "a") as fh:
        fh.attrs["exact"] = 2
    with pytest.raises(ValueError, match="attribute 'exact' must be the integer 0 or 1"):
        dp_cbe.read_gradients(tmp_path / "ex.h5")
