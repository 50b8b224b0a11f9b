"""Isotropic Hernquist-sphere oracle for dp-cbe tests: a cuspy system (ρ ∝ 1/r inside a) whose
density falls by ~3–4 orders of magnitude inside R_MAX. Closed forms written here (dp-cbe must
not import dp-mock). Physical units: kpc, km/s, M☉; G = 4.300917e-6 kpc (km/s)²/M☉.

Φ = −GM/(r + a); ρ = M a / (2π r (r + a)³); f(E) ∝ (1−q²)^{−5/2} g(q) with q² = −E a/GM and
g(q) = 3 asin q + q √(1−q²) (1−2q²)(8q⁴ − 8q² − 3) (Hernquist 1990, eq. 17).
"""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np

G = 4.300917e-6
GM = 2.0e6  # kpc (km/s)² (GM/A = (1000 km/s)², like the Plummer oracle)
A = 2.0  # kpc
R_MAX = 8.0  # kpc


def _series_g(n_terms: int = 14) -> np.ndarray:
    """Taylor coefficients of g(q) in q (exact rationals → float); g = O(q⁵)."""
    deg = 2 * n_terms + 7
    c = [Fraction(0)] * (deg + 1)
    for k in range((deg - 1) // 2 + 1):  # 3 asin q
        c[2 * k + 1] += 3 * Fraction(comb(2 * k, k), 4**k * (2 * k + 1))
    poly = {
        1: Fraction(-3),
        3: Fraction(-2),
        5: Fraction(24),
        7: Fraction(-16),
    }  # q·(1−2q²)(8q⁴−8q²−3)
    for k in range(deg // 2 + 1):  # × √(1−q²) = Σ C(1/2, k) (−q²)^k
        b = Fraction(1)
        for j in range(k):
            b *= Fraction(1, 2) - j
            b /= j + 1
        for p, a in poly.items():
            if p + 2 * k <= deg:
                c[p + 2 * k] += a * b * (-1) ** k
    assert all(c[i] == 0 for i in range(5)), c[:5]
    return np.array([float(x) for x in c])


_G_SERIES = _series_g()
_DG_SERIES = _G_SERIES[1:] * np.arange(1, len(_G_SERIES))


def _g_and_dg(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.sqrt(1 - q * q)
    k = -16 * q**6 + 24 * q**4 - 2 * q**2 - 3
    dk = -96 * q**5 + 96 * q**3 - 4 * q
    g = 3 * np.arcsin(q) + q * s * k
    dg = 3 / s + (1 - 2 * q * q) / s * k + q * s * dk
    small = q < 0.15  # cancellation: use the series (terms to q^35, error < 1e-25 relative)
    gs = np.polynomial.polynomial.polyval(q, _G_SERIES)
    dgs = np.polynomial.polynomial.polyval(q, _DG_SERIES)
    return np.where(small, gs, g), np.where(small, dgs, dg)


def potential(x: np.ndarray) -> np.ndarray:
    return -GM / (np.linalg.norm(x, axis=1) + A)


def grad_potential(x: np.ndarray) -> np.ndarray:
    r = np.linalg.norm(x, axis=1, keepdims=True)
    return GM * x / (r * (r + A) ** 2)


def density(x: np.ndarray) -> np.ndarray:
    r = np.linalg.norm(x, axis=1)
    return (GM / G) * A / (2 * np.pi * r * (r + A) ** 3)


def grad_ln_n(x: np.ndarray) -> np.ndarray:
    r = np.linalg.norm(x, axis=1, keepdims=True)
    return -(1 / r + 3 / (r + A)) * x / r


def ln_f(e: np.ndarray) -> np.ndarray:
    """ln f(E) up to a constant, for −GM/A < E < 0."""
    q = np.sqrt(-e * A / GM)
    return -2.5 * np.log1p(-q * q) + np.log(_g_and_dg(q)[0])


def dln_f_de(e: np.ndarray) -> np.ndarray:
    q = np.sqrt(-e * A / GM)
    g, dg = _g_and_dg(q)
    dlnf_dq = 5 * q / (1 - q * q) + dg / g
    return dlnf_dq * (-A / (2 * q * GM))


def grad_ln_p(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """∇_x ln p(v|x), ∇_v ln p(v|x) = f'/f ∇Φ − ∇ln n, f'/f v (kpc⁻¹, (km/s)⁻¹)."""
    e = 0.5 * np.sum(v * v, axis=1) + potential(x)
    d = dln_f_de(e)[:, None]
    return d * grad_potential(x) - grad_ln_n(x), d * v


def sample_positions(seed: int, n: int, uniform: bool = False) -> np.ndarray:
    """Positions inside R_MAX: ∝ ρ (the tracers) or, with ``uniform``, uniform in the ball."""
    rng = np.random.default_rng([seed, 0])
    if uniform:
        r = R_MAX * rng.uniform(0, 1, n) ** (1 / 3)
    else:  # M(<r) ∝ r²/(r+a)²: invert √m = r/(r+a)
        m_max = (R_MAX / (R_MAX + A)) ** 2
        sq = np.sqrt(rng.uniform(0, m_max, n))
        r = A * sq / (1 - sq)
    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True) * r[:, None]


def sample_velocities(seed: int, x: np.ndarray) -> np.ndarray:
    """Exact draws v ~ p(v|x) (rejection on the speed, envelope from a 256-point grid × 1.5)."""
    rng = np.random.default_rng([seed, 1])
    n = len(x)
    phi = potential(x)
    v_esc = np.sqrt(-2 * phi)
    u = np.linspace(0.0, 1.0, 258)[1:-1]

    def log_target(uu: np.ndarray, rows: np.ndarray) -> np.ndarray:
        e = phi[rows, None] * (1 - uu * uu)  # Φ + v²/2 with v = u v_esc
        return 2 * np.log(uu) + ln_f(e)

    env = np.empty(n)
    for s in range(0, n, 8192):
        rows = np.arange(s, min(n, s + 8192))
        env[rows] = log_target(u[None, :], rows).max(axis=1) + np.log(1.5)
    speed = np.full(n, np.nan)
    todo = np.arange(n)
    while todo.size:
        uu = rng.uniform(0, 1, todo.size)
        ok = np.log(rng.uniform(0, 1, todo.size)) < log_target(uu[:, None], todo)[:, 0] - env[todo]
        speed[todo[ok]] = uu[ok] * v_esc[todo[ok]]
        todo = todo[~ok]
    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True) * speed[:, None]


def gradients(
    seed: int, n: int, uniform: bool = False, group: int = 1
) -> dict[str, np.ndarray | str | int]:
    """Exact conditional gradients: keys x, v, dlnf_dx, dlnf_dv, density, group_size
    (``group`` > 1: n // group positions, each with ``group`` velocities)."""
    x = np.repeat(sample_positions(seed, n // group, uniform), group, axis=0)
    v = sample_velocities(seed, x)
    dx, dv = grad_ln_p(x, v)
    return {"x": x, "v": v, "dlnf_dx": dx, "dlnf_dv": dv, "density": "p_v_given_x",
            "group_size": group}  # fmt: skip
