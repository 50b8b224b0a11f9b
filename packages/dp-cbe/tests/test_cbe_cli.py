"""`dp-cbe fit` → `dp-cbe evaluate` round trip, and CLI errors."""

from __future__ import annotations

from pathlib import Path

import _cbe_oracle as oracle
import dp_cbe
import h5py
import numpy as np
import pytest
from dp_cbe._cli import main


def test_fit_evaluate_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grads = dp_cbe.write_gradients(tmp_path / "g.h5",
                                   dp_cbe.GradientSet(**oracle.gradients("selection", 2, 1024)))  # fmt: skip
    cfg = tmp_path / "fit.toml"
    cfg.write_text(
        "phi_width = 16\nphi_depth = 1\ns_width = 16\ns_depth = 1\nl_max = 2\nbatch_size = 128\n"
        "n_steps = 20\neval_every = 10\ncheckpoint_every = 20\nval_batches = 1\nwarmup_steps = 2\n"
    )
    model = tmp_path / "model"
    # method comes from the file's density attribute (f_obs → selection)
    assert main(["fit", str(grads), "--out", str(model), "--config", str(cfg), "--seed", "3",
                 "--no-progress"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "selection model written" in captured.out
    # 20 steps cannot meet the stopping rule: the CLI says so on stdout and stderr
    assert "NOT CONVERGED" in captured.out and "dp-cbe: WARNING: " in captured.err
    points = tmp_path / "points.h5"
    x = oracle.sample(4, 300)[0]
    with h5py.File(points, "w") as fh:
        fh["x"] = x
    out = tmp_path / "eval.h5"
    assert main(["evaluate", str(model), str(points), "--out", str(out)]) == 0
    sol = dp_cbe.load_model(model)
    with h5py.File(out) as fh:
        assert set(fh) == {"x", "potential", "acceleration", "density", "ln_selection"}
        assert fh["acceleration"].shape == (300, 3)
        np.testing.assert_array_equal(fh["density"][()], sol.density(x))  # same model, same bits
        np.testing.assert_array_equal(fh["ln_selection"][()], sol.ln_selection(x))


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "m")]) == 2
    assert "not found" in capsys.readouterr().err
    grads = dp_cbe.write_gradients(tmp_path / "g.h5",
                                   dp_cbe.GradientSet(**oracle.gradients("vanilla", 2, 64)))  # fmt: skip
    assert main(["fit", str(grads), "--method", "conditional", "--out", str(tmp_path / "m")]) == 2
    assert "needs gradients of 'p_v_given_x'" in capsys.readouterr().err
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("widht = 3\n")
    assert main(["fit", str(grads), "--out", str(tmp_path / "m"), "--config", str(bad_cfg)]) == 2
    assert "widht" in capsys.readouterr().err
