"""Guards: inputs float32 training cannot represent, impossible CLI values, one-line errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from dp_flows import FlowConfig, fit_flow
from dp_flows._cli import main


def _catalog(path, x, v):
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "dp-catalog/1"
        f["stars/x"] = x
        f["stars/v"] = v
    return str(path)


@pytest.mark.parametrize("where", ["data", "condition"])
def test_fit_flow_refuses_unrepresentable_magnitudes(where):
    rng = np.random.default_rng(0)
    x, v = rng.normal(size=(64, 3)), rng.normal(size=(64, 3))
    (v if where == "data" else x)[5, 1] = 1e300  # its square overflows even float64
    with pytest.raises(ValueError, match=rf"{where} has 1 of 64 rows with \|value\| > 1e\+30"):
        fit_flow(v, condition=x, config=FlowConfig(n_epochs=1), progress=False)


def test_cli_fit_star_at_1e300_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 3))
    x[0] = 1e300
    cat = _catalog(tmp_path / "c.h5", x, rng.normal(size=(32, 3)))
    out = tmp_path / "flow"
    assert main(["fit", cat, "--flow", "spatial", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of 32 rows with |value| > 1e+30" in err
    assert not (out / "hyperparameters.json").exists()  # no x_mean: Infinity written


def test_cli_zero_stars_and_non_hdf5(tmp_path, capsys):
    cat = _catalog(tmp_path / "empty.h5", np.zeros((0, 3)), np.zeros((0, 3)))
    assert main(["fit", cat, "--flow", "spatial", "--out", str(tmp_path / "f"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "0 rows" in err
    text = tmp_path / "notes.h5"
    text.write_text("hello\n")
    assert main(["fit", str(text), "--flow", "spatial", "--out", str(tmp_path / "f")]) == 2
    assert capsys.readouterr().err == f"dp-flows fit: error: catalogue {text} is not an HDF5 file\n"


def test_cli_out_of_the_wrong_kind(tmp_path, capsys):
    existing = tmp_path / "file"
    existing.write_text("")
    with pytest.raises(SystemExit):
        main(["fit", "c.h5", "--flow", "spatial", "--out", str(existing)])
    assert "is an existing file" in capsys.readouterr().err
