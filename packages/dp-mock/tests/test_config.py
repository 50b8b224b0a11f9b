"""MockConfig: presets, strict from_dict, TOML, CLI."""

import dataclasses

import numpy as np
import pytest
from dp_mock import MockConfig, preset, read_catalog
from dp_mock._cli import main


def test_presets():
    paper = preset("paper")
    assert paper.n_observed == 2**22 and paper.dust and paper.dust_grid == 128
    assert (paper.b, paper.gm, paper.r_max, paper.m_max) == (10.0, 1.0e7, 8.0, 18.0)
    # GM/b = (1000 km/s)²; M ≈ 2.325e12 M☉ (the paper's mock; docs/design.md §5).
    assert paper.gm / paper.b == 1000.0**2 and abs(paper.gm / paper.G / 2.325e12 - 1) < 1e-3
    free = preset("paper-dustfree")
    assert not free.dust and free.m_max == 20.0 and free.n_observed == round(3.52 * 2**22)
    demo = preset("demo")
    assert demo.n_observed == 2**17 and demo.dust
    with pytest.raises(ValueError, match="unknown preset"):
        preset("nope")


def test_from_dict_round_trip_and_errors():
    cfg = MockConfig(n_observed=10, seed=3)
    assert MockConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 4  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['bogus'\]"):
        MockConfig.from_dict({"bogus": 1})
    for key in ("b", "gm", "r_max", "mag_std", "dust_extent"):
        with pytest.raises(ValueError, match=f"MockConfig.{key} must be a finite number > 0"):
            MockConfig.from_dict({key: -1.0})
    with pytest.raises(ValueError, match=r"MockConfig.m_max = -30.0 observes essentially nothing"):
        MockConfig.from_dict({"m_max": -30.0})
    with pytest.raises(ValueError, match="n_observed must be an integer"):
        MockConfig.from_dict({"n_observed": 1.5})
    with pytest.raises(ValueError, match="dust_grid must be an even integer"):
        MockConfig.from_dict({"dust_grid": 33})
    with pytest.raises(ValueError, match="dust_extent"):
        MockConfig.from_dict({"dust_extent": 4.0})
    with pytest.raises(ValueError, match="finite"):
        MockConfig.from_dict({"b": float("nan")})


def test_toml(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("m_max = 19\nn_observed = 500\ndust = false\n")
    cfg = MockConfig.from_toml(p, base=preset("demo"))
    assert (cfg.m_max, cfg.n_observed, cfg.dust, cfg.chunk_size) == (19.0, 500, False, 2**19)
    p.write_text("typo_key = 1\n")
    with pytest.raises(ValueError, match="typo_key"):
        MockConfig.from_toml(p)


def test_cli_generate_and_plot(tmp_path, capsys):
    toml = tmp_path / "small.toml"
    toml.write_text("dust_grid = 32\nchunk_size = 8192\n")
    out = tmp_path / "cat.h5"
    rc = main(
        [
            "generate",
            "--preset",
            "demo",
            "--config",
            str(toml),
            "--n-observed",
            "700",
            "--seed",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0 and read_catalog(out)["x"].shape == (700, 3)
    # Bad input: a clear message and exit code 2, nothing written.
    toml.write_text("m_max = -40\n")
    bad = tmp_path / "bad.h5"
    rc = main(["generate", "--config", str(toml), "--out", str(bad), "--quiet"])
    assert rc == 2 and not bad.exists()
    assert "m_max" in capsys.readouterr().err
    assert np.isfinite(read_catalog(out)["v"]).all()
    pytest.importorskip("matplotlib", reason='plotting needs the "dp-mock[plot]" extra')
    fig = tmp_path / "fig.png"
    assert main(["plot", str(out), "--out", str(fig), "--resolution", "48"]) == 0
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size > 10_000
