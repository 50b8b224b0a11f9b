"""The three CBE losses vanish on the analytic truth and not elsewhere."""

from __future__ import annotations

import _cbe_oracle as oracle
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dp_cbe._losses import Batch, LossSettings, data_loss, residual, residual_penalty

GM_INT = oracle.GM / 100.0**2  # internal units: kpc, 100 km/s, G = 1


def phi_true(x: jax.Array, gm: float = GM_INT) -> jax.Array:
    return -gm / jnp.sqrt(jnp.sum(x * x) + oracle.B**2)


def ln_n_true(x: jax.Array) -> jax.Array:
    return 5 * jnp.log(-phi_true(x))


def ln_s_true(x: jax.Array) -> jax.Array:
    r2 = jnp.sum(x * x)
    u = (oracle.R0 - jnp.sqrt(r2 + 1.0)) / oracle.W
    return jax.nn.log_sigmoid(u) + oracle.A * (x[0] ** 2 - x[1] ** 2 + x[0] * x[2]) / (
        r2 + oracle.C**2
    )


AUX = {"vanilla": None, "selection": ln_s_true, "conditional": ln_n_true}


def _loss(phi, aux, method: str, settings: LossSettings, batch: Batch):
    return jax.jit(lambda b: data_loss(phi, aux, method, settings, b))(batch)


def _batch(method: str) -> Batch:
    g = oracle.gradients(method, 7, 2048)
    cols = [g["x"], g["v"] / 100.0, g["dlnf_dx"], g["dlnf_dv"] * 100.0, np.zeros(2048)]
    return Batch(*(jnp.asarray(c, jnp.float32) for c in cols))


@pytest.mark.parametrize("method", ["vanilla", "selection", "conditional"])
def test_loss_on_truth_is_zero(method: str) -> None:
    batch = _batch(method)
    settings = LossSettings()
    loss, parts = _loss(phi_true, AUX[method], method, settings, batch)
    # r is a difference of O(0.1–1) float32 terms: rounding leaves |r| ~ 1e-6; the density
    # penalty is exactly 0 (Plummer ρ > 0) and λ_S = 0.
    assert float(loss) < 1e-5, parts
    assert float(parts[1]) == 0.0
    # A 2 % wrong GM is detected: the loss grows by orders of magnitude.
    wrong, _ = _loss(lambda x: phi_true(x, 1.02 * GM_INT), AUX[method], method, settings, batch)
    assert float(wrong) > 100 * float(loss) and float(wrong) > 1e-3


def test_residual_sign_convention() -> None:
    # r = ∇Φ·∇_v ln f − v·∇_x ln f (+ v·∇ln S for selection, − v·∇ln n for conditional).
    e = jnp.eye(3)
    assert float(residual(e[0], e[1], e[1], e[0], None, "vanilla")) == 0.0
    assert float(residual(2 * e[0], e[1], 0 * e[0], e[0], None, "vanilla")) == 2.0
    assert float(residual(0 * e[0], e[1], 0 * e[0], e[0], e[1], "selection")) == 1.0
    assert float(residual(0 * e[0], e[1], 0 * e[0], e[0], e[1], "conditional")) == -1.0


def test_negative_density_penalty() -> None:
    # Φ = +|x|²/2 has ∇²Φ = 3 > 0 (no penalty); Φ = −|x|²/2 has ∇²Φ = −3: penalty asinh(3).
    batch = _batch("vanilla")
    s = LossSettings(lam=1.0, beta=1.0)
    _, pos = _loss(lambda x: 0.5 * jnp.sum(x * x), None, "vanilla", s, batch)
    _, neg = _loss(lambda x: -0.5 * jnp.sum(x * x), None, "vanilla", s, batch)
    assert float(pos[1]) == 0.0
    np.testing.assert_allclose(float(neg[1]), np.arcsinh(3.0), rtol=1e-5)  # float32 rounding


def test_residual_penalty_forms() -> None:
    r = jnp.asarray([-3.0, -0.5, 0.0, 0.25, 4.0])
    s = jnp.asarray([1.0, 2.0, 1.0, 0.5, 2.0])
    asinh = residual_penalty(r, s, LossSettings(alpha=2.0))
    np.testing.assert_allclose(np.asarray(asinh), np.arcsinh(2.0 * np.abs(r / s)) / 2.0, rtol=1e-6)
    l2 = residual_penalty(r, s, LossSettings(residual_loss="l2", alpha=2.0))  # α: asinh only
    np.testing.assert_allclose(np.asarray(l2), 0.5 * np.asarray(r / s) ** 2, rtol=1e-6)
    # Either form is zero on the truth (the loss-on-truth test above covers the asinh form).
    batch = _batch("conditional")
    loss, _ = _loss(phi_true, AUX["conditional"], "conditional",
                    LossSettings(residual_loss="l2"), batch)  # fmt: skip
    assert float(loss) < 1e-9


