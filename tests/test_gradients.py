"""Gradient sets from flows (`deep_potential.make_gradients`, ``deep-potential gradients``): the
glue between dp-flows (sampling, ∇ ln p) and dp-cbe (the methods, gradients.h5), which owns the
format alone."""

from __future__ import annotations

from pathlib import Path

import dp_cbe
import dp_flows
import dp_mock
import dp_ot
import h5py
import numpy as np
import pytest

import deep_potential
from deep_potential import make_gradients
from deep_potential._cli import main

# Tiny flows: every check here is an identity between functions of the same flows, so their
# accuracy does not matter (a few epochs of an 8-wide net).
_TINY = {"width": 8, "depth": 1, "batch_size": 256, "n_epochs": 2, "fixed_steps": 4}


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dp_flows.Flow | Path]:
    rng = np.random.default_rng(0)
    x = 2.0 * rng.normal(size=(2048, 3))
    v = 10.0 * x + 5.0 * rng.normal(size=(2048, 3))
    cond = dp_flows.FlowConfig(whiten="scalar", cond_log_r=False, **_TINY)
    out: dict[str, dp_flows.Flow | Path] = {
        "c1": dp_flows.fit_flow(v, condition=x, config=cond, seed=1, progress=False),
        "c2": dp_flows.fit_flow(v, condition=x, config=cond, seed=2, progress=False),
        "spatial": dp_flows.fit_flow(
            x, config=dp_flows.FlowConfig(**_TINY), seed=3, progress=False
        ),
    }
    d = tmp_path_factory.mktemp("flows")
    for name in ("c1", "spatial"):
        flow = out[name]
        assert isinstance(flow, dp_flows.Flow)
        dp_flows.save_flow(flow, d / name)
        out[f"{name}_dir"] = d / name
    return out


def test_conditional_points_and_gradients(flows) -> None:
    x_obs = np.random.default_rng(6).normal(size=(500, 3))
    g = make_gradients("conditional", conditional=flows["c1"], n=256, seed=3, positions=x_obs,
                       uniform_fraction=0.25, r_max=3.0, batch_size=256, progress=False)  # fmt: skip
    assert g.density == dp_cbe.DENSITY_OF_METHOD["conditional"] == "p_v_given_x"
    assert g.n_members == 1 and g.dlnf_dx_std is None
    assert (np.linalg.norm(g.x[:64], axis=1) < 3.0).all()  # the uniform quarter first, inside
    assert np.isin(g.x[64:, 0], x_obs[:, 0]).all()  # the rest drawn from the given positions
    dv, dx = dp_flows.grad_log_prob(flows["c1"], g.v, g.x, batch_size=256)
    # The same flow at the same points, batched alike: float32 round-off of the same solve.
    np.testing.assert_allclose(g.dlnf_dv, dv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g.dlnf_dx, dx, rtol=1e-5, atol=1e-6)
    again = make_gradients("conditional", conditional=flows["c1"], n=256, seed=3,
                           positions=x_obs, uniform_fraction=0.25, r_max=3.0, batch_size=256,
                           progress=False)  # fmt: skip
    np.testing.assert_array_equal(again.dlnf_dx, g.dlnf_dx)  # a function of the seed


def test_several_velocities_per_position(flows, tmp_path: Path) -> None:
    x_obs = np.random.default_rng(6).normal(size=(500, 3))
    g = make_gradients("conditional", conditional=[flows["c1"], flows["c2"]], n=256, seed=3,
                       positions=x_obs, uniform_fraction=0.25, r_max=3.0,
                       velocities_per_position=8, batch_size=256, progress=False)  # fmt: skip
    # 32 positions (8 of them uniform), each on 8 consecutive rows with 8 different velocities
    assert g.group_size == 8 and g.x.shape == (256, 3)
    xg = g.x.reshape(32, 8, 3)
    assert (xg == xg[:, :1]).all() and len(np.unique(xg[:, 0, 0])) == 32
    assert (np.linalg.norm(xg[:8, 0], axis=1) < 3.0).all()
    assert np.isin(xg[8:, 0, 0], x_obs[:, 0]).all()
    assert len(np.unique(g.v[:8, 0])) == 8
    # the group survives the ensemble members' sets and the file
    assert g.member_set(1).group_size == 8
    back = dp_cbe.read_gradients(dp_cbe.write_gradients(tmp_path / "g.h5", g.gradient_set()))
    assert back.group_size == 8
    with pytest.raises(ValueError, match="not a positive multiple of velocities_per_position"):
        make_gradients("conditional", conditional=flows["c1"], n=100, positions=x_obs,
                       velocities_per_position=8, progress=False)  # fmt: skip


