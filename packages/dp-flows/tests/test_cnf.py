"""CNF machinery against closed forms, with a fixed analytic vector field."""

from __future__ import annotations

import dp_flows
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dp_flows._fields import ResNetField, spherical_harmonic_features
from scipy.linalg import expm

M = np.array([[0.3, -0.4, 0.1], [0.2, 0.1, 0.0], [0.0, 0.3, -0.5]])
BIAS = np.array([0.5, -1.0, 0.2])


class LinearField(dp_flows.AbstractVectorField):
    """u(t, z) = M z + b: the flow map is affine, so ln p₁ is a Gaussian in closed form."""

    m: jax.Array
    b: jax.Array

    @property
    def data_dim(self) -> int:
        return 3

    @property
    def cond_dim(self) -> int:
        return 0

    def __call__(self, t, z, c=None):
        return self.m @ z + self.b


def _linear_flow(**solver) -> dp_flows.Flow:
    field = LinearField(jnp.asarray(M, jnp.float32), jnp.asarray(BIAS, jnp.float32))
    mean, std = jnp.array([1.0, 2.0, -3.0]), jnp.array([2.0, 0.5, 3.0])
    return dp_flows.Flow(field, mean, std, None, None, **solver)


def _closed_form(x: np.ndarray):
    """ln p and ∇ ln p of x = mean + std ⊙ z₁, z₁ = e^M z₀ + (e^M − I) M⁻¹ b, z₀ ~ N(0, I)."""
    e = expm(M)
    shift = (e - np.eye(3)) @ np.linalg.solve(M, BIAS)
    mean = np.array([1.0, 2.0, -3.0]) + np.array([2.0, 0.5, 3.0]) * shift
    scale = np.diag([2.0, 0.5, 3.0]) @ e
    cov = scale @ scale.T
    r = x - mean
    prec_r = np.linalg.solve(cov, r.T).T
    lp = -0.5 * np.sum(r * prec_r, 1) - 1.5 * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(cov)[1]
    return lp, -prec_r


@pytest.mark.parametrize(
    "solver",
    [{}, {"fixed_steps": 8}, {"fixed_steps": 128, "fixed_solver": "midpoint"}],
)
def test_log_prob_and_gradient_of_analytic_field(solver):
    x = np.random.default_rng(0).normal(size=(300, 3)) * 3.0
    flow = _linear_flow(**solver)
    lp_true, g_true = _closed_form(x)
    # float32 solve with rtol 1e-4; fixed RK4, 8 steps: local error ~ (‖M‖h)^5/120 with
    # ‖M‖ ≈ 0.7, h = 1/8, i.e. < 1e-6 in total; midpoint, 128 steps: ~ (‖M‖h)^2 ‖M‖/6 ≈ 2e-6
    # relative, times |ln p| ≲ 400 here: ≲ 6e-4. Both inside 1e-3 absolute.
    np.testing.assert_allclose(dp_flows.log_prob(flow, x), lp_true, atol=1e-3)
    g, _ = dp_flows.grad_log_prob(flow, x)
    np.testing.assert_allclose(g, g_true, atol=1e-3 * np.abs(g_true).max())


@pytest.mark.parametrize("solver", [{}, {"fixed_steps": 8}])
def test_sample_pushes_forward_to_closed_form_moments(solver):
    flow = _linear_flow(**solver)
    s = dp_flows.sample(jax.random.key(3), flow, 20000)
    e = expm(M)
    scale = np.diag([2.0, 0.5, 3.0]) @ e
    mean = np.array([1.0, 2.0, -3.0]) + np.array([2.0, 0.5, 3.0]) * (
        (e - np.eye(3)) @ np.linalg.solve(M, BIAS)
    )
    # 20000 samples: standard error of the mean ≤ 3.5/√20000 ≈ 0.025; 5σ.
    np.testing.assert_allclose(s.mean(0), mean, atol=0.13)
    np.testing.assert_allclose(np.cov(s.T), scale @ scale.T, rtol=0.05, atol=0.1)


def test_max_steps_is_a_clear_error():
    flow = _linear_flow(max_steps=2, rtol=1e-8, atol=1e-8)
    with pytest.raises(RuntimeError, match=r"max_steps=2.*raise max_steps"):
        dp_flows.log_prob(flow, np.zeros((5, 3)))


def test_batched_path_equals_per_sample_call():
    with pytest.raises(ValueError, match="3-D position"):
        ResNetField(3, 2, sh_lmax=2, key=jax.random.key(0))
    rng = np.random.default_rng(1)
    t = jnp.asarray(rng.uniform(size=7), jnp.float32)
    z = jnp.asarray(rng.normal(size=(7, 3)), jnp.float32)
    field = ResNetField(
        3, 3, width=16, depth=2, time_embedding_dim=8, sh_lmax=2, key=jax.random.key(0)
    )
    c = jnp.asarray(rng.normal(size=(7, 3)), jnp.float32)
    # Same arithmetic, different matmul shapes: float32 rounding only.
    np.testing.assert_allclose(
        field.batched(t, z, c), jax.vmap(field)(t, z, c), rtol=1e-5, atol=1e-6
    )


def test_spherical_harmonics_addition_theorem():
    # Σ_m Y_lm(n)² = (2l+1)/(4π) for every unit vector n (real, orthonormal harmonics).
    x = np.random.default_rng(2).normal(size=(50, 3)) * 4.0
    f = np.asarray(spherical_harmonic_features(jnp.asarray(x), 4))
    assert f.shape == (50, 24)
    start = 0
    for ell in range(1, 5):
        block = f[:, start : start + 2 * ell + 1]
        np.testing.assert_allclose((block**2).sum(1), (2 * ell + 1) / (4 * np.pi), rtol=1e-5)
        start += 2 * ell + 1


@pytest.mark.parametrize(("cond_dim", "sh_lmax"), [(0, 0), (3, 0), (3, 2)])
def test_explicit_jacobian_divergence_equals_jvps(cond_dim, sh_lmax):
    field = ResNetField(
        3,
        cond_dim,
        width=16,
        depth=2,
        time_embedding_dim=8,
        sh_lmax=sh_lmax,
        key=jax.random.key(1),
    )
    rng = np.random.default_rng(2)
    z = jnp.asarray(rng.normal(size=(50, 3)), jnp.float32)
    c = jnp.asarray(rng.normal(size=(50, 3)), jnp.float32) if cond_dim else None
    t = jnp.full((50,), 0.37)
    u, div = field.velocity_and_divergence(t, z, c)
    jac = jax.vmap(jax.jacfwd(lambda zi, ci: field(0.37, zi, ci)))(z, c)
    # Same arithmetic in float32 (eps 6e-8), other association order, O(1) values through a
    # few 16-wide layers: rounding differences ~1e-6; 2e-5 absolute.
    np.testing.assert_allclose(u, field.batched(t, z, c), atol=2e-5)
    np.testing.assert_allclose(div, jnp.trace(jac, axis1=1, axis2=2), atol=2e-5)
    # The base class's generic JVP divergence agrees with the explicit forward Jacobian.
    _, div2 = dp_flows.AbstractVectorField.velocity_and_divergence(field, t, z, c)
    np.testing.assert_allclose(div2, div, atol=2e-5)
