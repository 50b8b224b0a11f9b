"""Scalar fields: the cheap Laplacian, spherical-harmonic features, shapes."""

from __future__ import annotations

import dp_cbe
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dp_cbe._fields import laplacian_full_hessian


@pytest.mark.parametrize("l_max,n_fourier", [(0, 0), (2, 1)])
def test_laplacian_equals_trace_of_full_hessian(l_max: int, n_fourier: int) -> None:
    field = dp_cbe.ScalarField(width=32, depth=2, in_scale=4.0, out_scale=10.0, l_max=l_max,
                               n_fourier=n_fourier, key=jax.random.PRNGKey(3))  # fmt: skip
    x = jax.random.normal(jax.random.PRNGKey(4), (64, 3)) * 4.0
    value, grad, lap = jax.jit(jax.vmap(lambda p: dp_cbe.grad_and_laplacian(field, p)))(x)
    ref_lap = jax.jit(jax.vmap(lambda p: laplacian_full_hessian(field, p)))(x)
    ref_grad = jax.jit(jax.vmap(jax.grad(field)))(x)
    assert value.shape == (64,) and grad.shape == (64, 3) and lap.shape == (64,)
    # Same derivatives by two autodiff orderings in float32: agree to rounding (~1e-6 relative
    # of the largest Hessian entries); 1e-4 of the scale leaves a wide margin.
    scale = float(jnp.max(jnp.abs(ref_lap)))
    np.testing.assert_allclose(lap, ref_lap, atol=1e-4 * scale)
    np.testing.assert_allclose(
        grad, ref_grad, rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(ref_grad)))
    )
    ref_value = jax.jit(jax.vmap(field))(x)  # same function, differently fused: float32 rounding
    np.testing.assert_allclose(value, ref_value, atol=1e-5 * float(jnp.max(jnp.abs(ref_value))))


def test_solid_harmonics_orthonormal_and_homogeneous() -> None:
    l_max = 4
    # Gauss–Legendre in cos θ × uniform φ: exact for the degree-8 products of two harmonics.
    ct, wt = np.polynomial.legendre.leggauss(10)
    phi = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    c, p = np.meshgrid(ct, phi, indexing="ij")
    s = np.sqrt(1 - c**2)
    u = np.stack([s * np.cos(p), s * np.sin(p), c], -1).reshape(-1, 3)
    w = (wt[:, None] * np.full(20, 2 * np.pi / 20)[None, :]).reshape(-1)
    feats = np.asarray(
        jax.jit(jax.vmap(lambda q: dp_cbe.real_solid_harmonics(q, l_max)))(jnp.asarray(u))
    )
    assert feats.shape == (u.shape[0], (l_max + 1) ** 2 - 1)
    gram = (feats * w[:, None]).T @ feats
    # Orthonormal on the unit sphere up to float32 rounding (1e-5 relative).
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=2e-5)
    # Homogeneous of degree l: features(t u) = t^l features(u).
    degrees = np.concatenate([[ell] * (2 * ell + 1) for ell in range(1, l_max + 1)])
    scaled = np.asarray(
        jax.vmap(lambda q: dp_cbe.real_solid_harmonics(0.5 * q, l_max))(jnp.asarray(u))
    )
    np.testing.assert_allclose(scaled, feats * 0.5**degrees, atol=1e-6)


def test_plummer_mixture_matches_closed_form_and_is_positive() -> None:
    from dp_cbe._fields import PlummerMixture

    mix = PlummerMixture(n=5, r_min=0.1, r_max=10.0, mass=7.0, centre=(0.5, -0.2, 0.1))
    m, b = np.full(5, 7.0 / 5), np.geomspace(0.1, 10.0, 5)
    x = np.random.default_rng(0).normal(size=(64, 3)) * 3.0
    d = x - np.array([0.5, -0.2, 0.1])
    r2 = np.sum(d * d, axis=1)[:, None]
    phi = -np.sum(m / np.sqrt(r2 + b**2), axis=1)
    grad = np.sum(m / (r2 + b**2) ** 1.5, axis=1)[:, None] * d  # G M(<r) x̂ / r² per component
    lap = np.sum(3 * m * b**2 / (r2 + b**2) ** 2.5, axis=1)  # 4πG ρ, positive
    value, g, lp = jax.vmap(lambda p: dp_cbe.grad_and_laplacian(mix, p))(
        jnp.asarray(x, jnp.float32)
    )
    np.testing.assert_allclose(value, phi, rtol=1e-5)
    np.testing.assert_allclose(g, grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(lp, lap, rtol=1e-3)
    assert np.all(lap > 0)


def test_mixture_is_added_to_the_network() -> None:
    spec = {"n": 4, "r_min": 0.2, "r_max": 8.0, "mass": 3.0}
    field = dp_cbe.ScalarField(width=8, depth=1, in_scale=2.0, mixture=spec,
                               key=jax.random.PRNGKey(1))  # fmt: skip
    plain = dp_cbe.ScalarField(width=8, depth=1, in_scale=2.0, key=jax.random.PRNGKey(1))
    x = jnp.asarray([1.0, 2.0, -0.5])
    assert field.mixture is not None
    np.testing.assert_allclose(field(x), plain(x) + field.mixture(x), rtol=1e-6)
