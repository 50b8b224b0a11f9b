"""Numba kernels of the mock (the only compiled code in dp-mock).

Randomness inside the kernels is counter-based: star ``i`` of a chunk draws its uniforms from a
splitmix64 stream keyed by ``(chunk_key, i, stream)``. The chunk keys are drawn in Python from
``np.random.SeedSequence``, so a catalogue is a pure function of one seed, whatever the number
of Numba threads or the order in which ``prange`` visits the stars.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_FOUR = np.uint64(4)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53
# g(q) = q^2 (1 - q^2)^(7/2) peaks at q^2 = 2/9; its maximum bounds the rejection sampler.
_G_MAX = (2.0 / 9.0) * (7.0 / 9.0) ** 3.5


@njit(inline="always")
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(inline="always")
def _stream(key: np.uint64, index: np.int64, stream: np.int64) -> np.uint64:
    return key ^ _mix(np.uint64(index) * _FOUR + np.uint64(stream) + _GOLDEN)


@njit(inline="always")
def _uniform(state: np.uint64) -> tuple[np.uint64, float]:
    """Next state and a uniform double in the open interval (0, 1)."""
    state = state + _GOLDEN
    bits = _mix(state) >> _S11
    return state, (float(bits) + 0.5) * _TWO_M53


@njit(cache=True, parallel=True)
def draw_positions_mags(
    key: np.uint64,
    n: int,
    b: float,
    mass_fraction_max: float,
    mag_mean: float,
    mag_std: float,
    x_out: np.ndarray,
    mag_out: np.ndarray,
) -> None:
    """Plummer positions (inverse mass CDF truncated at r_max) and Gaussian absolute magnitudes."""
    for i in prange(n):
        s = _stream(key, i, 0)
        s, u = _uniform(s)
        # M(<r)/M = r^3 / (r^2 + b^2)^(3/2)  =>  with w = (M(<r)/M)^(2/3): r = b sqrt(w / (1 - w)).
        w = (u * mass_fraction_max) ** (2.0 / 3.0)
        r = b * math.sqrt(w / (1.0 - w))
        s, u = _uniform(s)
        cos_t = 2.0 * u - 1.0
        sin_t = math.sqrt(max(0.0, 1.0 - cos_t * cos_t))
        s, u = _uniform(s)
        phi = 2.0 * math.pi * u
        x_out[i, 0] = r * sin_t * math.cos(phi)
        x_out[i, 1] = r * sin_t * math.sin(phi)
        x_out[i, 2] = r * cos_t
        s, u1 = _uniform(s)
        s, u2 = _uniform(s)
        gauss = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        mag_out[i] = mag_mean + mag_std * gauss


@njit(cache=True, parallel=True)
def draw_velocities(
    key: np.uint64, index: np.ndarray, x: np.ndarray, gm: float, b: float, v_out: np.ndarray
) -> None:
    """Isotropic velocities with q = |v|/v_esc drawn from q^2 (1 - q^2)^(7/2) by rejection."""
    for j in prange(index.shape[0]):
        s = _stream(key, index[j], 1)
        r2 = x[j, 0] ** 2 + x[j, 1] ** 2 + x[j, 2] ** 2
        v_esc = math.sqrt(2.0 * gm / math.sqrt(r2 + b * b))
        q = 0.0
        while True:
            s, q = _uniform(s)
            s, y = _uniform(s)
            if y * _G_MAX < q * q * (1.0 - q * q) ** 3.5:
                break
        s, u = _uniform(s)
        cos_t = 2.0 * u - 1.0
        sin_t = math.sqrt(max(0.0, 1.0 - cos_t * cos_t))
        s, u = _uniform(s)
        phi = 2.0 * math.pi * u
        v = q * v_esc
        v_out[j, 0] = v * sin_t * math.cos(phi)
        v_out[j, 1] = v * sin_t * math.sin(phi)
        v_out[j, 2] = v * cos_t


@njit(inline="always")
def _trilinear(grid: np.ndarray, lo: float, inv_dx: float, px: float, py: float, pz: float):
    """Trilinear interpolation of a periodic grid whose node (i, j, k) sits at lo + (i, j, k) dx."""
    n = grid.shape[0]
    fx = (px - lo) * inv_dx
    fy = (py - lo) * inv_dx
    fz = (pz - lo) * inv_dx
    ix = math.floor(fx)
    iy = math.floor(fy)
    iz = math.floor(fz)
    tx = fx - ix
    ty = fy - iy
    tz = fz - iz
    i0 = int(ix) % n
    j0 = int(iy) % n
    k0 = int(iz) % n
    i1 = (i0 + 1) % n
    j1 = (j0 + 1) % n
    k1 = (k0 + 1) % n
    c00 = grid[i0, j0, k0] * (1.0 - tz) + grid[i0, j0, k1] * tz
    c01 = grid[i0, j1, k0] * (1.0 - tz) + grid[i0, j1, k1] * tz
    c10 = grid[i1, j0, k0] * (1.0 - tz) + grid[i1, j0, k1] * tz
    c11 = grid[i1, j1, k0] * (1.0 - tz) + grid[i1, j1, k1] * tz
    c0 = c00 * (1.0 - ty) + c01 * ty
    c1 = c10 * (1.0 - ty) + c11 * ty
    return c0 * (1.0 - tx) + c1 * tx


@njit(cache=True, parallel=True)
def trilinear_points(grid: np.ndarray, lo: float, dx: float, x: np.ndarray, out: np.ndarray):
    """Trilinear (periodic) interpolation of ``grid`` at every row of ``x``."""
    inv_dx = 1.0 / dx
    for i in prange(x.shape[0]):
        out[i] = _trilinear(grid, lo, inv_dx, x[i, 0], x[i, 1], x[i, 2])


@njit(cache=True, parallel=True)
def extinction_rays(
    grid: np.ndarray,
    lo: float,
    dx: float,
    x: np.ndarray,
    budget: np.ndarray,
    step: float,
    out: np.ndarray,
) -> None:
    """Midpoint-rule integral of ``grid`` along the ray from the origin to each point.

    The ray to a point at distance d is cut into ceil(d / step) equal steps. A ray stops as soon
    as its running sum reaches ``budget[i]`` (the star is then too faint whatever the rest of
    the ray holds); ``out[i] >= budget[i]`` flags such rays. Pass ``inf`` for the full integral.
    """
    inv_dx = 1.0 / dx
    for i in prange(x.shape[0]):
        px = x[i, 0]
        py = x[i, 1]
        pz = x[i, 2]
        d = math.sqrt(px * px + py * py + pz * pz)
        if d == 0.0:
            out[i] = 0.0
            continue
        n_steps = max(1, math.ceil(d / step))
        h = d / n_steps
        ux = px / d * h
        uy = py / d * h
        uz = pz / d * h
        limit = budget[i] / h
        acc = 0.0
        for k in range(n_steps):
            t = k + 0.5
            acc += _trilinear(grid, lo, inv_dx, t * ux, t * uy, t * uz)
            if acc >= limit:
                break
        out[i] = acc * h


_GAUSS_LO = 0.5 - 0.5 / math.sqrt(3.0)
_GAUSS_HI = 0.5 + 0.5 / math.sqrt(3.0)


@njit(cache=True, parallel=True)
def extinction_cells(
    grid: np.ndarray, lo: float, dx: float, x: np.ndarray, budget: np.ndarray, out: np.ndarray
) -> None:
    """Exact integral of the trilinear field along the ray from the origin to each point.

    ``grid`` is the periodic (G, G, G) grid padded to (G+1, G+1, G+1) with its own first layers
    (so no index wraps), and every point must lie inside the box. The ray is cut at every grid
    plane it crosses (Amanatides & Woo traversal). Inside one cell the trilinear interpolant
    restricted to a line is a cubic in the path length, so 2-point Gauss-Legendre on each cell
    segment integrates it exactly: the result is exact up to round-off, with the 8 corner values
    loaded once per cell crossed. A ray stops once its running sum reaches ``budget[i]`` (then
    ``out[i] >= budget[i]``); pass ``inf`` for the full integral.
    """
    inv_dx = 1.0 / dx
    n_cells = grid.shape[0] - 1
    for i in prange(x.shape[0]):
        p0 = x[i, 0]
        p1 = x[i, 1]
        p2 = x[i, 2]
        d = math.sqrt(p0 * p0 + p1 * p1 + p2 * p2)
        if d == 0.0:
            out[i] = 0.0
            continue
        # Ray in grid units: f(t) = f0 + t g, t in kpc.
        f0 = -lo * inv_dx
        g0 = p0 / d * inv_dx
        g1 = p1 / d * inv_dx
        g2 = p2 / d * inv_dx
        n0, dl0 = _first_crossing(f0, g0)
        n1, dl1 = _first_crossing(f0, g1)
        n2, dl2 = _first_crossing(f0, g2)
        t = 0.0
        acc = 0.0
        limit = budget[i]
        while t < d:
            t1 = min(n0, n1, n2, d)
            h = t1 - t
            if h > 0.0:
                tm = t + 0.5 * h
                c0 = f0 + tm * g0
                c1 = f0 + tm * g1
                c2 = f0 + tm * g2
                i0 = min(max(math.floor(c0), 0), n_cells - 1)
                j0 = min(max(math.floor(c1), 0), n_cells - 1)
                k0 = min(max(math.floor(c2), 0), n_cells - 1)
                v000 = grid[i0, j0, k0]
                v001 = grid[i0, j0, k0 + 1]
                v010 = grid[i0, j0 + 1, k0]
                v011 = grid[i0, j0 + 1, k0 + 1]
                v100 = grid[i0 + 1, j0, k0]
                v101 = grid[i0 + 1, j0, k0 + 1]
                v110 = grid[i0 + 1, j0 + 1, k0]
                v111 = grid[i0 + 1, j0 + 1, k0 + 1]
                s = 0.0
                for ta in (t + _GAUSS_LO * h, t + _GAUSS_HI * h):
                    tx = f0 + ta * g0 - i0
                    ty = f0 + ta * g1 - j0
                    tz = f0 + ta * g2 - k0
                    a00 = v000 + (v001 - v000) * tz
                    a01 = v010 + (v011 - v010) * tz
                    a10 = v100 + (v101 - v100) * tz
                    a11 = v110 + (v111 - v110) * tz
                    b0 = a00 + (a01 - a00) * ty
                    b1 = a10 + (a11 - a10) * ty
                    s += b0 + (b1 - b0) * tx
                acc += 0.5 * h * s
                if acc >= limit:
                    break
            if t1 == n0:
                n0 += dl0
            elif t1 == n1:
                n1 += dl1
            elif t1 == n2:
                n2 += dl2
            t = t1
        out[i] = acc


@njit(inline="always")
def _first_crossing(f0: float, g: float) -> tuple[float, float]:
    """(path length to the first integer plane, spacing) for a coordinate f0 + t g in cells."""
    if g > 0.0:
        return (math.floor(f0) + 1.0 - f0) / g, 1.0 / g
    if g < 0.0:
        frac = f0 - math.floor(f0)
        return (frac if frac > 0.0 else 1.0) / -g, -1.0 / g
    return math.inf, math.inf


@njit(cache=True, parallel=True)
def normal_cdf(z: np.ndarray, out: np.ndarray) -> None:
    """Standard normal CDF, elementwise (math.erfc keeps the far tails accurate)."""
    for i in prange(z.shape[0]):
        out[i] = 0.5 * math.erfc(-z[i] / math.sqrt(2.0))


@njit(cache=True, parallel=True)
def magnitude_budget(
    x: np.ndarray,
    gauss: np.ndarray,
    mag_mean: float,
    mag_std: float,
    m_max: float,
    mu_out: np.ndarray,
    budget_out: np.ndarray,
) -> None:
    """Distance modulus μ = 5 log10(100 d/kpc) and the extinction budget m_max − M − μ."""
    for i in prange(x.shape[0]):
        d = math.sqrt(x[i, 0] ** 2 + x[i, 1] ** 2 + x[i, 2] ** 2)
        mu = 5.0 * math.log10(d * 100.0) if d > 0.0 else -math.inf
        mu_out[i] = mu
        budget_out[i] = m_max - (mag_mean + mag_std * gauss[i]) - mu
