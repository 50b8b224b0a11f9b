"""Guards: hopeless configurations, bounded sampling, one-line CLI errors, output modes."""

import json
import os
import stat

import numpy as np
import pytest
from dp_mock import MockConfig, _catalog, generate_catalog, write_catalog
from dp_mock._cli import main

TINY = MockConfig(n_observed=200, chunk_size=2**12, dust_grid=8, seed=1)


def test_opaque_dust_is_refused_up_front(tmp_path):
    # dust_mean = 12: ρ_dust ~ e¹² mag/kpc, so S ≈ 0 everywhere; the configuration itself passes
    # validation (its dust-free fraction is fine), generation must refuse it before drawing.
    opaque = TINY.replace(dust_mean=12.0)
    with pytest.raises(ValueError, match=r"observes essentially nothing.*fraction .*e-"):
        generate_catalog(opaque, tmp_path / "c.h5", progress=False)
    assert not (tmp_path / "c.h5").exists()


def test_opaque_dust_cli_one_line(tmp_path, capsys):
    cfg = tmp_path / "opaque.toml"
    cfg.write_text("dust_mean = 12.0\ndust_grid = 8\nchunk_size = 4096\n")
    assert main(["generate", "--config", str(cfg), "--n-observed", "100",
                 "--out", str(tmp_path / "c.h5"), "--quiet"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "observes essentially nothing" in err


def test_sampling_loop_is_bounded(tmp_path, monkeypatch):
    # Pretend the estimate is 50x too optimistic: the loop stops after 20x the draws the
    # estimate needs (2 chunks here) instead of running to a million chunks.
    monkeypatch.setattr(_catalog, "expected_observed_fraction", lambda truth: 50.0)
    with pytest.raises(RuntimeError, match=r"of 3000 stars observed after drawing \d+ \(2 chunks"):
        generate_catalog(TINY.replace(n_observed=3000), tmp_path / "c.h5", progress=False)


def test_expected_fraction_matches_truth():
    truth = _catalog.Truth(TINY)
    # 2¹⁴ vs 2¹⁸ MC points of the same smooth S: a few % relative at most (S is a probability,
    # mean ~ 0.15, per-point std < 0.5, so the 2¹⁴ estimate's relative error is < 3 %).
    assert abs(_catalog.expected_observed_fraction(truth) / truth.observed_fraction() - 1) < 0.05


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_catalog_honours_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = generate_catalog(TINY, tmp_path / "c.h5", progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_cli_refuses_impossible_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plot", str(tmp_path / "c.h5"), "--out", str(tmp_path / "f.png"),
              "--resolution", "0"])  # fmt: skip
    assert exc.value.code == 2 and "--resolution must be >= 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--n-observed", "0", "--out", str(tmp_path / "c.h5")])
    assert exc.value.code == 2 and "--n-observed must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # an existing folder where the file should go
        main(["generate", "--n-observed", "10", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "is a folder" in capsys.readouterr().err


def test_cli_bad_inputs_are_one_line_errors(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason='plotting needs the "dp-mock[plot]" extra')
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5\n")
    assert main(["plot", str(text), "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert err == f"dp-mock: error: {text} is not an HDF5 file\n"
    empty = tmp_path / "empty.h5"
    config = json.dumps(TINY.replace(dust=False).to_dict())
    write_catalog(empty, {"x": np.zeros((0, 3)), "v": np.zeros((0, 3))},
                  truth_attrs={"config": config})  # fmt: skip
    assert main(["plot", str(empty), "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no stars" in err
