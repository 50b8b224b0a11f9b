"""Fast evaluation of a fitted potential: pure-JAX one-point functions and a batched evaluator.

`JaxPotential` is an equinox module in physical units (kpc, (km/s)², M☉) acting on ONE point;
callers `jax.vmap` it, and it can be called from inside any jitted JAX code (an orbit
integrator, say). `BatchEvaluator` serves NumPy callers: it computes only the quantities asked
for (no Laplacian unless the density is requested) and pads a batch only up to the next power
of two (at most 4096 points per call), so a one-point call costs one point, not 4096.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Scalar

from ._fields import grad_and_laplacian
from ._units import POTENTIAL_UNIT, density_from_laplacian

MAX_BATCH = 4096
"""Largest batch one jitted call evaluates; larger inputs are split into chunks of this size."""

QUANTITIES = (
    "potential",
    "acceleration",
    "potential_and_acceleration",
    "hessian",
    "density",
    "value",
)


class JaxPotential(eqx.Module):
    """A scalar potential field as pure JAX functions of one point, in physical units.

    Attributes:
        phi: a callable x (3,) kpc → Φ in internal units ((100 km/s)²), e.g. a `ScalarField`.

    Example:
        A fitted solution gives one with ``sol.as_jax()``; here Φ = |x|²/2 in (100 km/s)² with
        x in kpc, whose acceleration is −10⁴ x (km/s)²/kpc:

        >>> import jax.numpy as jnp
        >>> jp = JaxPotential(lambda x: 0.5 * jnp.sum(x**2))
        >>> x = jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])  # (n, 3) kpc
        >>> acc = jax.jit(jax.vmap(jp.acceleration))(x)  # (n, 3) (km/s)²/kpc
        >>> np.allclose(acc, -1.0e4 * x)
        True
    """

    phi: Callable[[Float[Array, 3]], Scalar]

    def potential(self, x: Float[Array, 3]) -> Scalar:
        """Φ(x) in (km/s)² (up to an additive constant); x (3,) in kpc."""
        return self.phi(x) * POTENTIAL_UNIT

    def acceleration(self, x: Float[Array, 3]) -> Float[Array, 3]:
        """−∇Φ(x) in (km/s)²/kpc; x (3,) in kpc."""
        return -jax.grad(self.phi)(x) * POTENTIAL_UNIT

    def potential_and_acceleration(self, x: Float[Array, 3]) -> tuple[Scalar, Float[Array, 3]]:
        """(Φ, −∇Φ) from one forward and one backward pass; x (3,) in kpc."""
        value, grad = jax.value_and_grad(self.phi)(x)
        return value * POTENTIAL_UNIT, -grad * POTENTIAL_UNIT

    def hessian(self, x: Float[Array, 3]) -> Float[Array, "3 3"]:
        """∂²Φ/∂x_i∂x_j in (km/s)²/kpc²; x (3,) in kpc."""
        return jax.hessian(self.phi)(x) * POTENTIAL_UNIT

    def density(self, x: Float[Array, 3]) -> Scalar:
        """ρ = ∇²Φ/(4πG) in M☉/kpc³ (exact autodiff Laplacian); x (3,) in kpc."""
        return density_from_laplacian(grad_and_laplacian(self.phi, x)[2])


class JaxScalar(eqx.Module):
    """Any one-point scalar field (e.g. ln n or ln S) as a module with a ``value`` method."""

    f: Callable[[Float[Array, 3]], Scalar]

    def value(self, x: Float[Array, 3]) -> Scalar:
        """f(x) for one point x (3,) in kpc."""
        return self.f(x)


def _bucket(n: int) -> int:
    """Smallest power of two ≥ n (n ≤ MAX_BATCH): padding never more than doubles the work."""
    return 1 << max(0, (n - 1).bit_length())


class BatchEvaluator:
    """NumPy-in, NumPy-out batched evaluation of any one-point JAX module's methods.

    The module is split once into its arrays and its static skeleton; each quantity is one
    `jax.jit` of the vmapped method, compiled once per power-of-two batch size it meets.

    Args:
        module: an equinox module (e.g. `JaxPotential`) whose methods act on one point (3,).
        dtype: dtype the positions are cast to before the call (the module's parameter dtype).
    """

    def __init__(self, module: eqx.Module, dtype: Any = np.float32) -> None:
        params, static = eqx.partition(module, eqx.is_array)
        self._leaves, self._treedef = jax.tree_util.tree_flatten(params)
        self._static = static
        self._dtype = np.dtype(dtype)
        self._fns: dict[str, Callable[..., Any]] = {}

    def _fn(self, name: str) -> Callable[..., Any]:
        if name not in self._fns:
            treedef, static = self._treedef, self._static

            def run(leaves: list[Array], x: Array) -> Any:
                module = eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)
                return jax.vmap(getattr(module, name))(x)

            self._fns[name] = jax.jit(run)
        return self._fns[name]

    def __call__(self, name: str, x: ArrayLike) -> tuple[np.ndarray, ...]:
        """Evaluate method ``name`` at (n, 3) positions; returns float64 arrays (one per output)."""
        if name not in QUANTITIES:
            raise ValueError(f"unknown quantity {name!r} (known: {', '.join(QUANTITIES)})")
        x = np.asarray(x, dtype=self._dtype)
        if x.ndim != 2 or x.shape[1] != 3:
            raise ValueError(f"positions must have shape (n, 3), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("positions contain NaN/inf")
        fn = self._fn(name)
        n = x.shape[0]
        if n == 0:
            out = fn(self._leaves, jnp.zeros((1, 3), self._dtype))
            out = out if isinstance(out, tuple) else (out,)
            return tuple(np.zeros((0, *o.shape[1:])) for o in out)
        chunks: list[tuple[np.ndarray, ...]] = []
        for start in range(0, n, MAX_BATCH):
            part = x[start : start + MAX_BATCH]
            size = _bucket(len(part))
            if size != len(part):
                part = np.concatenate([part, np.zeros((size - len(part), 3), self._dtype)])
            out = fn(self._leaves, part)
            out = out if isinstance(out, tuple) else (out,)
            m = min(MAX_BATCH, n - start)
            chunks.append(tuple(np.asarray(o, np.float64)[:m] for o in out))
        if len(chunks) == 1:
            return chunks[0]
        return tuple(np.concatenate(parts) for parts in zip(*chunks, strict=True))
