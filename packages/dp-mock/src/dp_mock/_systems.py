"""AbstractSphericalSystem: the closed-form truth shared by every spherical mock (kpc, km/s, M☉).

A concrete system gives Φ(r), ρ(r), M(<r) and its DF f(Q) (Q = Ψ − v²/2 − L²/(2 r_a²), Ψ = −Φ;
isotropic when r_a = ∞); this class turns them into the tracer pdf, ln f, ln p(v|x), their
gradients, velocity moments and sampling. Conventions:

- the tracers follow the mass and exist only at r < r_max: n(x) = ρ(x) / M(<r_max) there, 0
  beyond; f(x, v) = n(x) p(v|x) integrates to 1;
- p(v|x) = f_M(Q) / ρ(r), where f_M is the mass-normalised DF (∫ f_M d³v = ρ); a system stores an
  unnormalised f̃ = f_M / K and the velocity normalisation ∫ f̃ d³v, whose x-gradient is ∇ ln ρ;
- Osipkov–Merritt sampling: with w_r = v_r and w_t = v_t √(1 + r²/r_a²), Q = Ψ − |w|²/2, so w is
  isotropic with |w| ∝ w² f̃(Ψ − w²/2); then v_t = w_t / √(1 + r²/r_a²).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import ClassVar

import numpy as np
from jaxtyping import Float

from . import _kernels
from ._seeds import chunk_key

G: float = 4.300917e-6
"""Gravitational constant in kpc (km/s)² / M☉."""

Points = Float[np.ndarray, "n 3"]
"""(n, 3) positions or velocities (kpc, km/s): the package's one definition of the alias."""
Values = Float[np.ndarray, " n"]
"""(n,) values, one per point."""
Radii = Float[np.ndarray, " m"]
"""(m,) radii (kpc) or values at radii."""

# Gauss–Legendre nodes for the velocity moments, in θ with q = |w|/w_esc = sin θ: q² f̃(Ψ(1 − q²))
# dq = sin²θ f̃(Ψ cos²θ) cos θ dθ is smooth at θ = π/2 for f̃ ∝ Q^n (n = 1/2, 3/2, 5/2, 7/2 here).
# 8 panels of 24 nodes, the first narrow (θ < π/256, ...) to resolve the cusp's peak near r = 0.
_PANEL_EDGES = (
    0.5 * math.pi * np.array([0.0, 1 / 128, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1])
)


def _moment_nodes() -> tuple[np.ndarray, np.ndarray]:
    t, w = np.polynomial.legendre.leggauss(24)
    lo, hi = _PANEL_EDGES[:-1, None], _PANEL_EDGES[1:, None]
    theta = (lo + 0.5 * (hi - lo) * (t + 1)).ravel()
    return np.sin(theta), (0.5 * (hi - lo) * w).ravel() * np.cos(theta)


_Q_NODES, _Q_WEIGHTS = _moment_nodes()


def _as_points(x: object, name: str = "x") -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n, 3), got {arr.shape}")
    return arr


