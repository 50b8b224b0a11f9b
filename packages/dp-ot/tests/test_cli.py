"""CLI round trip and error messages."""

from __future__ import annotations

import dp_ot
import h5py
import numpy as np
import pytest
from dp_ot._cli import main


@pytest.fixture
def catalog(tmp_path):
    path = tmp_path / "catalog.h5"
    x = np.random.default_rng(0).normal(size=(600, 3)) * [1, 2, 3] + 5
    with h5py.File(path, "w") as f:
        f["/stars/x"] = x
        f["/stars/weight"] = np.ones(600)
        f["/stars/bad"] = np.where(np.arange(600)[:, None] == 7, np.nan, x)
        f["/stars/flat"] = x[:, 0]
    return path, x


def test_round_trip(catalog, tmp_path, capsys) -> None:
    path, x = catalog
    out = tmp_path / "pairs"
    args = ["precompute", str(path), "--epochs", "2", "--seed", "4", "--threads", "2"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    assert "2 epochs x 2 blocks of 256" in capsys.readouterr().out
    z = (x - x.mean(0)) / x.std(0)  # the CLI standardizes before pairing
    p = dp_ot.Pairings.open(out)
    direct = dp_ot.precompute_pairings(z, tmp_path / "direct", seed=4, n_epochs=2, progress=False)
    assert (p.path / "pairings.u8").read_bytes() == (direct.path / "pairings.u8").read_bytes()
    assert len(list(p.minibatches(0, z))) == 2
    assert main([*args, "--out", str(tmp_path / "w"), "--weights", "/stars/weight", "--quiet"]) == 0


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--dataset", "/stars/nope"], "no dataset"),
        (["--dataset", "/stars/bad"], "1 rows with NaN"),
        (["--dataset", "/stars/flat"], r"must be \(N, d\)"),
        (["--block", "999"], "block must be"),
        (["--block", "0"], "--block must be >= 1, got 0"),
        (["--block", "-3"], "--block must be >= 1, got -3"),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--epochs", "-1"], "--epochs must be >= 1"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--weights", "/stars/x"], "weights must be"),
    ],
)
def test_errors(catalog, tmp_path, extra, match) -> None:
    path, _ = catalog
    with pytest.raises(SystemExit, match=match) as info:
        main(["precompute", str(path), "--out", str(tmp_path / "o"), "--quiet", *extra])
    assert "\n" not in str(info.value.code)  # one line, no traceback


def test_damaged_output_is_one_line(catalog, tmp_path) -> None:
    path, _ = catalog
    out = tmp_path / "o"
    assert main(["precompute", str(path), "--out", str(out), "--epochs", "1", "--quiet"]) == 0
    (out / "header.json").write_text('{"form')
    with pytest.raises(SystemExit, match=r"corrupt or truncated.*delete") as info:
        main(["precompute", str(path), "--out", str(out), "--epochs", "1", "--quiet"])
    assert "\n" not in str(info.value.code)


def test_missing_file_and_help(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit, match="no such file"):
        main(["precompute", str(tmp_path / "none.h5"), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as info:
        main(["precompute", "--help"])
    assert info.value.code == 0
    assert "--dataset" in capsys.readouterr().out
