"""The fast evaluation path of `PotentialSolution` and its pure-JAX form `as_jax()`."""

from __future__ import annotations

import dp_cbe
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tiny_model import R_DATA, tiny_solution
from dp_cbe._evaluate import MAX_BATCH, _bucket
from dp_cbe._units import G

# float32 networks: the same point evaluated in batches of different sizes may round
# differently (XLA picks kernels per shape), by a few ulp of the largest intermediate.
F32 = 2e-6


def _points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-R_DATA / 2, R_DATA / 2, size=(n, 3))


def test_bucket_never_more_than_doubles() -> None:
    for n in range(1, MAX_BATCH + 1):
        b = _bucket(n)
        assert n <= b < 2 * n and b & (b - 1) == 0


@pytest.mark.parametrize("n", [0, 1, 3, 4097])
def test_shapes_dtypes_and_batch_independence(n: int) -> None:
    sol = tiny_solution()
    x = _points(n)
    shapes = {"potential": (n,), "acceleration": (n, 3), "hessian": (n, 3, 3), "density": (n,),
              "ln_n": (n,)}  # fmt: skip
    for q, shape in shapes.items():
        out = getattr(sol, q)(x)
        assert out.shape == shape and out.dtype == np.float64, q
    if n:
        # The first point alone gives the same numbers as inside the batch.
        for q in ("potential", "acceleration", "density"):
            whole, alone = getattr(sol, q)(x)[:1], getattr(sol, q)(x[:1])
            np.testing.assert_allclose(alone, whole, rtol=F32, atol=F32 * np.abs(whole).max())


def test_quantities_are_consistent() -> None:
    sol = tiny_solution()
    x = _points(64, seed=1)
    phi, acc = sol.potential_and_acceleration(x)
    np.testing.assert_allclose(phi, sol.potential(x), rtol=F32)
    np.testing.assert_allclose(acc, sol.acceleration(x), rtol=F32, atol=F32 * np.abs(acc).max())
    hess = sol.hessian(x)
    np.testing.assert_allclose(hess, np.swapaxes(hess, 1, 2), atol=F32 * np.abs(hess).max())
    # Poisson: tr H = 4πGρ (two autodiff paths; float32 cancellation in the trace ~1e-5 of |H|).
    trace = np.trace(hess, axis1=1, axis2=2)
    np.testing.assert_allclose(trace, 4 * np.pi * G * sol.density(x), rtol=1e-3,
                               atol=1e-5 * np.abs(hess).max())  # fmt: skip
    # H against central differences of −a; h = 0.05 kpc: truncation (h²/6)|∂³Φ| ≲ 1e-3 of |H|,
    # float32 round-off in a ~1e-7·|a|/h ≈ 1e-5 of |H|.
    h = 0.05
    fd = np.stack([-(sol.acceleration(x + h * e) - sol.acceleration(x - h * e)) / (2 * h)
                   for e in np.eye(3)], axis=2)  # fmt: skip
    np.testing.assert_allclose(hess, fd, atol=2e-3 * np.abs(hess).max())


def test_errors_name_the_problem() -> None:
    sol = tiny_solution()
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        sol.acceleration(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        sol.potential(np.full((1, 3), np.nan))
    with pytest.raises(AttributeError, match="selection"):
        sol.ln_selection(np.zeros((1, 3)))


def test_as_jax_is_pure_and_jittable() -> None:
    sol = tiny_solution()
    jp = sol.as_jax()
    assert isinstance(jp, dp_cbe.JaxPotential)
    x = _points(16, seed=2)
    xj = jnp.asarray(x, jnp.float32)
    for q in ("potential", "acceleration", "hessian", "density"):
        got = np.asarray(jax.jit(jax.vmap(getattr(jp, q)))(xj))
        want = getattr(sol, q)(x)
        np.testing.assert_allclose(got, want, rtol=F32, atol=F32 * np.abs(want).max())


def test_jax_leapfrog_conserves_energy() -> None:
    """A JAX orbit integrator calls `as_jax()` directly, inside `lax.scan` under jit."""
    sol = tiny_solution()
    jp = sol.as_jax()
    r0 = 4.0
    vc = float(sol.circular_velocity([r0])[0])
    period = 2 * np.pi * r0 / vc  # kpc/(km/s)
    n_steps = 4000  # 10 periods, 400 steps per period
    dt = 10 * period / n_steps

    @jax.jit
    def integrate(x0: jax.Array, v0: jax.Array) -> jax.Array:
        def step(state, _):
            x, v = state
            v = v + 0.5 * dt * jp.acceleration(x)
            x = x + dt * v
            v = v + 0.5 * dt * jp.acceleration(x)
            return (x, v), 0.5 * jnp.sum(v * v) + jp.potential(x)

        return jax.lax.scan(step, (x0, v0), None, length=n_steps)[1]

    e = np.asarray(integrate(jnp.array([r0, 0.0, 0.5]), jnp.array([0.0, 0.8 * vc, 20.0])), float)
    # Leapfrog's energy error oscillates at O((Ω dt)²/8) ≈ (2π/400)²/8 ≈ 3e-5 relative, and
    # does not grow; float32 state adds ~1e-6.
    drift = np.abs(e - e[0]).max() / abs(e[0])
    assert drift < 2e-4, drift