@pytest.mark.parametrize("method", ["selection", "vanilla"])
def test_spatial_methods_add_the_spatial_gradient(flows, method: str) -> None:
    g = make_gradients(method, conditional=flows["c1"], spatial=flows["spatial"], n=256, seed=3,
                       r_max=4.0, batch_size=256, progress=False)  # fmt: skip
    assert g.density == dp_cbe.DENSITY_OF_METHOD[method]
    assert g.x.shape == (256, 3) and (np.linalg.norm(g.x, axis=1) < 4.0).all()
    # ∇ₓ ln f_obs = ∇ ln n_obs + ∇ₓ ln p (f likewise): the decomposition on the same points.
    dn, _ = dp_flows.grad_log_prob(flows["spatial"], g.x, batch_size=256)
    _, dx = dp_flows.grad_log_prob(flows["c1"], g.v, g.x, batch_size=256)
    np.testing.assert_allclose(g.dlnf_dx, dn + dx, rtol=1e-5, atol=1e-6)


def test_ensemble_mean_standard_errors_and_members(flows, tmp_path: Path) -> None:
    x_obs = np.random.default_rng(7).normal(size=(300, 3))
    same = make_gradients("conditional", conditional=[flows["c1"], flows["c1"]], n=200,
                          positions=x_obs, batch_size=256, progress=False)  # fmt: skip
    dv, dx = dp_flows.grad_log_prob(flows["c1"], same.v, same.x, batch_size=256)
    # Identical members: the robust mean is each member's value to float64 round-off.
    np.testing.assert_allclose(same.dlnf_dx, dx, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(same.dlnf_dv, dv, rtol=1e-6, atol=1e-9)
    assert same.dlnf_dx_std is not None and not same.dlnf_dx_std.any()

    g = make_gradients("selection", conditional=[flows["c1"], flows["c2"]],
                       spatial=flows["spatial"], n=200, r_max=4.0, batch_size=256,
                       progress=False)  # fmt: skip
    assert g.n_members == 2
    dn, _ = dp_flows.grad_log_prob(flows["spatial"], g.x, batch_size=256)
    for k, member in enumerate((flows["c1"], flows["c2"])):
        own = g.member_set(k)
        assert isinstance(own, dp_cbe.GradientSet) and own.dlnf_dx_std is None
        _, dx_k = dp_flows.grad_log_prob(member, g.v, g.x, batch_size=256)
        # each member's own ∇ₓ ln f_obs, spatial part included (same solves: round-off)
        np.testing.assert_allclose(own.dlnf_dx, dx_k + dn, rtol=1e-5, atol=1e-6)
    with pytest.raises(IndexError):
        g.member_set(2)
    path = dp_cbe.write_gradients(tmp_path / "g.h5", g.gradient_set())
    back = dp_cbe.read_gradients(path)
    assert back.dlnf_dx_std is not None and back.dlnf_dv_std is not None
    np.testing.assert_array_equal(back.dlnf_dx_std, g.dlnf_dx_std)
    assert (back.dlnf_dx_std > 0).any()  # two differently seeded flows disagree somewhere


def test_wrong_requests_are_refused(flows) -> None:
    with pytest.raises(ValueError, match="needs the spatial flow"):
        make_gradients("vanilla", conditional=flows["c1"], n=4)
    with pytest.raises(ValueError, match=r"method must be one of \('vanilla', 'selection'"):
        make_gradients("flat", conditional=flows["c1"], n=4)
    with pytest.raises(ValueError, match="uniform_fraction > 0 needs r_max"):
        make_gradients("conditional", conditional=flows["c1"], n=4, positions=np.zeros((2, 3)),
                       uniform_fraction=0.5, uniform_support="ball")  # fmt: skip
    with pytest.raises(ValueError, match="need more than k = 8 >= 1 stars, got 2"):
        make_gradients("conditional", conditional=flows["c1"], n=4, positions=np.zeros((2, 3)),
                       uniform_fraction=0.5)  # fmt: skip
    with pytest.raises(ValueError, match="uniform_support = 'stars' needs positions"):
        make_gradients("conditional", conditional=flows["c1"], spatial=flows["spatial"], n=4,
                       uniform_fraction=0.5, uniform_support="stars", r_max=3.0)  # fmt: skip
    with pytest.raises(ValueError, match="uniform_support must be 'stars' or 'ball'"):
        make_gradients("conditional", conditional=flows["c1"], n=4, positions=np.zeros((2, 3)),
                       uniform_support="cube")  # fmt: skip
    # the default fraction says what to change when the catalogue is too small for it
    with pytest.raises(ValueError, match=r"uniform_fraction = 0.25 .* pass uniform_fraction=0"):
        make_gradients("conditional", conditional=flows["c1"], n=4, positions=np.zeros((2, 3)))
    single = make_gradients("conditional", conditional=flows["c1"], n=4, uniform_fraction=0.0,
                            positions=np.zeros((2, 3)), progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="not an ensemble"):
        single.member_set(0)


def _catalog(path: Path) -> Path:
    x = np.random.default_rng(8).normal(size=(100, 3))
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "dp-catalog/1"
        f["stars/x"], f["stars/v"] = x, 10 * x
    return path


def test_cli_writes_a_set_dp_cbe_reads(flows, tmp_path: Path, capsys) -> None:
    out = tmp_path / "g.h5"
    argv = ["gradients", "--method", "vanilla", "--spatial", str(flows["spatial_dir"]),
            "--conditional", str(flows["c1_dir"]), "--n", "64", "--batch-size", "64",
            "--r-max", "4", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out == f"64 gradients of ln f written to {out}\n"
    gs = dp_cbe.read_gradients(out)
    assert gs.density == "f" and gs.dlnf_dv.shape == (64, 3)
    cat = _catalog(tmp_path / "cat.h5")
    argv = ["gradients", "--method", "conditional", "--conditional", str(flows["c1_dir"]),
            "--catalog", str(cat), "--n", "32", "--out", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0
    gs = dp_cbe.read_gradients(out)
    with h5py.File(cat) as f:
        stars = f["stars/x"][:]
    # By default a quarter of the positions (8 of 32, first) are uniform in the volume the
    # stars fill, the rest are the catalogue's stars.
    assert not np.isin(gs.x[:8, 0], stars[:, 0]).any() and np.isin(gs.x[8:, 0], stars[:, 0]).all()
    assert ((gs.x[:8] >= stars.min(0)) & (gs.x[:8] <= stars.max(0))).all()
    assert main([*argv, "--uniform-fraction", "0"]) == 0
    assert np.isin(dp_cbe.read_gradients(out).x[:, 0], stars[:, 0]).all()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-size", "0"], "argument --batch-size: must be >= 1"),
        (["--r-max", "-3"], "argument --r-max: must be a finite number of kpc > 0"),
        (["--r-max", "nan"], "argument --r-max: must be a finite number of kpc > 0"),
        (["--n", "0"], "argument --n: must be >= 1"),
        (["--uniform-fraction", "1.5"], "argument --uniform-fraction: must be in [0, 1]"),
        (["--seed", "-1"], "argument --seed: must be >= 0"),
        (["--method", "flat"], "argument --method: invalid choice: 'flat' (choose from 'vanilla'"),
    ],
)
def test_cli_refuses_impossible_values(tmp_path: Path, capsys, extra: list[str], message: str):
    argv = ["gradients", "--method", "conditional", "--conditional", str(tmp_path), "--n", "10",
            "--out", str(tmp_path / "g.h5"), *extra]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_cli_out_of_the_wrong_kind(tmp_path: Path, capsys) -> None:
    cat = _catalog(tmp_path / "cat.h5")
    base = ["gradients", "--method", "conditional", "--conditional", str(tmp_path), "--n", "1"]
    assert main([*base, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main([*base, "--catalog", str(cat), "--out", str(cat)]) == 2
    assert "is the input catalogue" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "g.h5")]) == 2  # no flow in that folder
    err = capsys.readouterr().err
    assert err.startswith("deep-potential gradients: error: ") and err.count("\n") == 1
    assert not (tmp_path / "g.h5").exists()


