"""Oracle gradient sets (the mock's exact DF gradients at flow-drawn points) satisfy the CBE."""

from __future__ import annotations

from pathlib import Path

import dp_mock
import numpy as np
import pytest

from deep_potential._stages import oracle_gradients


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory):
    cfg = dp_mock.MockConfig.from_dict({"n_observed": 256, "dust_grid": 16, "chunk_size": 4096})
    path = dp_mock.generate_catalog(cfg, tmp_path_factory.mktemp("m") / "c.h5", progress=False)
    return dp_mock.load_truth(Path(path)), dp_mock.read_catalog(path)


@pytest.mark.parametrize("density", ["f", "f_obs", "p_v_given_x"])
def test_oracle_sets_are_stationary(truth, density: str) -> None:
    tr, stars = truth
    x, v = np.asarray(stars["x"]), np.asarray(stars["v"])
    # add a few unbound / out-of-volume rows a flow might produce: they must be dropped
    x_bad = np.array([[0.0, 0.0, 9.0], [1.0, 0.0, 0.0]])
    v_bad = np.array([[0.0, 0.0, 0.0], [5000.0, 0.0, 0.0]])
    o = oracle_gradients(np.vstack([x, x_bad]), np.vstack([v, v_bad]), density, tr)
    assert o.density == density and o.x.shape == o.dlnf_dx.shape == (len(x), 3)
    a = np.asarray(tr.acceleration(o.x))
    # stationary CBE: r = ∇Φ·∇_v ln f − v·∇_x ln f with ∇Φ = −a; f_obs adds +v·∇ln S back, and
    # p(v|x) misses −v·∇ln n = −v·(5∇Φ/Φ) (n ∝ (−Φ)^5), both of which we restore here.
    r = -(a * o.dlnf_dv).sum(1) - (o.v * o.dlnf_dx).sum(1)
    if density == "f_obs":
        grad_ln_s = o.dlnf_dx - np.asarray(tr.grad_log_f(o.x, o.v)[0])
        r = r + (o.v * grad_ln_s).sum(1)
    if density == "p_v_given_x":
        phi = np.asarray(tr.potential(o.x))
        r = r - (o.v * (5 * (-a) / phi[:, None])).sum(1)
    scale = np.abs(a * o.dlnf_dv).sum(1) + np.abs(o.v * o.dlnf_dx).sum(1)
    # closed forms: residual at round-off (1e-8 of the terms' size is generous for float64)
    assert np.max(np.abs(r) / scale) < 1e-8


def test_oracle_selection_gradient_matches_finer_step(truth) -> None:
    """∇ln S_true by central differences is converged: h = 1e-3 vs 5e-4 kpc agree to 1 %."""
    tr, stars = truth
    x, v = np.asarray(stars["x"]), np.asarray(stars["v"])
    a = oracle_gradients(x, v, "f_obs", tr, h=1e-3)
    b = oracle_gradients(x, v, "f_obs", tr, h=5e-4)
    n = min(len(a.x), len(b.x))
    assert np.allclose(a.x[:n], b.x[:n])
    d = np.linalg.norm(a.dlnf_dx[:n] - b.dlnf_dx[:n], axis=1)
    # S_true is piecewise smooth (trilinear dust per cell): a kink can sit inside a stencil, so
    # judge the median (O(h²) truncation ≪ 1 %)
    assert np.median(d / np.linalg.norm(a.dlnf_dx[:n], axis=1)) < 0.01


def test_oracle_drops_whole_groups(truth) -> None:
    # Groups of 4 velocities per position: one unbound velocity drops its whole group, so the
    # set stays grouped (dp-cbe's profiled conditional fit needs whole groups).
    tr, stars = truth
    x = np.repeat(np.asarray(stars["x"])[:8], 4, axis=0)
    v = np.asarray(tr.sample_velocities(1, x))
    v[5] = [5000.0, 0.0, 0.0]  # the second group's second velocity: beyond escape
    o = oracle_gradients(x, v, "p_v_given_x", tr, group_size=4)
    assert o.group_size == 4 and len(o) == 28
    assert o.exact  # closed-form gradients: dp-cbe's fit takes its exact-gradient settings
    np.testing.assert_array_equal(o.x, np.delete(x, np.s_[4:8], axis=0))
