"""The Plummer sphere, isotropic or Osipkov–Merritt, in closed form (kpc, km/s, M☉)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from . import _kernels
from ._systems import AbstractSphericalSystem, G, Points, Radii, Values, _as_points, _r2

# ∫_0^1 q² (1 − q²)^(7/2) dq = B(3/2, 9/2) / 2 = 7π/512 and ∫_0^1 q² (1 − q²)^(3/2) dq = π/32:
# the velocity pdf's normalisations of the two power laws of the DF.
_Q_INTEGRAL = 7.0 * math.pi / 512.0
_Q_INTEGRAL_OM = math.pi / 32.0
MIN_ANISOTROPY_RADIUS = 0.75
"""Plummer's Osipkov–Merritt DF is non-negative iff r_a ≥ 0.75 b."""


@dataclass(frozen=True)
class PlummerSphere(AbstractSphericalSystem):
    """Plummer sphere Φ = −GM/√(r²+b²), ρ ∝ (1 + r²/b²)^(−5/2), truncated at r_max.

    Isotropic (r_a = ∞): f(E) ∝ (−E)^(7/2). Osipkov–Merritt (finite r_a), with α = b²/r_a² and
    Q in units of GM/b: f(Q) ∝ (1 − α) Q^(7/2) + (7/16) α Q^(3/2), from Eddington's formula for
    ρ_Q = (1 + r²/r_a²) ρ = (3M/4πb³) [(1 − α) Ψ⁵ + α Ψ³] (Ψ in units of GM/b). It is
    non-negative iff α ≤ 16/9, i.e. r_a ≥ 0.75 b. β(r) = r²/(r² + r_a²).

    The tracers follow the mass (n ∝ ρ) and exist only at r < r_max; velocities are untruncated.
    ``number_density`` and ``log_df`` are normalised over r < r_max.

    Args:
        b: scale radius (kpc).
        gm: G M ((km/s)² kpc); the default gives GM/b = (1000 km/s)².
        r_max: truncation radius of the tracers (kpc); ``inf`` for none.
        G: gravitational constant (kpc (km/s)² / M☉), only used to turn gm into a mass.
        anisotropy_radius: Osipkov–Merritt radius r_a (kpc); ``inf`` (default) is isotropic.

    Example:
        >>> p = PlummerSphere()
        >>> x, v = p.sample(0, 1000)
        >>> bool(np.all(np.linalg.norm(x, axis=1) < p.r_max))
        True
    """

    b: float = 10.0
    gm: float = 1.0e7
    r_max: float = 8.0
    G: float = G
    anisotropy_radius: float = math.inf
    kernel_model: ClassVar[int] = _kernels.PLUMMER

    def __post_init__(self) -> None:
        self._check()
        if self.anisotropy_radius < MIN_ANISOTROPY_RADIUS * self.b:
            raise ValueError(
                f"PlummerSphere: anisotropy_radius = {self.anisotropy_radius!r} kpc makes the "
                f"Osipkov–Merritt DF negative near the centre; it must be >= 0.75 b = "
                f"{MIN_ANISOTROPY_RADIUS * self.b:g} kpc"
            )

    @property
    def scale_radius(self) -> float:
        """b (kpc)."""
        return self.b

    @property
    def _alpha(self) -> float:
        return 0.0 if self.isotropic else (self.b / self.anisotropy_radius) ** 2

    @property
    def mass_fraction_max(self) -> float:
        """M(<r_max)/M = r_max³ / (r_max² + b²)^(3/2)."""
        if math.isinf(self.r_max):
            return 1.0
        return self.r_max**3 / (self.r_max**2 + self.b**2) ** 1.5

    def mass_fraction(self, r: Radii) -> Radii:
        """M(<r)/M = r³ / (r² + b²)^(3/2)."""
        r = np.asarray(r, dtype=np.float64)
        return r**3 / (r**2 + self.b**2) ** 1.5

    def potential(self, x: Points) -> Values:
        """Φ(x) = −GM/√(r²+b²), shape (n,), (km/s)²."""
        x = _as_points(x)
        return -self.gm / np.sqrt(_r2(x) + self.b**2)

    def acceleration(self, x: Points) -> Points:
        """−∇Φ = −GM x / (r²+b²)^(3/2), shape (n, 3), (km/s)²/kpc."""
        x = _as_points(x)
        return -self.gm * x / ((_r2(x) + self.b**2) ** 1.5)[:, None]

    def density(self, x: Points) -> Values:
        """Mass density ρ = 3M/(4πb³) (1 + r²/b²)^(−5/2), shape (n,), M☉/kpc³ (untruncated)."""
        x = _as_points(x)
        rho0 = 3.0 * self.mass / (4.0 * math.pi * self.b**3)
        return rho0 * (1.0 + _r2(x) / self.b**2) ** -2.5

    def _grad_log_rho(self, x: np.ndarray) -> np.ndarray:
        # ρ ∝ Ψ⁵, so ∇ ln ρ = 5 ∇Ψ/Ψ = 5 a/Ψ.
        return 5.0 * self.acceleration(x) / (-self.potential(x))[:, None]

    def _log_f(self, q: np.ndarray) -> np.ndarray:
        if self.isotropic:
            return 3.5 * np.log(q)
        alpha, e = self._alpha, q / self.psi0
        return 3.5 * np.log(q) + np.log((1.0 - alpha) + 7.0 / 16.0 * alpha / e**2)

    def _q_dlog_f(self, q: np.ndarray) -> np.ndarray:
        if self.isotropic:
            return np.full(q.shape, 3.5)
        alpha, e2 = self._alpha, (q / self.psi0) ** 2
        tail = 7.0 / 16.0 * alpha
        return 3.5 - 2.0 * tail / ((1.0 - alpha) * e2 + tail)

    def _log_velocity_norm(self, x: np.ndarray, psi: np.ndarray) -> np.ndarray:
        # ∫ f̃ d³v = 4π (2Ψ)^(3/2) ∫_0^1 q² f̃(Ψ(1 − q²)) dq / (1 + r²/r_a²).
        if self.isotropic:
            return math.log(4.0 * math.pi * 2.0**1.5 * _Q_INTEGRAL) + 5.0 * np.log(psi)
        alpha = self._alpha
        lead = (1.0 - alpha) * _Q_INTEGRAL * psi**5
        tail = 7.0 / 16.0 * alpha * self.psi0**2 * _Q_INTEGRAL_OM * psi**3
        s2 = 1.0 + _r2(x) / self.anisotropy_radius**2
        return np.log(4.0 * math.pi * 2.0**1.5 * (lead + tail) / s2)

    def velocity_moments(self, r: Radii) -> tuple[Radii, Radii, Radii]:
        """(σ_r², σ_t², κ) at radii r in closed form (see the base class).

        With q² ~ Beta(3/2, n + 1) for each power law Q^n of the DF, ⟨q^2k⟩ are Beta-function
        ratios: isotropic σ² = Ψ/6 and κ = 18/7.
        """
        shape = np.shape(r)
        r = np.asarray(r, dtype=np.float64).ravel()
        psi = self.gm / np.sqrt(r**2 + self.b**2)
        alpha = self._alpha
        # ∫_0^1 q^(2k+2) (1 − q²)^n dq = B(k + 3/2, n + 1)/2 for n = 7/2 and 3/2, k = 0, 1, 2.
        lead = np.array([_beta(k + 1.5, 4.5) for k in range(3)])[:, None]
        tail = np.array([_beta(k + 1.5, 2.5) for k in range(3)])[:, None]
        m = (1.0 - alpha) * psi**3.5 * lead + 7.0 / 16.0 * alpha * self.psi0**2 * psi**1.5 * tail
        q2, q4 = m[1] / m[0], m[2] / m[0]
        sigma_r2 = q2 * 2.0 * psi / 3.0
        sigma_t2 = sigma_r2 * (1.0 - self.anisotropy(r))
        return sigma_r2.reshape(shape), sigma_t2.reshape(shape), (1.8 * q4 / q2**2).reshape(shape)

    def sample_velocities(self, key: np.uint64, index: np.ndarray, x: Points) -> Points:
        """Velocities (n, 3) ~ p(v|x) for stars ``index`` (int64) at positions ``x`` of a chunk
        ``key``; the isotropic case uses the closed-form rejection bound of ``(−E)^(7/2)``."""
        if not self.isotropic:
            return super().sample_velocities(key, index, x)
        v = np.empty((len(index), 3))
        index = np.ascontiguousarray(index, dtype=np.int64)
        _kernels.draw_velocities(key, index, np.ascontiguousarray(x), self.gm, self.b, v)
        return v


def _beta(a: float, b: float) -> float:
    return math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
