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
