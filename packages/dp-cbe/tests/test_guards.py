"""Guards: unrepresentable inputs, untrustworthy evaluations, one-line errors, output modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import _cbe_oracle as oracle
import dp_cbe
import h5py
import numpy as np
import pytest
from dp_cbe._cli import main
from dp_cbe._io import atomic_write

TINY_FIT = (
    "phi_width = 16\nphi_depth = 1\ns_width = 16\ns_depth = 1\nl_max = 2\nbatch_size = 128\n"
    "n_steps = 10\neval_every = 10\ncheckpoint_every = 10\nval_batches = 1\nwarmup_steps = 2\n"
)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A 10-step selection model: only its finiteness and stored scale matter here."""
    tmp = tmp_path_factory.mktemp("model")
    grads = dp_cbe.write_gradients(tmp / "g.h5",
                                   dp_cbe.GradientSet(**oracle.gradients("selection", 2, 512)))  # fmt: skip
    (tmp / "fit.toml").write_text(TINY_FIT)
    out = tmp / "model"
    assert (
        main(["fit", str(grads), "--out", str(out), "--config", str(tmp / "fit.toml"), "-q"]) == 0
    )
    return out


def _points(path: Path, x) -> str:
    with h5py.File(path, "w") as fh:
        fh["x"] = np.asarray(x, np.float64)
    return str(path)


def test_gradient_row_at_1e30_is_refused(tmp_path, capsys):
    d = oracle.gradients("vanilla", 3, 64)
    d["x"] = np.array(d["x"])
    d["x"][7] = 1e30  # standardisation would squash every other star to the origin
    with pytest.raises(ValueError, match=r"'x' has 1 of 64 rows with \|value\| > 1e\+18"):
        dp_cbe.GradientSet(**d)
    with h5py.File(tmp_path / "g.h5", "w") as fh:  # written around the validating writer
        fh.attrs["density"] = "f"
        for k in ("x", "v", "dlnf_dx", "dlnf_dv"):
            fh[k] = d[k]
    assert main(["fit", str(tmp_path / "g.h5"), "--out", str(tmp_path / "m"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of 64 rows" in err
    assert not (tmp_path / "m").exists()


def test_evaluate_far_points(model, tmp_path, capsys):
    out = tmp_path / "e.h5"
    # 1e20 kpc is a finite float32 but its square is not: the model's NaN is refused.
    pts = _points(tmp_path / "p20.h5", [[1.0, 0.0, 0.0], [1e20, 0.0, 0.0]])
    assert main(["evaluate", str(model), pts, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NaN/inf at 1 of 2 points" in err
    assert not out.exists()
    # 1e39 is finite in float64 but beyond float32: say so, not "NaN/inf".
    pts = _points(tmp_path / "p39.h5", [[1e39, 0.0, 0.0]])
    assert main(["evaluate", str(model), pts, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 of 1 rows beyond float32 range" in err and "NaN/inf" not in err


def test_evaluate_flags_points_outside_the_training_volume(model, tmp_path, capsys):
    x = np.array([[0.5, 0.0, 0.0], [0.0, 30.0, 0.0], [1.0, 1.0, 1.0], [-40.0, 0.0, 0.0]])
    out = tmp_path / "e.h5"
    assert main(["evaluate", str(model), _points(tmp_path / "p.h5", x), "--out", str(out)]) == 0
    assert "WARNING: 2 of 4 points lie outside the training volume" in capsys.readouterr().err
    with h5py.File(out) as fh:
        # the training positions lie inside r < 8 kpc (the oracle's R_MAX)
        assert 0 < fh.attrs["training_half_width"] <= oracle.R_MAX
        assert fh.attrs["n_outside_training_volume"] == 2
        np.testing.assert_array_equal(fh["outside_training_volume"][()], [0, 1, 0, 1])
    inside = _points(tmp_path / "q.h5", x[[0, 2]])
    assert main(["evaluate", str(model), inside, "--out", str(out)]) == 0
    assert "WARNING" not in capsys.readouterr().err
    with h5py.File(out) as fh:
        assert fh.attrs["n_outside_training_volume"] == 0 and "outside_training_volume" not in fh


def test_evaluate_refuses_out_equal_to_input(model, tmp_path, capsys):
    pts = _points(tmp_path / "p.h5", [[1.0, 2.0, 3.0]])
    before = Path(pts).read_bytes()
    assert main(["evaluate", str(model), pts, "--out", pts]) == 2
    assert "is the points file" in capsys.readouterr().err
    assert Path(pts).read_bytes() == before


def test_one_line_errors_for_bad_inputs(tmp_path, capsys):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5\n")
    assert main(["fit", str(text), "--out", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err == f"dp-cbe: error: {text} is not an HDF5 file\n"
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as fh:  # zero stars
        fh.attrs["density"] = "f"
        for k in ("x", "v", "dlnf_dx", "dlnf_dv"):
            fh[k] = np.zeros((0, 3))
    assert main(["fit", str(empty), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'x' is empty" in err
    existing = tmp_path / "file"
    existing.write_text("")
    with pytest.raises(SystemExit) as exc:  # a file where the model folder should go
        main(["fit", str(empty), "--out", str(existing)])
    assert exc.value.code == 2 and "is an existing file" in capsys.readouterr().err


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_write_honours_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "f.txt", lambda p: p.write_text("x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~umask
