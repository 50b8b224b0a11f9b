"""Magnitude selection: M ~ N(M̄, σ_M²), observed when M + μ(d) + A < m_max, and r < r_max."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from . import _kernels
from ._systems import _as_points


def distance_modulus(d: Float[np.ndarray, " n"]) -> Float[np.ndarray, " n"]:
    """μ = 5 log₁₀(d / 10 pc) for d in kpc (−inf at d = 0)."""
    with np.errstate(divide="ignore"):
        return 5.0 * np.log10(np.asarray(d, dtype=np.float64) * 100.0)


def normal_cdf(z: Float[np.ndarray, " n"]) -> Float[np.ndarray, " n"]:
    """Standard normal CDF Φ_N, elementwise (accurate in both tails)."""
    z = np.ascontiguousarray(z, dtype=np.float64)
    flat = z.reshape(-1)
    out = np.empty_like(flat)
    _kernels.normal_cdf(flat, out)
    return out.reshape(z.shape)


@dataclass(frozen=True)
class MagnitudeSelection:
    """Observer at the origin; absolute magnitudes N(mag_mean, mag_std²); limit m_max; r < r_max.

    Args:
        mag_mean: mean absolute magnitude M̄ (mag).
        mag_std: its standard deviation σ_M (mag).
        m_max: apparent-magnitude limit (mag).
        r_max: only stars with r < r_max (kpc) exist; S = 0 beyond.
    """

    mag_mean: float = 5.0
    mag_std: float = 2.0
    m_max: float = 18.0
    r_max: float = 8.0

    def __post_init__(self) -> None:
        if not self.mag_std > 0:
            raise ValueError(f"mag_std must be positive, got {self.mag_std!r}")
        if not self.r_max > 0:
            raise ValueError(f"r_max must be positive, got {self.r_max!r}")
        if not math.isfinite(self.m_max) or not math.isfinite(self.mag_mean):
            raise ValueError("m_max and mag_mean must be finite")

    def probability(
        self, x: Float[np.ndarray, "n 3"], extinction: Float[np.ndarray, " n"] | None = None
    ) -> Float[np.ndarray, " n"]:
        """S(x) = Φ_N((m_max − M̄ − μ(|x|) − A(x)) / σ_M) for r < r_max, else 0; shape (n,).

        Args:
            x: positions (kpc), shape (n, 3).
            extinction: A(x) in mag, shape (n,); None for the dust-free selection.
        """
        x = _as_points(x)
        d = np.sqrt(np.einsum("ij,ij->i", x, x))
        a = np.zeros(len(x)) if extinction is None else np.asarray(extinction, dtype=np.float64)
        if a.shape != (len(x),):
            raise ValueError(f"extinction must have shape ({len(x)},), got {a.shape}")
        z = (self.m_max - self.mag_mean - distance_modulus(d) - a) / self.mag_std
        return np.where(d < self.r_max, normal_cdf(z), 0.0)

    def dust_free_fraction(
        self,
        b: float,
        n_radii: int = 4096,
        radial_pdf: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> float:
        """Expected fraction of tracers observed without dust.

        ∫₀^r_max p(r) S₀(r) dr by the midpoint rule in r (``n_radii`` points; for smooth p(r),
        4096 points give ~1e-7 relative error), with p(r) ∝ ``radial_pdf(r)`` (default: the
        Plummer sphere of scale radius b, p(r) ∝ r² (1 + r²/b²)^(−5/2)).
        """
        r = (np.arange(n_radii) + 0.5) * (self.r_max / n_radii)
        pdf = r**2 * (1.0 + (r / b) ** 2) ** -2.5 if radial_pdf is None else radial_pdf(r)
        pts = np.zeros((n_radii, 3))
        pts[:, 0] = r
        s = self.probability(pts)
        return float(np.sum(pdf * s) / np.sum(pdf))
