"""Fixed-step explicit Runge–Kutta solves of a whole batch at once (the fast inference path).

The adaptive path vmaps one diffrax solve per sample; here the batch goes through the vector
field as matrix-matrix products, the divergence tr ∂u/∂z is exact (d forward-mode tangents
of one linearisation, batched), and gradients of ln p are one reverse pass through a
``lax.scan`` over the steps. A trained flow-matching field is smooth and nearly straight, so
a few RK4 steps reach the accuracy of the adaptive solve (measured in
``benchmarks/results/flows.md``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

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


def _batched_field(field, t: Array, z: Array, c: Array | None) -> Array:
    tt = jnp.full(z.shape[:1], t, z.dtype)
    if hasattr(field, "batched"):
        return field.batched(tt, z, c)
    if c is None:
        return jax.vmap(lambda ti, zi: field(ti, zi))(tt, z)
    return jax.vmap(field)(tt, z, c)


def velocity_and_divergence(
    field, t: Array, z: Float[Array, "n d"], c: Float[Array, "n c"] | None
) -> tuple[Float[Array, "n d"], Float[Array, " n"]]:
    """u(t, z, c) and its exact divergence tr ∂u/∂z for a batch.

    Uses the field's own ``velocity_and_divergence`` (explicit forward Jacobian) when it has
    one, else d JVPs of one linearisation.
    """
    if hasattr(field, "velocity_and_divergence") and not (field.sh_lmax and not field.cond_dim):
        return field.velocity_and_divergence(jnp.full(z.shape[:1], t, z.dtype), z, c)
    u, jvp = jax.linearize(lambda q: _batched_field(field, t, q, c), z)
    d = z.shape[-1]
    basis = jnp.broadcast_to(jnp.eye(d, dtype=z.dtype)[:, None, :], (d, *z.shape))
    columns = jax.vmap(jvp)(basis)  # (d, n, d): J e_i for every sample
    return u, jnp.einsum("ini->n", columns)


def integrate(
    field,
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
        if logdet:
            return velocity_and_divergence(field, t, y, c)
        return _batched_field(field, t, y, c), jnp.zeros(y.shape[:1], y.dtype)

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
