"""Scalar fields on R³: ResNets with fixed input standardisation and optional features.

Every model here acts on ONE point `x` of shape (3,) in internal units (kpc) and returns a
scalar; callers `jax.vmap` it. Standardisation constants are static (not trained, not decayed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

_EYE3 = jnp.eye(3)


def real_solid_harmonics(u: Float[Array, 3], l_max: int) -> Float[Array, " f"]:
    """Real solid harmonics |u|^l Y_lm(û) for 1 ≤ l ≤ l_max (orthonormal on the sphere).

    Homogeneous polynomials of u, hence smooth everywhere (also at u = 0).

    Args:
        u: a point (3,), dimensionless (|u| ≤ 1 is the intended range).
        l_max: highest degree.

    Returns:
        (l_max + 1)² − 1 features, ordered by l then m = −l..l.
    """
    x, y, z = u[0], u[1], u[2]
    r2 = x * x + y * y + z * z
    # (x + i y)^m carries sin^m θ e^{imφ}; Q_l^m(z, r²) is the remaining polynomial factor.
    cos_m, sin_m = [jnp.ones_like(x)], [jnp.zeros_like(x)]
    for _ in range(l_max):
        c, s = cos_m[-1], sin_m[-1]
        cos_m.append(c * x - s * y)
        sin_m.append(c * y + s * x)
    q: dict[tuple[int, int], Array] = {}
    for m in range(l_max + 1):
        q[(m, m)] = jnp.full_like(x, (-1.0) ** m * math.prod(range(1, 2 * m, 2)))
        if m + 1 <= l_max:
            q[(m + 1, m)] = (2 * m + 1) * z * q[(m, m)]
        for ell in range(m + 2, l_max + 1):
            q[(ell, m)] = (
                (2 * ell - 1) * z * q[(ell - 1, m)] - (ell + m - 1) * r2 * q[(ell - 2, m)]
            ) / (ell - m)
    feats = []
    for ell in range(1, l_max + 1):
        for m in range(-ell, ell + 1):
            am = abs(m)
            norm = math.sqrt(
                (2 * ell + 1) / (4 * math.pi) * math.factorial(ell - am) / math.factorial(ell + am)
            )
            if m == 0:
                feats.append(norm * q[(ell, 0)])
            else:
                trig = cos_m[am] if m > 0 else sin_m[am]
                feats.append(math.sqrt(2.0) * norm * q[(ell, am)] * trig)
    return jnp.stack(feats) if feats else jnp.zeros((0,))


def n_features(l_max: int, n_fourier: int, log_r: bool = False) -> int:
    """Number of input features of a `ScalarField`: 3 coordinates + |x| [+ ln|x|] + harmonics
    + Fourier."""
    return 4 + int(log_r) + ((l_max + 1) ** 2 - 1) + 6 * n_fourier


class PlummerMixture(eqx.Module):
    """Φ(x) = −Σₖ mₖ / √(|x − c|² + bₖ²): concentric Plummer spheres of positive masses.

    Internal units (G = 1). Every component's density 3 mₖ bₖ² / 4π(r² + bₖ²)^{5/2} is
    positive, so the mixture's density is positive by construction, and its acceleration is
    G M(<r) / r² with no cancellation between terms: the quantity a network must otherwise
    reproduce to a fraction of a per cent where ρ ≪ 2g/r (the edge of a steep profile).
    Masses and scales are trained through their logarithms.

    Attributes:
        log_mass: (K,) ln mₖ.
        log_scale: (K,) ln bₖ (kpc).
        centre: static (3,) centre c (kpc).
    """

    log_mass: Float[Array, " k"]
    log_scale: Float[Array, " k"]
    centre: tuple[float, float, float] = eqx.field(static=True)

    def __init__(
        self, *, n: int, r_min: float, r_max: float, mass: float, centre: tuple[float, ...]
    ) -> None:
        """``n`` components, scales log-spaced on [r_min, r_max], total mass ``mass``."""
        self.log_scale = jnp.linspace(math.log(r_min), math.log(r_max), n)
        self.log_mass = jnp.full((n,), math.log(mass / n))
        self.centre = tuple(float(c) for c in centre)  # type: ignore[assignment]

    def __call__(self, x: Float[Array, 3]) -> Scalar:
        d = x - jnp.asarray(self.centre, x.dtype)
        r2 = jnp.sum(d * d)
        return -jnp.sum(jnp.exp(self.log_mass) * jax.lax.rsqrt(r2 + jnp.exp(2 * self.log_scale)))


class ScalarField(eqx.Module):
    """ResNet scalar field y(x) = out_shift + out_scale · net(features((x − mean)/scale)).

    Blocks are h ← h + Linear(SiLU(Linear(h))); SiLU activations throughout.

    Attributes:
        in_mean: static (3,) input shift (kpc).
        in_scale: static isotropic input scale (kpc).
        out_scale: static output scale (internal units of the field).
        l_max: degree of the real solid-harmonic features of x/√(|x|² + r_soft²) (0: none).
        r_soft: softening length (kpc) of the harmonic features.
        n_fourier: number of Fourier frequencies per axis (0: none); frequencies 2^k π/period.
        period: Fourier period (kpc).
        log_r: add the feature ½ ln(|z|² + log_r_soft²) of the standardised
            z = (x − mean)/scale (resolves steep profiles at small radii).
        log_r_soft: softening of the ln r feature, in units of ``in_scale`` (0.05 for models
            saved before it was a parameter). Below ~2 softenings ∇ of the feature falls short
            of 1/r, which a cusp's ∇ln n ≈ −x̂/r needs.
        mixture: an optional `PlummerMixture` added to the network's output (for Φ; None:
            the network alone).
    """

    linear_in: eqx.nn.Linear
    blocks: list[tuple[eqx.nn.Linear, eqx.nn.Linear]]
    linear_out: eqx.nn.Linear
    mixture: PlummerMixture | None
    in_mean: tuple[float, float, float] = eqx.field(static=True)
    in_scale: float = eqx.field(static=True)
    out_scale: float = eqx.field(static=True)
    l_max: int = eqx.field(static=True)
    r_soft: float = eqx.field(static=True)
    n_fourier: int = eqx.field(static=True)
    period: float = eqx.field(static=True)
    log_r: bool = eqx.field(static=True)
    log_r_soft: float = eqx.field(static=True)

    def __init__(
        self,
        *,
        width: int,
        depth: int,
        in_mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
        in_scale: float = 1.0,
        out_scale: float = 1.0,
        l_max: int = 0,
        r_soft: float = 1.0,
        n_fourier: int = 0,
        period: float = 16.0,
        log_r: bool = False,
        log_r_soft: float = 0.05,
        mixture: dict[str, float] | None = None,
        key: PRNGKeyArray,
    ) -> None:
        keys = jax.random.split(key, 2 * depth + 2)
        n_in = n_features(l_max, n_fourier, log_r)
        self.linear_in = eqx.nn.Linear(n_in, width, key=keys[0])
        self.blocks = [
            (
                eqx.nn.Linear(width, width, key=keys[2 * i + 1]),
                eqx.nn.Linear(width, width, key=keys[2 * i + 2]),
            )
            for i in range(depth)
        ]
        self.linear_out = eqx.nn.Linear(width, "scalar", key=keys[-1])
        self.in_mean = tuple(float(m) for m in in_mean)  # type: ignore[assignment]
        self.in_scale = float(in_scale)
        self.out_scale = float(out_scale)
        self.l_max = int(l_max)
        self.r_soft = float(r_soft)
        self.n_fourier = int(n_fourier)
        self.period = float(period)
        self.log_r = bool(log_r)
        self.log_r_soft = float(log_r_soft)
        self.mixture = None
        if mixture is not None:
            self.mixture = PlummerMixture(
                n=int(mixture["n"]), r_min=mixture["r_min"], r_max=mixture["r_max"],
                mass=mixture["mass"], centre=self.in_mean,
            )  # fmt: skip

    def features(self, x: Float[Array, 3]) -> Float[Array, " f"]:
        """Input features of one point x (3,) in kpc."""
        z = (x - jnp.asarray(self.in_mean, x.dtype)) / self.in_scale
        r = jnp.sqrt(jnp.sum(z * z) + 1e-6)  # smooth |z|; 1e-6 keeps ∇ finite at z = 0
        parts = [z, r[None]]
        if self.log_r:
            parts.append(0.5 * jnp.log(jnp.sum(z * z) + self.log_r_soft**2)[None])
        if self.l_max > 0:
            u = x / jnp.sqrt(jnp.sum(x * x) + self.r_soft**2)
            parts.append(real_solid_harmonics(u, self.l_max))
        if self.n_fourier > 0:
            freqs = 2.0 * jnp.pi / self.period * 2.0 ** jnp.arange(self.n_fourier, dtype=x.dtype)
            arg = (x[:, None] * freqs[None, :]).reshape(-1)
            parts += [jnp.sin(arg), jnp.cos(arg)]
        return jnp.concatenate(parts)

    def __call__(self, x: Float[Array, 3]) -> Scalar:
        """Field value at one point x (3,) in kpc."""
        h = self.linear_in(self.features(x))
        for lin1, lin2 in self.blocks:
            h = h + lin2(jax.nn.silu(lin1(h)))
        out = self.out_scale * self.linear_out(jax.nn.silu(h))
        return out if self.mixture is None else out + self.mixture(x)


def weight_l2(field: eqx.Module) -> Scalar:
    """Mean of the squared weight matrices (biases excluded) of a field's Linear layers."""
    mats = [
        leaf
        for leaf in jax.tree_util.tree_leaves(eqx.filter(field, eqx.is_inexact_array))
        if leaf.ndim == 2
    ]
    total = jnp.sum(jnp.stack([jnp.sum(m * m) for m in mats]))
    count = sum(m.size for m in mats)
    return total / count


def grad_and_laplacian(
    f: Callable[[Float[Array, 3]], Scalar], x: Float[Array, 3]
) -> tuple[Scalar, Float[Array, 3], Scalar]:
    """Value, gradient and exact Laplacian of a scalar field at one point.

    Forward-over-reverse: the gradient is linearised once and pushed along the three basis
    vectors (a vmapped jvp); only the diagonal of the Hessian is kept. The primal pass also
    yields the value and gradient, so Φ, ∇Φ and ∇²Φ cost one combined evaluation.
    """
    value_and_grad = jax.value_and_grad(f)

    def along(e: Float[Array, 3]) -> tuple[tuple[Scalar, Array], tuple[Scalar, Array]]:
        return jax.jvp(value_and_grad, (x,), (e,))

    (values, grads), (_, hess_cols) = jax.vmap(along)(_EYE3)
    return values[0], grads[0], jnp.trace(hess_cols)


def laplacian_full_hessian(f: Callable[[Float[Array, 3]], Scalar], x: Float[Array, 3]) -> Scalar:
    """Reference Laplacian from the fully materialised Hessian (for tests and benchmarks)."""
    return jnp.trace(jax.hessian(f)(x))