def test_one_owner_of_the_format_and_one_table_of_methods() -> None:
    """gradients.h5 has one writer (dp-cbe's); the pipeline's methods are dp-cbe's table."""
    modules = (dp_mock, dp_ot, dp_flows, dp_cbe, deep_potential)
    holders = sorted(
        f"{m.__name__}/{p.name}"
        for m in modules
        for p in Path(str(m.__file__)).parent.glob("*.py")
        if '"dp-gradients/1"' in p.read_text()  # the schema as a string literal
    )
    assert holders == ["dp_cbe/_io.py"]
    assert not hasattr(dp_flows, "write_gradients") and not hasattr(dp_flows, "make_gradients")
    assert (
        deep_potential.load_config(Path(__file__).with_name("tiny.toml")).methods == dp_cbe.METHODS
    )


def test_uniform_in_stars_fills_the_stars_volume_only() -> None:
    """An offset survey sphere (radius 2 kpc around (8, 0, 0)) with an empty hole of radius
    0.7 kpc at its centre: the points fill the sphere uniformly and leave the hole (beyond
    the stars' reach) empty; the same generator seed gives the same points."""
    from scipy import stats

    rng = np.random.default_rng(1)
    c = np.array([8.0, 0.0, 0.0])
    d = rng.normal(size=(40000, 3))
    stars = c + d / np.linalg.norm(d, axis=1, keepdims=True) * 2.0 * rng.uniform(
        size=(40000, 1)
    ) ** (1 / 3)
    stars = stars[np.linalg.norm(stars - c, axis=1) > 0.7]
    x = deep_potential.uniform_in_stars(np.random.default_rng(5), stars, 20000)
    r = np.linalg.norm(x - c, axis=1)
    assert x.shape == (20000, 3)
    assert r.max() < 2.3 and (r > 2.0).mean() < 0.2  # a reach's margin past the outermost
    assert (r < 0.5).sum() == 0  # the hole's centre is beyond every star's reach
    # Between the hole's rim and the sphere's edge, uniform in volume: r³ is uniform there.
    sel = r[(r > 0.8) & (r < 1.9)] ** 3
    assert stats.kstest(sel, stats.uniform(0.8**3, 1.9**3 - 0.8**3).cdf).pvalue > 1e-3
    again = deep_potential.uniform_in_stars(np.random.default_rng(5), stars, 20000)
    np.testing.assert_array_equal(again, x)
    inside = deep_potential.uniform_in_stars(np.random.default_rng(5), stars, 1000, r_max=8.5)
    assert (np.linalg.norm(inside, axis=1) < 8.5).all()  # and inside the ball when given
    with pytest.raises(ValueError, match="stars must have shape"):
        deep_potential.uniform_in_stars(rng, stars[:, :2], 10)
    with pytest.raises(ValueError, match="NaN/inf"):
        deep_potential.uniform_in_stars(rng, np.full((20, 3), np.nan), 10)
