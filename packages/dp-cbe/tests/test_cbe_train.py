"""Training machinery: save/load, checkpoint resume, determinism, NaN stop, data parallelism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import _cbe_oracle as oracle
import dp_cbe
import numpy as np
import pytest

# Tiny fits: the point is the machinery, not accuracy (recovery is in test_recovery.py); they
# stop at n_steps long before the stopping rule can hold, so their ConvergenceWarning is expected.
pytestmark = pytest.mark.filterwarnings("ignore::dp_cbe.ConvergenceWarning")
TINY = dict(phi_width=16, phi_depth=1, n_width=16, n_depth=1, batch_size=128, n_steps=40,
            eval_every=20, checkpoint_every=20, val_batches=2, warmup_steps=5)  # fmt: skip


@pytest.fixture(scope="module")
def conditional_set() -> dp_cbe.GradientSet:
    return dp_cbe.GradientSet(**oracle.gradients("conditional", 3, 1024))


@pytest.fixture(scope="module")
def fitted(conditional_set: dp_cbe.GradientSet, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("model")
    sol = dp_cbe.fit(conditional_set, config=dp_cbe.FitConfig(**TINY), out_dir=out, progress=False)
    return sol, out


def test_solution_shapes_and_units(fitted) -> None:
    sol, _ = fitted
    assert sol.method == "conditional"
    for n in (1, 5000):  # 5000 crosses the 4096-point evaluation batch
        x = np.random.default_rng(n).normal(size=(n, 3)) * 3
        assert sol.potential(x).shape == (n,) and sol.density(x).shape == (n,)
        assert sol.acceleration(x).shape == (n, 3) and sol.ln_n(x).shape == (n,)
        assert sol.potential(x).dtype == np.float64
    with pytest.raises(AttributeError, match="selection"):
        sol.ln_selection(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        sol.potential(np.zeros((4, 2)))
    # −∇Φ against central finite differences of Φ (gala's check); h = 0.01 kpc, float32 Φ
    # of magnitude ~1e5 (km/s)² limits the difference to ~1e-2·|Φ|·1e-7/h relative ≈ 1e-3.
    x = np.array([[1.0, 2.0, -1.5], [4.0, -3.0, 2.0]])
    h = 0.05
    fd = np.stack([(sol.potential(x + h * e) - sol.potential(x - h * e)) / (2 * h)
                   for e in np.eye(3)], axis=1)  # fmt: skip
    np.testing.assert_allclose(-sol.acceleration(x), fd, rtol=0.02, atol=0.02 * np.abs(fd).max())


def test_save_load_round_trip(fitted, tmp_path: Path) -> None:
    sol, out = fitted
    loaded = dp_cbe.load_model(out)
    x = np.random.default_rng(0).normal(size=(100, 3)) * 3
    for q in ("potential", "acceleration", "density", "ln_n"):
        np.testing.assert_array_equal(getattr(loaded, q)(x), getattr(sol, q)(x))  # same bits
    hyper = json.loads((out / "hyperparameters.json").read_text())
    assert hyper["method"] == "conditional" and hyper["config"]["n_steps"] == 40
    assert hyper["seed"] == 0  # fit's default seed
    sol.save(tmp_path / "copy")
    np.testing.assert_array_equal(dp_cbe.load_model(tmp_path / "copy").density(x), sol.density(x))
    with pytest.raises(FileNotFoundError, match=r"model\.eqx"):
        dp_cbe.load_model(tmp_path)


def test_checkpoint_resume_matches_uninterrupted(conditional_set, fitted, tmp_path: Path) -> None:
    sol, _ = fitted
    cfg = dp_cbe.FitConfig(**TINY)

    def interrupt(step: int, model: object) -> None:  # Ctrl-C right after step 20's checkpoint
        if step >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dp_cbe.fit(conditional_set, config=cfg, seed=0, out_dir=tmp_path, progress=False,
                   callback=interrupt)  # fmt: skip
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == 20
    resumed = dp_cbe.fit(conditional_set, config=cfg, out_dir=tmp_path, progress=False)
    x = np.random.default_rng(1).normal(size=(64, 3)) * 3
    # Same seed → same minibatches and same float ops on CPU: identical to rounding.
    np.testing.assert_allclose(resumed.acceleration(x), sol.acceleration(x), rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="different fit"):
        dp_cbe.fit(conditional_set, config=cfg, seed=1, out_dir=tmp_path, progress=False)


def test_mixture_and_extent_options_fit_save_and_load(conditional_set, tmp_path: Path) -> None:
    cfg = dp_cbe.FitConfig(**TINY, phi_mixture=4, phi_mixture_mass=0.5, aux_scale="extent")
    sol = dp_cbe.fit(conditional_set, config=cfg, seed=2, out_dir=tmp_path, progress=False)
    hyper = json.loads((tmp_path / "hyperparameters.json").read_text())
    assert hyper["seed"] == 2  # the seed given, recorded so that the fit can be repeated
    mix, aux = hyper["phi"]["mixture"], hyper["aux"]
    assert mix["n"] == 4 and 0 < mix["r_min"] < mix["r_max"] and mix["mass"] > 0
    assert aux["in_scale"] >= hyper["phi"]["in_scale"]  # the extent is never below the spread
    assert sol.model.phi.mixture is not None
    x = np.random.default_rng(2).normal(size=(64, 3)) * 3
    loaded = dp_cbe.load_model(tmp_path)
    for q in ("acceleration", "density", "ln_n"):
        np.testing.assert_array_equal(getattr(loaded, q)(x), getattr(sol, q)(x))


def test_profiled_fit_needs_groups_and_keeps_whole_groups_together(
    conditional_set, tmp_path: Path
) -> None:
    cfg = dp_cbe.FitConfig(**TINY, ln_n_gradient="profile")
    with pytest.raises(ValueError, match=r"groups of >= 4 velocities.*group_size is 1"):
        dp_cbe.fit(conditional_set, config=cfg, progress=False)
    grouped = dp_cbe.GradientSet(**oracle.gradients("conditional", 3, 1024, group=8))
    with pytest.raises(ValueError, match="batch_size 100 is not a multiple of group_size 8"):
        dp_cbe.fit(grouped, config=dp_cbe.FitConfig(**dict(TINY, batch_size=100)),
                   progress=False)  # fmt: skip
    seen: list[dp_cbe.PotentialSolution] = []
    sol = dp_cbe.fit(grouped, config=cfg, out_dir=tmp_path, progress=False,
                     callback=lambda step, m: seen.append(m))  # fmt: skip
    assert len(seen) == 2 and sol.history["steps"] == 40
    x = np.random.default_rng(2).normal(size=(64, 3)) * 3
    loaded = dp_cbe.load_model(tmp_path)
    for q in ("acceleration", "density", "ln_n"):  # ln n is fitted beside Φ
        np.testing.assert_array_equal(getattr(loaded, q)(x), getattr(sol, q)(x))
    # Same seed, same model; the network path on the same grouped set is another fit.
    again = dp_cbe.fit(grouped, config=cfg, progress=False)
    np.testing.assert_array_equal(again.acceleration(x), sol.acceleration(x))
    network = dp_cbe.fit(grouped, config=dp_cbe.FitConfig(**TINY), progress=False)
    assert not np.array_equal(network.acceleration(x), sol.acceleration(x))
    # An exact grouped set takes the exact-gradient recipe by itself (FitConfig.resolved):
    # the same model as those settings given explicitly, and the model records them.
    exact = dp_cbe.GradientSet(**oracle.gradients("conditional", 3, 1024, group=8), exact=True)
    auto = dp_cbe.fit(exact, config=dp_cbe.FitConfig(**TINY), out_dir=tmp_path / "auto",
                      progress=False)  # fmt: skip
    explicit = dp_cbe.FitConfig(**TINY, ln_n_gradient="profile", phi_mixture=16,
                                phi_mixture_mass=1.0, radial_balance=1.0)  # fmt: skip
    np.testing.assert_array_equal(
        auto.acceleration(x), dp_cbe.fit(exact, config=explicit, progress=False).acceleration(x)
    )
    recorded = json.loads((tmp_path / "auto" / "hyperparameters.json").read_text())["config"]
    assert (recorded["ln_n_gradient"], recorded["phi_mixture"], recorded["radial_balance"]) == (
        "profile", 16, 1.0,
    )  # fmt: skip


def test_residual_loss_is_a_choice_recorded_with_the_model(conditional_set, fitted) -> None:
    """``FitConfig.residual_loss``: automatic, least squares for a flow's (not exact)
    conditional set, the robust asinh term otherwise; an explicit choice is kept, gives a
    different model, and the model records which loss it was fitted with."""
    sol, out = fitted
    recorded = json.loads((out / "hyperparameters.json").read_text())["config"]
    assert not conditional_set.exact and recorded["residual_loss"] == "l2"
    x = np.array([[1.0, 2.0, 0.5], [6.0, -3.0, 1.0]])
    asinh = dp_cbe.fit(conditional_set, config=dp_cbe.FitConfig(**TINY, residual_loss="asinh"),
                       progress=False)  # fmt: skip
    assert asinh.hyperparameters["config"]["residual_loss"] == "asinh"
    assert not np.array_equal(asinh.acceleration(x), sol.acceleration(x))
    cfg = dp_cbe.FitConfig()
    assert cfg.resolved(exact=True, group_size=1, method="conditional").residual_loss == "asinh"
    assert cfg.resolved(exact=False, group_size=1, method="vanilla").residual_loss == "asinh"
    with pytest.raises(ValueError, match="unknown method 'Conditional'"):
        cfg.resolved(exact=False, group_size=1, method="Conditional")


def test_non_finite_loss_says_what_to_change(conditional_set) -> None:
    cfg = dp_cbe.FitConfig(**dict(TINY, learning_rate=1e30, warmup_steps=0, grad_clip=0.0))
    with pytest.raises(FloatingPointError, match="Lower learning_rate"):
        dp_cbe.fit(conditional_set, config=cfg, progress=False)


def test_two_devices_match_one(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import jax, dp_cbe, _cbe_oracle as oracle
        assert len(jax.devices()) == 2, jax.devices()
        gs = dp_cbe.GradientSet(**oracle.gradients("vanilla", 5, 1024))
        x = oracle.sample(6, 256)[0]
        out = []
        for nd in (1, 2):
            cfg = dp_cbe.FitConfig(**{TINY!r}, n_devices=nd)
            out.append(dp_cbe.fit(gs, config=cfg, progress=False).acceleration(x))
        np.save({str(tmp_path / "acc.npy")!r}, np.stack(out))
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")  # fmt: skip
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    one, two = np.load(tmp_path / "acc.npy")
    # Only the order of the batch-mean reduction differs (float32, ~1e-7 relative per step);
    # after 40 Adam steps the fields agree to ~1e-5 relative. 1e-3 relative is a wide margin,
    # and far below the ~10 % that a wrong sharding (e.g. half the batch ignored) would give.
    np.testing.assert_allclose(two, one, rtol=1e-3, atol=1e-3 * np.abs(one).max())
