"""Fixed-step explicit Runge–Kutta solves of a whole batch at once (the fast inference path).

The adaptive path vmaps one diffrax solve per sample; here the batch goes through the vector
field as matrix-matrix products, the divergence tr ∂u/∂z is exact (the field's own
``velocity_and_divergence``), and gradients of ln p are one reverse pass through a
``lax.scan`` over the steps. A trained flow-matching field is smooth and nearly straight, so
a few RK4 steps reach the accuracy of the adaptive solve (measured in
``benchmarks/results/flows.md``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._fields import AbstractVectorField

# Butcher tableaux (a, b, c) of the explicit methods offered by ``FlowConfig.fixed_solver``.
TABLEAUX: dict[str, tuple[tuple[tuple[float, ...], ...], tuple[float, ...], tuple[float, ...]]] = {
    "euler": (((),), (1.0,), (0.0,)),
    "midpoint": (((), (0.5,)), (0.0, 1.0), (0.0, 0.5)),
    "rk4": (
        ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
        (1 / 6, 1 / 3, 1 / 3, 1 / 6),
        (0.0, 0.5, 0.5, 1.0),
    ),
}


def integrate(
    field: AbstractVectorField,
    z: Float[Array, "n d"],
    c: Float[Array, "n c"] | None,
    t0: float,
    t1: float,
    n_steps: int,
    method: str,
    logdet: bool,
) -> tuple[Float[Array, "n d"], Float[Array, " n"]]:
    """z(t1) and ∫_{t0}^{t1} tr ∂u/∂z dt (zeros unless ``logdet``) by ``n_steps`` RK steps."""
    if method not in TABLEAUX:
        raise ValueError(f"fixed_solver must be one of {sorted(TABLEAUX)}, got {method!r}")
    a, b, cs = TABLEAUX[method]
    h = (t1 - t0) / n_steps

    def rhs(t, y):
        tt = jnp.full(y.shape[:1], t, y.dtype)
        if logdet:
            return field.velocity_and_divergence(tt, y, c)
        return field.batched(tt, y, c), jnp.zeros(y.shape[:1], y.dtype)

    def step(carry, k):
        y, ell = carry
        t = t0 + k * h
        ks, ls = [], []
        for a_i, c_i in zip(a, cs, strict=True):
            y_i = y
            for a_ij, k_j in zip(a_i, ks, strict=False):
                if a_ij:
                    y_i = y_i + (h * a_ij) * k_j
            u, div = rhs(t + c_i * h, y_i)
            ks.append(u)
            ls.append(div)
        y = y + h * sum(b_i * k_i for b_i, k_i in zip(b, ks, strict=True) if b_i)
        ell = ell + h * sum(b_i * l_i for b_i, l_i in zip(b, ls, strict=True) if b_i)
        return (y, ell), None

    init = (z, jnp.zeros(z.shape[:1], z.dtype))
    (z_end, ell), _ = jax.lax.scan(step, init, jnp.arange(n_steps, dtype=z.dtype))
    return z_end, ell
