"""Multipole expansion of a potential from its density, for fast long orbit integrations.

Φ(x) = Σ_lm Φ_lm(r) Y_lm(x̂) with real orthonormal spherical harmonics (l ≤ l_max, the order of
`real_solid_harmonics`, l = 0 first). From ρ_lm(r) = ∮ ρ Y_lm dΩ on a radial grid,

    Φ_lm(r) = −4πG/(2l+1) [r^−(l+1) ∫_0^r ρ_lm s^(l+2) ds + r^l ∫_r^r_max ρ_lm s^(1−l) ds],

tabulated at the grid nodes with exact r-derivatives and interpolated by cubic Hermite
polynomials (C¹ in r). The density is taken as zero beyond ``r_max``, so mass outside the
data volume (whose interior field is harmonic: a constant plus tidal terms r^l Y_lm) is restored
by matching the source's potential on the sphere r = r_max with harmonic terms c_lm (r/r_max)^l.
Beyond r_max the expansion continues in vacuum: Φ_lm ∝ (r_max/r)^(l+1) (the l = 0 constant
stays), so the force is defined everywhere but is an extrapolation there.
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Scalar

from ._derived import sphere_quadrature
from ._evaluate import BatchEvaluator, JaxPotential
from ._fields import real_solid_harmonics
from ._units import POTENTIAL_UNIT, G

_Y00 = 1.0 / math.sqrt(4.0 * math.pi)


def _harmonics(u: Float[Array, 3], l_max: int) -> Float[Array, " L"]:
    """Y_lm(û) for 0 ≤ l ≤ l_max, l = 0 first (|u| = 1)."""
    y0 = jnp.full((1,), _Y00, u.dtype)
    return jnp.concatenate([y0, real_solid_harmonics(u, l_max)]) if l_max > 0 else y0


def _degrees(l_max: int) -> np.ndarray:
    return np.concatenate([np.full(2 * ell + 1, ell) for ell in range(l_max + 1)]).astype(float)


class MultipoleField(eqx.Module):
    """The expansion as a one-point scalar field Φ(x) in internal units ((100 km/s)²).

    Attributes:
        values, slopes: (n_r + 1, L) Φ_lm and dΦ_lm/dr at the nodes r_k = k·r_max/n_r.
        outer: (L,) constant part of Φ_lm beyond r_max (only l = 0 is non-zero).
        ell: (L,) degree of each coefficient.
        r_max: outer radius of the grid (kpc); l_max: highest degree.
    """

    values: Float[Array, "k L"]
    slopes: Float[Array, "k L"]
    outer: Float[Array, " L"]
    ell: Float[Array, " L"]
    r_max: float = eqx.field(static=True)
    l_max: int = eqx.field(static=True)

    def __call__(self, x: Float[Array, 3]) -> Scalar:
        """Φ at one point x (3,) in kpc, internal units."""
        n_r = self.values.shape[0] - 1
        h = self.r_max / n_r
        r = jnp.sqrt(jnp.sum(x * x) + 1e-20)  # smooth at x = 0
        k = jnp.clip(jnp.floor(r / h).astype(jnp.int32), 0, n_r - 1)
        t = jnp.clip(r / h - k, 0.0, 1.0)
        t2, t3 = t * t, t * t * t
        inner = (
            (2 * t3 - 3 * t2 + 1) * self.values[k]
            + (t3 - 2 * t2 + t) * h * self.slopes[k]
            + (-2 * t3 + 3 * t2) * self.values[k + 1]
            + (t3 - t2) * h * self.slopes[k + 1]
        )
        ratio = self.r_max / jnp.maximum(r, self.r_max)
        outside = self.outer + (self.values[-1] - self.outer) * ratio ** (self.ell + 1)
        phi_lm = jnp.where(r <= self.r_max, inner, outside)
        return jnp.dot(phi_lm, _harmonics(x / r, self.l_max))


class MultipoleExpansion:
    """A fitted potential's multipole expansion, evaluated in physical units (NumPy in/out).

    Build it with `multipole_expansion` (or ``sol.multipole_expansion()``). Methods mirror
    `PotentialSolution`: ``potential``, ``acceleration``, ``hessian``, ``density`` on (n, 3)
    kpc; ``as_jax()`` gives the jit-able `JaxPotential`. Works with `to_gala`/`to_galpy`.

    Attributes:
        field: the `MultipoleField`.
        l_max, r_max, n_r: truncation and radial grid.
        accuracy: filled by `multipole_expansion` when a check was requested: the relative
            force error |a_exp − a_src|/|a_src| (median, p90, max) at random points inside r_max.
    """

    def __init__(self, field: MultipoleField) -> None:
        self.field = field
        self.l_max = field.l_max
        self.r_max = field.r_max
        self.n_r = int(field.values.shape[0] - 1)
        self.accuracy: dict[str, float] = {}
        self._eval = BatchEvaluator(JaxPotential(field))

    def as_jax(self) -> JaxPotential:
        """Pure-JAX one-point functions (potential, acceleration, hessian, density)."""
        return JaxPotential(self.field)

    def potential(self, x: ArrayLike) -> Float[np.ndarray, " n"]:
        """Φ(x) in (km/s)²; x (n, 3) in kpc."""
        return self._eval("potential", x)[0]

    def acceleration(self, x: ArrayLike) -> Float[np.ndarray, "n 3"]:
        """−∇Φ(x) in (km/s)²/kpc; x (n, 3) in kpc."""
        return self._eval("acceleration", x)[0]

    def hessian(self, x: ArrayLike) -> Float[np.ndarray, "n 3 3"]:
        """∂²Φ/∂x_i∂x_j in (km/s)²/kpc²; x (n, 3) in kpc."""
        return self._eval("hessian", x)[0]

    def density(self, x: ArrayLike) -> Float[np.ndarray, " n"]:
        """∇²Φ/(4πG) of the expansion in M☉/kpc³; x (n, 3) in kpc."""
        return self._eval("density", x)[0]


def multipole_expansion(
    pot: Any,
    *,
    r_max: float,
    l_max: int = 6,
    n_r: int = 64,
    n_sub: int = 3,
    n_theta: int | None = None,
    n_phi: int | None = None,
    match_potential: bool = True,
    check_points: int = 4096,
    seed: int = 0,
) -> MultipoleExpansion:
    """Expand a potential-like object's density in multipoles on a radial grid.

    Args:
        pot: anything with ``density(x)`` (M☉/kpc³) and, for ``match_potential``,
            ``potential(x)`` ((km/s)²), on (n, 3) kpc — e.g. a `PotentialSolution`.
        r_max: outer radius of the radial grid (kpc); use the data volume's radius.
        l_max: highest spherical-harmonic degree kept.
        n_r: radial intervals (uniform in r); Φ_lm is cubic-Hermite between nodes.
        n_sub: Gauss–Legendre points per interval for the radial integrals.
        n_theta, n_phi: angular quadrature (default 2·l_max + 2 and 4·l_max + 4: twice the
            resolution needed to project degree l_max exactly, to limit aliasing).
        match_potential: add harmonic terms c_lm (r/r_max)^l so that the expansion matches
            ``pot.potential`` on the sphere r_max (restores the field of mass beyond r_max and
            the additive constant of Φ).
        check_points: random points, uniform in the ball r < r_max, at which the relative
            force error against ``pot.acceleration`` is measured and stored in ``.accuracy``
            (0: no check).
        seed: seed of those points.

    Returns:
        A `MultipoleExpansion`. Cost: n_r·(n_sub+1)·n_theta·n_phi density evaluations.
    """
    if l_max < 0 or n_r < 1 or n_sub < 1:
        raise ValueError(f"need l_max ≥ 0, n_r ≥ 1, n_sub ≥ 1; got {l_max}, {n_r}, {n_sub}")
    if not (np.isfinite(r_max) and r_max > 0):
        raise ValueError(f"r_max must be finite and > 0, got {r_max}")
    n_theta = 2 * l_max + 2 if n_theta is None else n_theta
    n_phi = 4 * l_max + 4 if n_phi is None else n_phi
    u, w = sphere_quadrature(n_theta, n_phi)
    y = np.asarray(jax.vmap(lambda v: _harmonics(v, l_max))(jnp.asarray(u)), np.float64)
    ell = _degrees(l_max)

    nodes = np.linspace(0.0, r_max, n_r + 1)
    h = r_max / n_r
    g, wg = np.polynomial.legendre.leggauss(n_sub)
    sub = nodes[:-1, None] + 0.5 * h * (g[None, :] + 1.0)  # (n_r, n_sub)
    radii = np.concatenate([nodes[1:], sub.ravel()])  # r = 0 is never needed (cusps)
    x = (radii[:, None, None] * u[None, :, :]).reshape(-1, 3)
    rho = np.asarray(pot.density(x), np.float64).reshape(radii.size, u.shape[0])
    rho_lm = (rho * w[None, :]) @ y  # (radii, L)
    rho_nodes = np.concatenate([np.zeros((1, ell.size)), rho_lm[:n_r]])
    rho_sub = rho_lm[n_r:].reshape(n_r, n_sub, -1)

    # Radial integrals per interval, then cumulative from the centre / from r_max.
    s = sub[:, :, None]
    wi = (0.5 * h * wg)[None, :, None]
    inner_int = np.sum(wi * rho_sub * s ** (ell + 2), axis=1)  # (n_r, L)
    outer_int = np.sum(wi * rho_sub * s ** (1 - ell), axis=1)
    p_in = np.concatenate([np.zeros((1, ell.size)), np.cumsum(inner_int, axis=0)])
    p_out = np.concatenate([np.cumsum(outer_int[::-1], axis=0)[::-1], np.zeros((1, ell.size))])

    r = nodes[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(r > 0, p_in / r ** (ell + 1), 0.0)
        b = np.where(r > 0, p_out * r**ell, np.where(ell == 0, p_out, 0.0))
        da = np.where(r > 0, -(ell + 1) * a / r + rho_nodes * r, 0.0)
        db = np.where(r > 0, ell * b / r - rho_nodes * r, np.where(ell == 1, p_out, 0.0))
    coeff = -4.0 * np.pi * G / (2 * ell + 1)
    values = coeff * (a + b)
    slopes = coeff * (da + db)

    outer = np.zeros(ell.size)
    if match_potential:
        target = np.asarray(pot.potential(r_max * u), np.float64)
        c = ((target - y @ values[-1]) * w) @ y
        q = r / r_max
        values = values + c * q**ell
        with np.errstate(divide="ignore", invalid="ignore"):
            slopes = slopes + c * np.where(ell > 0, ell * q ** np.maximum(ell - 1, 0), 0.0) / r_max
        outer[0] = c[0]

    field = MultipoleField(
        values=jnp.asarray(values / POTENTIAL_UNIT, jnp.float32),
        slopes=jnp.asarray(slopes / POTENTIAL_UNIT, jnp.float32),
        outer=jnp.asarray(outer / POTENTIAL_UNIT, jnp.float32),
        ell=jnp.asarray(ell, jnp.float32),
        r_max=float(r_max),
        l_max=int(l_max),
    )
    expansion = MultipoleExpansion(field)
    if check_points > 0:
        expansion.accuracy = force_accuracy(expansion, pot, r_max, check_points, seed=seed)
    return expansion


def force_accuracy(
    approx: Any, reference: Any, r_max: float, n: int = 4096, *, seed: int = 0
) -> dict[str, float]:
    """Relative force error |a − a_ref|/|a_ref| at n points uniform in the ball r < r_max.

    Returns:
        ``{"median", "p90", "max", "rms_rel"}`` (``rms_rel``: rms of |a − a_ref| over rms of
        |a_ref|, robust to points where the reference force vanishes), plus ``n`` and ``r_max``.
    """
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    x = d * (r_max * rng.uniform(0, 1, n) ** (1 / 3))[:, None]
    a_ref = np.asarray(reference.acceleration(x))
    err = np.linalg.norm(np.asarray(approx.acceleration(x)) - a_ref, axis=1)
    norm = np.linalg.norm(a_ref, axis=1)
    rel = err / np.maximum(norm, 1e-30)
    return {
        "median": float(np.median(rel)),
        "p90": float(np.percentile(rel, 90)),
        "max": float(rel.max()),
        "rms_rel": float(np.sqrt(np.mean(err**2) / np.mean(norm**2))),
        "n": float(n),
        "r_max": float(r_max),
    }
