"""Quantities derived from any potential: v_c(R), M(<r), K_z(R, z), Σ(R, |z| < z_max).

Every function takes a *potential-like* object: anything with ``acceleration(x)`` ((n, 3) kpc →
(n, 3) (km/s)²/kpc) and, where a density is integrated, ``density(x)`` ((n, 3) kpc → (n,)
M☉/kpc³) — a `PotentialSolution`, a `MultipoleExpansion`, or an analytic model. Positions are
Galactocentric Cartesian kpc with z the symmetry axis; results in kpc, km/s, M☉. Each call
gathers every quadrature point into one batch, so one evaluation call serves the whole grid.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from jaxtyping import ArrayLike, Float

from ._units import G

ENCLOSED_MASS_METHODS = ("gauss", "density")


def _radii(r: ArrayLike, name: str) -> np.ndarray:
    r = np.atleast_1d(np.asarray(r, dtype=np.float64))
    if r.ndim != 1:
        raise ValueError(f"{name} must be a scalar or a 1-d array, got shape {r.shape}")
    if not np.isfinite(r).all() or (r < 0).any():
        raise ValueError(f"{name} must be finite and ≥ 0")
    return r


def _azimuths(n_phi: int) -> np.ndarray:
    if n_phi < 1:
        raise ValueError(f"n_phi must be ≥ 1, got {n_phi}")
    return 2.0 * np.pi * (np.arange(n_phi) + 0.5) / n_phi


def sphere_quadrature(n_theta: int, n_phi: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (k, 3) and weights (k,) summing to 4π on the sphere.

    Gauss–Legendre in cos θ times the midpoint rule in φ: exact for spherical harmonics up to
    degree 2·n_theta − 1 in θ and n_phi − 1 in φ.
    """
    if n_theta < 1 or n_phi < 1:
        raise ValueError(f"n_theta and n_phi must be ≥ 1, got {n_theta}, {n_phi}")
    mu, w_mu = np.polynomial.legendre.leggauss(n_theta)
    phi = _azimuths(n_phi)
    s = np.sqrt(1.0 - mu**2)
    u = np.stack(
        [
            (s[:, None] * np.cos(phi)[None, :]).ravel(),
            (s[:, None] * np.sin(phi)[None, :]).ravel(),
            np.repeat(mu, n_phi),
        ],
        axis=1,
    )
    w = np.repeat(w_mu, n_phi) * (2.0 * np.pi / n_phi)
    return u, w


def circular_velocity(
    pot: Any, R: ArrayLike, *, z: float = 0.0, n_phi: int = 16
) -> Float[np.ndarray, " n"]:
    """Circular velocity v_c(R) = √(R ⟨−a_R⟩_φ) in km/s at cylindrical radii R (kpc).

    The radial force is averaged over ``n_phi`` azimuths at height ``z`` (for a
    non-axisymmetric potential this is the rotation curve of its azimuthal average). Where the
    mean radial force points outwards there is no circular orbit: the result is NaN there.
    """
    R = _radii(R, "R")
    phi = _azimuths(n_phi)
    x = np.stack(
        [
            (R[:, None] * np.cos(phi)).ravel(),
            (R[:, None] * np.sin(phi)).ravel(),
            np.full(R.size * phi.size, float(z)),
        ],
        axis=1,
    )
    a = np.asarray(pot.acceleration(x)).reshape(R.size, phi.size, 3)
    a_r = a[..., 0] * np.cos(phi) + a[..., 1] * np.sin(phi)
    v2 = -R * a_r.mean(axis=1)
    with np.errstate(invalid="ignore"):
        return np.where(v2 >= 0, np.sqrt(np.maximum(v2, 0.0)), np.nan)


