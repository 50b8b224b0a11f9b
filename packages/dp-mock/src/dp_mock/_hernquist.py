"""The Hernquist sphere, isotropic or Osipkov–Merritt, in closed form (kpc, km/s, M☉)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from . import _kernels
from ._systems import AbstractSphericalSystem, G, Points, Radii, Values, _as_points, _r2

MIN_ANISOTROPY_RADIUS = 0.2024
"""Hernquist's Osipkov–Merritt DF is non-negative iff r_a ≳ 0.20236 a (rounded up here)."""


def hernquist_df(eps: np.ndarray, alpha: float = 0.0) -> np.ndarray:
    """F(ε) = (1 − ε)^(−5/2) h(ε) + 8 α √ε (1 − 2ε), the unnormalised Hernquist DF.

    h(ε) = 3 arcsin √ε + √(ε(1 − ε)) (1 − 2ε)(8ε² − 8ε − 3); ε = Q a / GM ∈ (0, 1); α = (a/r_a)²
    (0: isotropic). The mass-normalised DF is M / (8√2 π³ a³ (GM/a)^(3/2)) F(ε).
    """
    eps = np.ascontiguousarray(eps, dtype=np.float64)
    out = np.empty(eps.size)
    _kernels.df_values(_kernels.HERNQUIST, float(alpha), eps.ravel(), out)
    return out.reshape(eps.shape)


@dataclass(frozen=True)
class HernquistSphere(AbstractSphericalSystem):
    """Hernquist sphere Φ = −GM/(r + a), ρ = M a / (2π r (r + a)³), truncated at r_max.

    Isotropic DF (Hernquist 1990), with ε = Q a/GM and v_g = √(GM/a):
    f = M / (8√2 π³ a³ v_g³) F(ε), F = (1 − ε)^(−5/2) [3 arcsin √ε + √(ε(1−ε)) (1 − 2ε)
    (8ε² − 8ε − 3)]. Osipkov–Merritt (finite r_a): F gains 8 (a/r_a)² √ε (1 − 2ε), Eddington's
    inversion of the extra density r²ρ/r_a² = M (ε² − ε³)/(2π a r_a²); f ≥ 0 iff r_a ≥ 0.2024 a.

    Args:
        a: scale radius (kpc).
        gm: G M ((km/s)² kpc).
        r_max: truncation radius of the tracers (kpc); ``inf`` for none.
        G: gravitational constant (kpc (km/s)² / M☉), only used to turn gm into a mass.
        anisotropy_radius: Osipkov–Merritt radius r_a (kpc); ``inf`` (default) is isotropic.

    Example:
        >>> h = HernquistSphere(a=2.0, gm=2.0e6)
        >>> x, v = h.sample(0, 1000)
        >>> bool(np.all(np.sum(v**2, axis=1) < -2 * h.potential(x)))
        True
    """

    a: float = 2.0
    gm: float = 2.0e6
    r_max: float = 8.0
    G: float = G
    anisotropy_radius: float = math.inf
    kernel_model: ClassVar[int] = _kernels.HERNQUIST

    def __post_init__(self) -> None:
        self._check()
        if self.anisotropy_radius < MIN_ANISOTROPY_RADIUS * self.a:
            raise ValueError(
                f"HernquistSphere: anisotropy_radius = {self.anisotropy_radius!r} kpc makes the "
                f"Osipkov–Merritt DF negative (near Q = 0.62 GM/a); it must be >= 0.2024 a = "
                f"{MIN_ANISOTROPY_RADIUS * self.a:g} kpc"
            )

    @property
    def scale_radius(self) -> float:
        """a (kpc)."""
        return self.a

    @property
    def _alpha(self) -> float:
        return 0.0 if self.isotropic else (self.a / self.anisotropy_radius) ** 2

    def mass_fraction(self, r: Radii) -> Radii:
        """M(<r)/M = r² / (r + a)²."""
        r = np.asarray(r, dtype=np.float64)
        return r**2 / (r + self.a) ** 2

    def potential(self, x: Points) -> Values:
        """Φ(x) = −GM/(r + a), shape (n,), (km/s)²."""
        x = _as_points(x)
        return -self.gm / (np.sqrt(_r2(x)) + self.a)

    def acceleration(self, x: Points) -> Points:
        """−∇Φ = −GM x / (r (r + a)²) (0 at r = 0), shape (n, 3), (km/s)²/kpc."""
        x = _as_points(x)
        r = np.sqrt(_r2(x))
        with np.errstate(divide="ignore"):
            inv_r = np.where(r > 0, 1.0 / r, 0.0)
        return (-self.gm * inv_r / (r + self.a) ** 2)[:, None] * x

    def density(self, x: Points) -> Values:
        """Mass density ρ = M a / (2π r (r + a)³), shape (n,), M☉/kpc³ (untruncated; inf at 0)."""
        x = _as_points(x)
        r = np.sqrt(_r2(x))
        with np.errstate(divide="ignore"):
            return self.mass * self.a / (2.0 * math.pi * r * (r + self.a) ** 3)

    def _grad_log_rho(self, x: np.ndarray) -> np.ndarray:
        # d ln ρ / dr = −1/r − 3/(r + a), along x/r.
        r = np.sqrt(_r2(x))
        return (-(1.0 / r + 3.0 / (r + self.a)) / r)[:, None] * x

    def _log_norm(self) -> float:
        """ln K, f_M = K F(ε): K = M / (8√2 π³ a³ (GM/a)^(3/2))."""
        return math.log(self.mass / (8.0 * math.sqrt(2.0) * math.pi**3 * self.a**3)) - 1.5 * (
            math.log(self.psi0)
        )

    def _log_f(self, q: np.ndarray) -> np.ndarray:
        return np.log(hernquist_df(q / self.psi0, self._alpha))

    def _q_dlog_f(self, q: np.ndarray) -> np.ndarray:
        # F' = (5/2)(1 − ε)^(−7/2) h + 64 ε^(3/2)/(1 − ε) + 8α (1/(2√ε) − 3√ε), using h' =
        # 64 (ε(1 − ε))^(3/2); returns ε F'/F.
        e = q / self.psi0
        alpha = self._alpha
        iso = hernquist_df(e)
        d_iso = 2.5 * iso / (1.0 - e) + 64.0 * e**1.5 / (1.0 - e)
        root = np.sqrt(e)
        f = iso + 8.0 * alpha * root * (1.0 - 2.0 * e)
        df = d_iso + 8.0 * alpha * (0.5 / root - 3.0 * root)
        return e * df / f

    def _log_velocity_norm(self, x: np.ndarray, psi: np.ndarray) -> np.ndarray:
        # ∫ f_M d³v = ρ, so ∫ F d³v = ρ / K.
        with np.errstate(divide="ignore"):
            return np.log(self.density(x)) - self._log_norm()
