"""Files: flow directories and catalogues; sampling inside a ball; the command line."""

from __future__ import annotations

import dp_flows
import h5py
import jax
import numpy as np
import pytest
from conftest import cond_gauss_sample
from dp_flows._cli import main


def test_save_load_round_trip(tmp_path, cond_flow):
    dp_flows.save_flow(cond_flow, tmp_path / "flow")
    assert sorted(p.name for p in (tmp_path / "flow").iterdir()) == [
        "hyperparameters.json",
        "model.eqx",
    ]
    loaded = dp_flows.load_flow(tmp_path / "flow")
    x, v = cond_gauss_sample(np.random.default_rng(5), 64)
    # Same leaves, same skeleton: identical arithmetic.
    np.testing.assert_array_equal(
        dp_flows.log_prob(loaded, v, x), dp_flows.log_prob(cond_flow, v, x)
    )
    with pytest.raises(FileNotFoundError, match="not a flow directory"):
        dp_flows.load_flow(tmp_path)


def test_wrong_inputs_to_inference(cond_flow):
    with pytest.raises(ValueError, match="conditional"):
        dp_flows.log_prob(cond_flow, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        dp_flows.log_prob(cond_flow, np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="condition must have shape"):
        dp_flows.grad_log_prob(cond_flow, np.zeros((4, 3)), np.zeros((5, 3)))


def test_sample_within_keeps_the_ball_and_is_a_function_of_the_key(spatial_flow):
    key = jax.random.key(4)
    s = dp_flows.sample_within(key, spatial_flow, 300, 2.0, batch_size=512, progress=False)
    assert s.shape == (300, 3) and (np.linalg.norm(s, axis=1) < 2.0).all()
    again = dp_flows.sample_within(key, spatial_flow, 300, 2.0, batch_size=512, progress=False)
    np.testing.assert_array_equal(s, again)
    # Round 0 draws max(n, 1024) samples with fold_in(key, 0); without a ball nothing is
    # dropped, so the first n of them are the result.
    free = dp_flows.sample_within(key, spatial_flow, 300, batch_size=512, progress=False)
    first = dp_flows.sample(jax.random.fold_in(key, 0), spatial_flow, 1024, batch_size=512)
    np.testing.assert_array_equal(free, first[:300])
    # With the ball, round 0's samples inside it come first, in order (the target has ~8 % of
    # its mass inside r < 2: ~80 of 1024, so later rounds fill the rest).
    inside = first[np.linalg.norm(first, axis=1) < 2.0]
    assert 0 < len(inside) < 300
    np.testing.assert_array_equal(s[: len(inside)], inside)
    with pytest.raises(RuntimeError, match="almost no mass inside"):
        dp_flows.sample_within(key, spatial_flow, 10, 1e-6, max_rounds=2, progress=False)


def test_sample_within_refuses_a_conditional_flow(cond_flow):
    with pytest.raises(ValueError, match="unconditional"):
        dp_flows.sample_within(jax.random.key(0), cond_flow, 4, 1.0)


def _catalog(path, n=1024, *, nan_rows=0, drop=None):
    x, v = cond_gauss_sample(np.random.default_rng(7), n)
    x[:nan_rows] = np.nan
    with h5py.File(path, "w") as f:
        f.attrs["schema"], f.attrs["units"] = "dp-catalog/1", "kpc, km/s"
        for name, a in {"x": x, "v": v, "selection": np.full(n, 0.5)}.items():
            if name != drop:
                f.create_dataset(f"stars/{name}", data=a)
    return path


def test_catalog_validation(tmp_path):
    with pytest.raises(ValueError, match=r"'/stars/x' has 3 rows with NaN"):
        dp_flows.read_catalog_arrays(_catalog(tmp_path / "a.h5", nan_rows=3), ["/stars/x"])
    with pytest.raises(KeyError, match="'/stars/v' is missing"):
        dp_flows.read_catalog_arrays(_catalog(tmp_path / "b.h5", drop="v"), ["/stars/v"])
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["stars/x"] = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"'/stars/x' must have shape \(N, 3\)"):
        dp_flows.read_catalog_arrays(tmp_path / "c.h5", ["/stars/x"])
    assert (
        main(["fit", str(tmp_path / "b.h5"), "--flow", "conditional", "--out", str(tmp_path / "f")])
        == 2
    )


@pytest.mark.slow
def test_cli_fit(tmp_path, capsys):
    cat = _catalog(tmp_path / "cat.h5")
    cfg = tmp_path / "flow.toml"
    cfg.write_text(
        "[flow]\nwidth = 16\ndepth = 1\ntime_embedding_dim = 4\nbatch_size = 256\n"
        "n_epochs = 2\nwarmup_steps = 2\n"
    )
    for kind in ("spatial", "conditional"):
        rc = main(
            [
                "fit",
                str(cat),
                "--flow",
                kind,
                "--out",
                str(tmp_path / kind),
                "--config",
                str(cfg),
                "--weights-from-selection",
                "--quiet",
            ]
        )
        assert rc == 0
        assert (tmp_path / kind / "model.eqx").is_file()
        assert (tmp_path / kind / "history.json").is_file()
    cfg.write_text("[flow]\nwidht = 3\n")
    assert (
        main(
            [
                "fit",
                str(cat),
                "--flow",
                "spatial",
                "--out",
                str(tmp_path / "z"),
                "--config",
                str(cfg),
            ]
        )
        == 2
    )
    assert "widht" in capsys.readouterr().err


def test_cli_gradients_points_to_its_new_home(tmp_path, capsys):
    """gradients.h5 is dp-cbe's format: ``dp-flows gradients`` says where the command went."""
    argv = ["gradients", "--method", "conditional", "--conditional", str(tmp_path), "--n", "8",
            "--out", str(tmp_path / "g.h5")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "moved to deep-potential gradients" in err
    assert not (tmp_path / "g.h5").exists()
