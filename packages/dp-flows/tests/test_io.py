"""Files: flow directories, catalogues, gradients.h5, and the command line."""

from __future__ import annotations

import dp_flows
import h5py
import numpy as np
import pytest
from conftest import cond_gauss_grads, cond_gauss_sample
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


def test_gradients_h5_round_trip(tmp_path, cond_flow, spatial_flow):
    x_obs, _ = cond_gauss_sample(np.random.default_rng(6), 500)
    d = dp_flows.make_gradients(
        "conditional",
        conditional=cond_flow,
        n=256,
        seed=3,
        positions=x_obs,
        uniform_fraction=0.25,
        r_max=3.0,
        batch_size=256,
        progress=False,
    )
    assert d["density"] == "p_v_given_x"
    r = np.linalg.norm(d["x"], axis=1)
    assert (r[:64] < 3.0).all()  # the uniform quarter comes first, inside r_max
    # Observed positions are drawn from the given ones.
    assert np.isin(d["x"][64:, 0], x_obs[:, 0]).all()
    tv, _ = cond_gauss_grads(d["x"], d["v"])
    rel = np.linalg.norm(d["dlnf_dv"] - tv, axis=1) / np.linalg.norm(tv, axis=1)
    assert np.median(rel) < 0.2  # same flow as test_gaussian (< 0.15 there) on fewer points
    path = dp_flows.write_gradients(tmp_path / "g.h5", **d)
    with h5py.File(path) as f:
        assert f.attrs["schema"] == "dp-gradients/1" and f.attrs["density"] == "p_v_given_x"
        assert "units" in f.attrs
        for k in ("x", "v", "dlnf_dx", "dlnf_dv"):
            np.testing.assert_array_equal(f[k][()], d[k])
    sel = dp_flows.make_gradients(
        "selection",
        conditional=cond_flow,
        spatial=spatial_flow,
        n=256,
        seed=3,
        batch_size=256,
        progress=False,
    )
    assert sel["density"] == "f_obs" and sel["x"].shape == (256, 3)
    # ∇ₓ ln f_obs = ∇ ln n_obs + ∇ₓ ln p: check the decomposition on the same points.
    dn, _ = dp_flows.grad_log_prob(spatial_flow, sel["x"], batch_size=256)
    _, dx = dp_flows.grad_log_prob(cond_flow, sel["v"], sel["x"], batch_size=256)
    np.testing.assert_allclose(sel["dlnf_dx"], dn + dx, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="needs the spatial flow"):
        dp_flows.make_gradients("vanilla", conditional=cond_flow, n=4)
    bad = {**d, "dlnf_dx": d["dlnf_dx"][:-1]}
    with pytest.raises(ValueError, match="dlnf_dx must have shape"):
        dp_flows.write_gradients(tmp_path / "bad.h5", **bad)


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
def test_cli_fit_and_gradients(tmp_path, capsys):
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
    out = tmp_path / "g.h5"
    rc = main(
        [
            "gradients",
            "--method",
            "vanilla",
            "--spatial",
            str(tmp_path / "spatial"),
            "--conditional",
            str(tmp_path / "conditional"),
            "--n",
            "64",
            "--batch-size",
            "64",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    with h5py.File(out) as f:
        assert f.attrs["density"] == "f" and f["dlnf_dv"].shape == (64, 3)
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
