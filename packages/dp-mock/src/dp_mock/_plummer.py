"""The Plummer sphere: the mock's truth, in closed form (kpc, km/s, M☉)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from . import _kernels

G: float = 4.300917e-6
"""Gravitational constant in kpc (km/s)² / M☉."""

Points = Float[np.ndarray, "n 3"]
Values = Float[np.ndarray, " n"]

# ∫_0^1 q² (1 − q²)^(7/2) dq = B(3/2, 9/2) / 2 = 7π/512: the velocity pdf's normalisation.
_Q_INTEGRAL = 7.0 * math.pi / 512.0


def _as_points(x: object, name: str = "x") -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n, 3), got {arr.shape}")
    return arr


def chunk_key(seed: int | np.random.SeedSequence) -> np.uint64:
    """A 64-bit kernel key drawn from a seed (int or SeedSequence)."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.uint64(ss.generate_state(1, np.uint64)[0])


@dataclass(frozen=True)
class PlummerSphere:
    """Plummer sphere Φ = −GM/√(r²+b²) with the isotropic DF f(E) ∝ (−E)^(7/2), truncated at r_max.

    The tracers follow the mass (n ∝ ρ) and exist only at r < r_max; velocities are untruncated.
    ``number_density`` and ``log_df`` are normalised over r < r_max.

    Args:
        b: scale radius (kpc).
        gm: G M ((km/s)² kpc); the default gives GM/b = (1000 km/s)².
        r_max: truncation radius of the tracers (kpc); ``inf`` for none.
        G: gravitational constant (kpc (km/s)² / M☉), only used to turn gm into a mass.

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

    def __post_init__(self) -> None:
        for name in ("b", "gm", "r_max", "G"):
            value = getattr(self, name)
            if not (value > 0) or math.isnan(value):
                raise ValueError(f"PlummerSphere: {name} must be positive, got {value!r}")

    @property
    def mass(self) -> float:
        """Total (untruncated) mass M = gm / G (M☉)."""
        return self.gm / self.G

    @property
    def mass_fraction_max(self) -> float:
        """M(<r_max)/M = r_max³ / (r_max² + b²)^(3/2)."""
        if math.isinf(self.r_max):
            return 1.0
        return self.r_max**3 / (self.r_max**2 + self.b**2) ** 1.5

    def _r2(self, x: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", x, x)

    def potential(self, x: Points) -> Values:
        """Φ(x) = −GM/√(r²+b²), shape (n,), (km/s)²."""
        x = _as_points(x)
        return -self.gm / np.sqrt(self._r2(x) + self.b**2)

    def acceleration(self, x: Points) -> Points:
        """−∇Φ = −GM x / (r²+b²)^(3/2), shape (n, 3), (km/s)²/kpc."""
        x = _as_points(x)
        return -self.gm * x / ((self._r2(x) + self.b**2) ** 1.5)[:, None]

    def density(self, x: Points) -> Values:
        """Mass density ρ = 3M/(4πb³) (1 + r²/b²)^(−5/2), shape (n,), M☉/kpc³ (untruncated)."""
        x = _as_points(x)
        rho0 = 3.0 * self.mass / (4.0 * math.pi * self.b**3)
        return rho0 * (1.0 + self._r2(x) / self.b**2) ** -2.5

    def number_density(self, x: Points) -> Values:
        """Tracer pdf n(x) = ρ/M(<r_max) inside r_max, 0 outside; shape (n,), kpc⁻³."""
        x = _as_points(x)
        inside = self._r2(x) < self.r_max**2
        return np.where(inside, self.density(x) / (self.mass * self.mass_fraction_max), 0.0)

    def log_p_v_given_x(self, x: Points, v: Points) -> Values:
        """ln p(v|x) = (7/2) ln(−E) − ln[4π√8 ψ⁵ · 7π/512], ψ = −Φ; −inf where E ≥ 0. Shape (n,)."""
        x, v = _as_points(x), _as_points(v, "v")
        psi = -self.potential(x)
        neg_e = psi - 0.5 * self._r2(v)
        log_norm = math.log(4.0 * math.pi * 2.0**1.5 * _Q_INTEGRAL) + 5.0 * np.log(psi)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = 3.5 * np.log(np.where(neg_e > 0, neg_e, 0.0)) - log_norm
        return out

    def log_df(self, x: Points, v: Points) -> Values:
        """ln f(x, v) = ln n(x) + ln p(v|x), normalised to 1 over r < r_max; shape (n,)."""
        x, v = _as_points(x), _as_points(v, "v")
        with np.errstate(divide="ignore"):
            return np.log(self.number_density(x)) + self.log_p_v_given_x(x, v)

    def _neg_energy(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        neg_e = -self.potential(x) - 0.5 * self._r2(v)
        if np.any(neg_e <= 0):
            raise ValueError(f"{int(np.sum(neg_e <= 0))} rows are unbound (E >= 0): ln f = -inf")
        return neg_e

    def grad_log_f(self, x: Points, v: Points) -> tuple[Points, Points]:
        """(∇_x ln f, ∇_v ln f) = ((7/2) a/(−E), −(7/2) v/(−E)); kpc⁻¹, (km/s)⁻¹, each (n, 3)."""
        x, v = _as_points(x), _as_points(v, "v")
        neg_e = self._neg_energy(x, v)[:, None]
        return 3.5 * self.acceleration(x) / neg_e, -3.5 * v / neg_e

    def grad_log_p_v_given_x(self, x: Points, v: Points) -> tuple[Points, Points]:
        """(∇_x ln p, ∇_v ln p), with ∇_x ln p = (7/2) a/(−E) − 5 a/ψ (a = −∇Φ); each (n, 3)."""
        x, v = _as_points(x), _as_points(v, "v")
        d_dx, d_dv = self.grad_log_f(x, v)
        psi = -self.potential(x)[:, None]
        return d_dx - 5.0 * self.acceleration(x) / psi, d_dv

    def sample_positions(self, key: np.uint64, n: int) -> tuple[Points, Values]:
        """Positions (n, 3) and N(0, 1) variates (n,) from one kernel key (see ``sample``)."""
        x = np.empty((n, 3))
        g = np.empty(n)
        _kernels.draw_positions_mags(key, n, self.b, self.mass_fraction_max, 0.0, 1.0, x, g)
        return x, g

    def sample_velocities(self, key: np.uint64, index: np.ndarray, x: Points) -> Points:
        """Velocities (n, 3) for stars ``index`` (int64) at positions ``x`` of a chunk ``key``."""
        v = np.empty((len(index), 3))
        index = np.ascontiguousarray(index, dtype=np.int64)
        _kernels.draw_velocities(key, index, np.ascontiguousarray(x), self.gm, self.b, v)
        return v

    def sample(self, seed: int, n: int) -> tuple[Points, Points]:
        """Draw n stars (x (n, 3) kpc, v (n, 3) km/s) from the truncated DF, reproducibly.

        Args:
            seed: integer seed; the result depends on nothing else (not on Numba's thread count).
            n: number of stars.
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        key = chunk_key(seed)
        x, _ = self.sample_positions(key, n)
        return x, self.sample_velocities(key, np.arange(n, dtype=np.int64), x)