def _grouped_batch(group: int, seed: int = 7, n: int = 2048) -> Batch:
    g = oracle.gradients("conditional", seed, n, group=group)
    cols = [g["x"], g["v"] / 100.0, g["dlnf_dx"], g["dlnf_dv"] * 100.0, np.zeros(n)]
    return Batch(*(jnp.asarray(c, jnp.float32) for c in cols))


def test_profiled_conditional_loss_needs_no_ln_n() -> None:
    # With groups of 8 velocities per position, ∇ln n is solved for at each position: the
    # true Φ alone gives a vanishing residual (no ln n field given), a 2 % wrong GM does not.
    batch = _grouped_batch(8)
    settings = LossSettings()

    def loss(phi, aux=None):
        return jax.jit(lambda b: data_loss(phi, aux, "conditional", settings, b, group=8))(batch)

    truth, parts = loss(phi_true)
    assert float(parts[0]) < 1e-5 and float(parts[1]) == 0.0 and float(parts[2]) == 0.0
    wrong, _ = loss(lambda x: phi_true(x, 1.02 * GM_INT))
    assert float(wrong) > 100 * float(truth) and float(wrong) > 1e-3
    # A ln n network beside Φ is trained on the ordinary residual (third term): zero for the
    # true ln n, and its gradient never reaches Φ.
    _, parts = loss(phi_true, ln_n_true)
    assert float(parts[2]) < 1e-5
    _, bad = loss(phi_true, lambda x: 1.1 * ln_n_true(x))
    assert float(bad[2]) > 1e-3 and float(bad[0]) == pytest.approx(float(parts[0]))

    def grad_phi_scale(aux):
        def f(s):
            return data_loss(lambda x: s * phi_true(x), aux, "conditional", settings, batch,
                             group=8)[1][2]  # fmt: skip

        return jax.grad(f)(1.02)

    assert float(grad_phi_scale(lambda x: 1.1 * ln_n_true(x))) == 0.0


def test_profiled_residual_absorbs_part_of_a_wrong_potential() -> None:
    # With a wrong Φ the per-position ∇ln n absorbs part of the error: the profiled residual
    # is below the residual at the true ∇ln n (deterministic data; α small: asinh(αr)/α ≈ |r|).
    batch = _grouped_batch(4)
    settings = LossSettings(alpha=1e-3)

    def phi_wrong(x):
        return phi_true(x, 1.05 * GM_INT)

    prof = data_loss(phi_wrong, None, "conditional", settings, batch, group=4)[1][0]
    fixed = data_loss(phi_wrong, ln_n_true, "conditional", settings, batch)[1][0]
    assert float(prof) < float(fixed)
    with pytest.raises(ValueError, match="conditional"):
        data_loss(phi_true, None, "vanilla", settings, batch, group=4)


@pytest.mark.parametrize("weighted", [False, True])
def test_density_term_on_every_kth_sample(weighted: bool) -> None:
    # A potential with a negative-density region (a Plummer sphere minus a narrower one): the
    # density penalty is non-zero at part of the batch. density_every = k averages it over
    # rows 0, k, 2k, … (weighted by their weights), and leaves the other two terms unchanged.
    def phi(x: jax.Array) -> jax.Array:
        r2 = jnp.sum(x * x)
        return -GM_INT / jnp.sqrt(r2 + oracle.B**2) + 0.5 * GM_INT / jnp.sqrt(r2 + 4.0)

    batch = _batch("conditional")
    if weighted:
        w = np.random.default_rng(0).uniform(0.5, 2.0, len(batch.x))
        batch = batch._replace(weight=jnp.asarray(w, jnp.float32))
    settings = LossSettings()

    def parts(b: Batch, every: int = 1) -> jax.Array:
        return data_loss(phi, ln_n_true, "conditional", settings, b, density_every=every)[1]

    full, sub = parts(batch), parts(batch, 8)
    every8 = batch._replace(
        x=batch.x[::8], v=batch.v[::8], dlnf_dx=batch.dlnf_dx[::8], dlnf_dv=batch.dlnf_dv[::8],
        ln_n_obs=batch.ln_n_obs[::8], weight=None if batch.weight is None else batch.weight[::8],
    )  # fmt: skip
    on_rows = parts(every8)
    assert float(full[1]) > 0  # the penalty is active somewhere
    np.testing.assert_allclose(np.asarray(sub)[[0, 2]], np.asarray(full)[[0, 2]], rtol=1e-5)
    np.testing.assert_allclose(float(sub[1]), float(on_rows[1]), rtol=1e-5)
    assert float(sub[1]) != float(full[1])  # a different (unbiased) estimate of the same mean
    with pytest.raises(ValueError, match="density_every must be >= 1"):
        data_loss(phi, ln_n_true, "conditional", settings, batch, density_every=0)