def _r2(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


class AbstractSphericalSystem(abc.ABC):
    """A spherical system with a closed-form (Osipkov–Merritt or isotropic) DF, truncated at r_max.

    Concrete subclasses are frozen dataclasses with fields ``gm`` ((km/s)² kpc), ``r_max`` (kpc),
    ``G`` and ``anisotropy_radius`` (kpc, ``inf`` for isotropic), plus a scale radius.
    """

    gm: float
    r_max: float
    G: float
    anisotropy_radius: float
    kernel_model: ClassVar[int]
    """Model id of the Numba kernels (0 Plummer, 1 Hernquist)."""

    # --- what a system defines -----------------------------------------------------------------

    @property
    @abc.abstractmethod
    def scale_radius(self) -> float:
        """Scale radius (kpc): Φ(0) = −GM / scale_radius for both models here."""

    @abc.abstractmethod
    def potential(self, x: Points) -> Values:
        """Φ(x), shape (n,), (km/s)²."""

    @abc.abstractmethod
    def acceleration(self, x: Points) -> Points:
        """−∇Φ(x), shape (n, 3), (km/s)²/kpc."""

    @abc.abstractmethod
    def density(self, x: Points) -> Values:
        """Mass density ρ(x), shape (n,), M☉/kpc³ (untruncated)."""

    @abc.abstractmethod
    def mass_fraction(self, r: Radii) -> Radii:
        """M(<r)/M (untruncated), for radii r (kpc)."""

    @abc.abstractmethod
    def _grad_log_rho(self, x: np.ndarray) -> np.ndarray:
        """∇ ln ρ(x), shape (n, 3), kpc⁻¹."""

    @abc.abstractmethod
    def _log_f(self, q: np.ndarray) -> np.ndarray:
        """ln f̃(Q) for Q > 0 (f̃ ∝ the DF)."""

    @abc.abstractmethod
    def _q_dlog_f(self, q: np.ndarray) -> np.ndarray:
        """Q d ln f̃ / dQ for Q > 0 (dimensionless)."""

    @abc.abstractmethod
    def _log_velocity_norm(self, x: np.ndarray, psi: np.ndarray) -> np.ndarray:
        """ln ∫ f̃(Q) d³v at x (Ψ = psi), shape (n,)."""

    # --- common machinery --------------------------------------------------------------------

    def _check(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            name = f.name
            if not (value > 0) or math.isnan(value):
                raise ValueError(f"{type(self).__name__}: {name} must be positive, got {value!r}")

    @property
    def isotropic(self) -> bool:
        """Whether r_a = ∞ (f depends on E only)."""
        return math.isinf(self.anisotropy_radius)

    @property
    def psi0(self) -> float:
        """Ψ(0) = GM / scale_radius ((km/s)²): the largest Q."""
        return self.gm / self.scale_radius

    @property
    def mass(self) -> float:
        """Total (untruncated) mass M = gm / G (M☉)."""
        return self.gm / self.G

    @property
    def mass_fraction_max(self) -> float:
        """M(<r_max)/M."""
        if math.isinf(self.r_max):
            return 1.0
        return float(self.mass_fraction(np.array([self.r_max]))[0])

    def enclosed_mass(self, r: Radii) -> Radii:
        """M(<r) = M · mass_fraction(r) in M☉ at radii r (kpc), the untruncated mass.

        The potential belongs to the whole (untruncated) system; only the tracers stop at r_max,
        so this is the mass that sets Φ, and M(<r) keeps growing beyond r_max. Closed forms:
        Plummer M r³/(r² + b²)^(3/2), Hernquist M r²/(r + a)².
        """
        r = np.asarray(r, dtype=np.float64)
        return self.mass * self.mass_fraction(r)

    def circular_velocity(self, r: Radii) -> Radii:
        """v_c(r) = √(G M(<r) / r) in km/s at radii r (kpc); 0 at r = 0.

        For a spherical system v_c² = r |∂Φ/∂r| = G M(<r)/r by Gauss's law, so this equals
        √(r |a(r)|) of ``acceleration`` (tested).
        """
        r = np.asarray(r, dtype=np.float64)
        frac = np.asarray(self.mass_fraction(r), dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            v2 = np.where(r > 0, self.gm * frac / np.where(r > 0, r, 1.0), 0.0)
        return np.sqrt(v2)

    def anisotropy(self, r: Radii) -> Radii:
        """β(r) = 1 − σ_t²/σ_r² = r²/(r² + r_a²) (0 when isotropic)."""
        r = np.asarray(r, dtype=np.float64)
        if self.isotropic:
            return np.zeros_like(r)
        return r**2 / (r**2 + self.anisotropy_radius**2)

    def number_density(self, x: Points) -> Values:
        """Tracer pdf n(x) = ρ/M(<r_max) inside r_max, 0 outside; shape (n,), kpc⁻³."""
        x = _as_points(x)
        inside = _r2(x) < self.r_max**2
        return np.where(inside, self.density(x) / (self.mass * self.mass_fraction_max), 0.0)

    def _q(self, x: np.ndarray, v: np.ndarray, psi: np.ndarray) -> np.ndarray:
        q = psi - 0.5 * _r2(v)
        if not self.isotropic:
            l2 = _r2(np.cross(x, v))
            q = q - 0.5 * l2 / self.anisotropy_radius**2
        return q

    def _grad_q(self, x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(∇_x Q, ∇_v Q): ∇Ψ − (|v|² x − (x·v) v)/r_a² and −v − (r² v − (x·v) x)/r_a²."""
        d_dx, d_dv = self.acceleration(x), -v
        if not self.isotropic:
            xv = np.einsum("ij,ij->i", x, v)[:, None]
            inv = 1.0 / self.anisotropy_radius**2
            d_dx = d_dx - inv * (_r2(v)[:, None] * x - xv * v)
            d_dv = d_dv - inv * (_r2(x)[:, None] * v - xv * x)
        return d_dx, d_dv

    def log_p_v_given_x(self, x: Points, v: Points) -> Values:
        """ln p(v|x) = ln f̃(Q) − ln ∫ f̃ d³v, normalised over v; −inf where Q ≤ 0. Shape (n,)."""
        x, v = _as_points(x), _as_points(v, "v")
        psi = -self.potential(x)
        q = self._q(x, v, psi)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_f = np.where(q > 0, self._log_f(np.where(q > 0, q, 1.0)), -np.inf)
            return log_f - self._log_velocity_norm(x, psi)

    def log_df(self, x: Points, v: Points) -> Values:
        """ln f(x, v) = ln n(x) + ln p(v|x), normalised to 1 over r < r_max; shape (n,)."""
        x, v = _as_points(x), _as_points(v, "v")
        with np.errstate(divide="ignore"):
            return np.log(self.number_density(x)) + self.log_p_v_given_x(x, v)

    def _bound_q(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        q = self._q(x, v, -self.potential(x))
        if np.any(q <= 0):
            raise ValueError(f"{int(np.sum(q <= 0))} rows are unbound (Q <= 0): ln f = -inf")
        return q

    def grad_log_f(self, x: Points, v: Points) -> tuple[Points, Points]:
        """(∇_x ln f, ∇_v ln f) = (d ln f̃/dQ) (∇_x Q, ∇_v Q); kpc⁻¹, (km/s)⁻¹, each (n, 3)."""
        x, v = _as_points(x), _as_points(v, "v")
        q = self._bound_q(x, v)
        k = self._q_dlog_f(q)[:, None]
        d_dx, d_dv = self._grad_q(x, v)
        q = q[:, None]
        return k * d_dx / q, k * d_dv / q

    def grad_log_p_v_given_x(self, x: Points, v: Points) -> tuple[Points, Points]:
        """(∇_x ln p, ∇_v ln p), with ∇_x ln p = ∇_x ln f − ∇ ln ρ; each (n, 3)."""
        x, v = _as_points(x), _as_points(v, "v")
        d_dx, d_dv = self.grad_log_f(x, v)
        return d_dx - self._grad_log_rho(x), d_dv

    def velocity_moments(self, r: Radii) -> tuple[Radii, Radii, Radii]:
        """(σ_r², σ_t², κ) at radii r: radial and one tangential component's dispersion
        ((km/s)²) and the radial kurtosis κ = ⟨v_r⁴⟩/σ_r⁴, from the DF.

        With w isotropic (see the module docstring): σ_r² = ⟨w²⟩/3, σ_t² = σ_r² (1 − β) and
        κ = (9/5) ⟨w⁴⟩/⟨w²⟩²; the ⟨w^2k⟩ are Gauss–Legendre sums over q = |w|/w_esc (8 panels
        of 24 nodes, relative error < 1e-10 for r ≥ 1e-3 scale radii, tested).
        """
        r = np.asarray(r, dtype=np.float64)
        x = np.zeros((r.size, 3))
        x[:, 0] = r.ravel()
        psi = -self.potential(x)[:, None]
        q = psi * (1.0 - _Q_NODES**2)
        with np.errstate(divide="ignore"):
            log_f = np.where(q > 0, self._log_f(np.where(q > 0, q, 1.0)), -np.inf)
        weight = _Q_WEIGHTS * _Q_NODES**2 * np.exp(log_f - log_f.max(axis=1, keepdims=True))
        m0 = weight.sum(axis=1)
        m2 = (weight * _Q_NODES**2).sum(axis=1) / m0
        m4 = (weight * _Q_NODES**4).sum(axis=1) / m0
        w_esc2 = 2.0 * psi[:, 0]
        sigma_r2 = (m2 * w_esc2 / 3.0).reshape(r.shape)
        kappa = (1.8 * m4 / m2**2).reshape(r.shape)
        return sigma_r2, sigma_r2 * (1.0 - self.anisotropy(r)), kappa

    def _df_params(self) -> tuple[int, float, float]:
        inv_ra2 = 0.0 if self.isotropic else 1.0 / self.anisotropy_radius**2
        return self.kernel_model, self.scale_radius, inv_ra2

    def sample_positions(self, key: np.uint64, n: int) -> tuple[Points, Values]:
        """Positions (n, 3) and N(0, 1) variates (n,) from one kernel key (see ``sample``)."""
        x = np.empty((n, 3))
        g = np.empty(n)
        _kernels.draw_positions_mags(
            key, n, self.kernel_model, self.scale_radius, self.mass_fraction_max, 0.0, 1.0, x, g
        )
        return x, g

    def sample_velocities(self, key: np.uint64, index: np.ndarray, x: Points) -> Points:
        """Velocities (n, 3) ~ p(v|x) for stars ``index`` (int64) at positions ``x`` of a chunk
        ``key``: star i's velocity depends only on (key, index[i], x[i])."""
        x = np.ascontiguousarray(_as_points(x))
        index = np.ascontiguousarray(index, dtype=np.int64)
        if index.shape != (len(x),):
            raise ValueError(f"index must have shape ({len(x)},), got {index.shape}")
        v = np.empty((len(index), 3))
        model, scale, inv_ra2 = self._df_params()
        _kernels.draw_velocities_df(key, index, x, model, self.gm, scale, inv_ra2, v)
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