def enclosed_mass(
    pot: Any,
    r: ArrayLike,
    *,
    method: Literal["gauss", "density"] = "gauss",
    n_theta: int = 12,
    n_phi: int = 24,
    n_r: int = 64,
) -> Float[np.ndarray, " n"]:
    """Mass M(<r) in M☉ inside spheres of radius r (kpc) about the origin.

    Args:
        pot: potential-like (``acceleration``; ``density`` for ``method="density"``).
        r: radii (kpc), scalar or 1-d.
        method: ``"gauss"`` — Gauss's law, M = r²⟨−a_r⟩/G with the radial force averaged over
            the sphere (needs the force on the sphere only; exact for any geometry, and it
            counts whatever mass the fitted force implies inside r); ``"density"`` — ∫ρ dV by
            quadrature (Gauss–Legendre in r with ``n_r`` nodes per radius, ``n_theta`` × ``n_phi``
            directions), which needs ρ everywhere inside r.
        n_theta, n_phi: angular quadrature (Gauss–Legendre in cos θ × midpoint in φ).
        n_r: radial Gauss–Legendre nodes (``density`` only).

    Returns:
        (n,) masses in M☉. The two methods agree to quadrature accuracy when ρ = ∇²Φ/4πG
        (tested on a Plummer sphere); a disagreement on a fitted model measures how far its
        density and force are from Poisson-consistent inside r.
    """
    r = _radii(r, "r")
    u, w = sphere_quadrature(n_theta, n_phi)
    if method == "gauss":
        x = (r[:, None, None] * u[None, :, :]).reshape(-1, 3)
        a = np.asarray(pot.acceleration(x)).reshape(r.size, u.shape[0], 3)
        a_r = np.sum(a * u[None], axis=2)
        return -(r**2) * (a_r @ w) / (4.0 * np.pi * G)
    if method == "density":
        t, w_t = np.polynomial.legendre.leggauss(n_r)
        s = 0.5 * (t + 1.0)  # nodes on (0, 1)
        radii = r[:, None] * s[None, :]  # (n, n_r)
        x = (radii[:, :, None, None] * u[None, None, :, :]).reshape(-1, 3)
        rho = np.asarray(pot.density(x)).reshape(r.size, n_r, u.shape[0])
        shell = rho @ w  # ∮ ρ dΩ at each radius
        return np.sum(shell * radii**2 * (0.5 * w_t)[None, :], axis=1) * r
    raise ValueError(f"method must be one of {ENCLOSED_MASS_METHODS}, got {method!r}")


def vertical_force(
    pot: Any, R: ArrayLike, z: ArrayLike, *, n_phi: int = 16
) -> Float[np.ndarray, " n"]:
    """K_z(R, z) = −∂Φ/∂z in (km/s)²/kpc, averaged over ``n_phi`` azimuths.

    ``R`` and ``z`` (kpc) broadcast against each other. Sign: the z-component of the
    acceleration, so K_z < 0 above a bound disc's mid-plane. |K_z|/(2πG) is the surface density
    of a plane-parallel slab (M☉/kpc²).
    """
    Rb, zb = np.broadcast_arrays(np.asarray(R, np.float64), np.asarray(z, np.float64))
    shape = Rb.shape
    Rf, zf = Rb.ravel(), zb.ravel()
    _radii(Rf, "R")
    phi = _azimuths(n_phi)
    x = np.stack(
        [
            (Rf[:, None] * np.cos(phi)).ravel(),
            (Rf[:, None] * np.sin(phi)).ravel(),
            np.repeat(zf, phi.size),
        ],
        axis=1,
    )
    a = np.asarray(pot.acceleration(x)).reshape(Rf.size, phi.size, 3)
    return a[..., 2].mean(axis=1).reshape(shape)


def surface_density(
    pot: Any, R: ArrayLike, z_max: float, *, n_z: int = 32, n_phi: int = 16
) -> Float[np.ndarray, " n"]:
    """Σ(R, |z| < z_max) = ∫_{−z_max}^{z_max} ρ dz in M☉/kpc², averaged over azimuth.

    Gauss–Legendre in z with ``n_z`` nodes and ``n_phi`` azimuths, from ``pot.density``.
    """
    R = _radii(R, "R")
    if not np.isfinite(z_max) or z_max <= 0:
        raise ValueError(f"z_max must be finite and > 0, got {z_max}")
    t, w_t = np.polynomial.legendre.leggauss(n_z)
    zs = z_max * t
    phi = _azimuths(n_phi)
    rr = np.repeat(R, phi.size * n_z)
    pp = np.tile(np.repeat(phi, n_z), R.size)
    zz = np.tile(zs, R.size * phi.size)
    x = np.stack([rr * np.cos(pp), rr * np.sin(pp), zz], axis=1)
    rho = np.asarray(pot.density(x)).reshape(R.size, phi.size, n_z)
    return (rho @ (z_max * w_t)).mean(axis=1)
