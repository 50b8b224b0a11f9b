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
def _stream(key: np.uint64, index: int | np.int64, stream: int) -> np.uint64:
    return key ^ _mix(np.uint64(index) * _FOUR + np.uint64(stream) + _GOLDEN)


@njit(inline="always")
def _uniform(state: np.uint64) -> tuple[np.uint64, float]:
    """Next state and a uniform double in the open interval (0, 1)."""
    state = state + _GOLDEN
    bits = _mix(state) >> _S11
    return state, (float(bits) + 0.5) * _TWO_M53


PLUMMER = 0
HERNQUIST = 1
_ENVELOPE_CELLS = 32
# Hernquist: h(ε) = ∫_0^ε 64 (t(1 − t))^(3/2) dt, summed as a series below ε = 0.02 (where the
# closed form loses digits to cancellation): h = 64 Σ_k c_k ε^(k + 5/2) / (k + 5/2), with
# c_k = (−1)^k binom(3/2, k); 12 terms leave a relative truncation error < 1e-19 at ε = 0.02.
_H_SERIES = np.array(
    [
        64.0 * (-1.0) ** k * math.prod((1.5 - j) for j in range(k)) / math.factorial(k) / (k + 2.5)
        for k in range(12)
    ]
)
_H_SWITCH = 0.02


@njit(inline="always")
def _radius_of_mass(model: int, scale: float, m: float) -> float:
    """Radius enclosing the mass fraction m of the untruncated system."""
    if model == PLUMMER:
        # M(<r)/M = r^3 / (r^2 + b^2)^(3/2)  =>  with w = m^(2/3): r = b sqrt(w / (1 - w)).
        w = m ** (2.0 / 3.0)
        return scale * math.sqrt(w / (1.0 - w))
    # Hernquist: M(<r)/M = r^2 / (r + a)^2  =>  r = a sqrt(m) / (1 - sqrt(m)).
    s = math.sqrt(m)
    return scale * s / (1.0 - s)


@njit(cache=True, parallel=True)
def draw_positions_mags(
    key: np.uint64,
    n: int,
    model: int,
    scale: float,
    mass_fraction_max: float,
    mag_mean: float,
    mag_std: float,
    x_out: np.ndarray,
    mag_out: np.ndarray,
) -> None:
    """Positions (inverse mass CDF truncated at r_max) and Gaussian absolute magnitudes."""
    for i in prange(n):
        s = _stream(key, i, 0)
        s, u = _uniform(s)
        r = _radius_of_mass(model, scale, u * mass_fraction_max)
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
    """Isotropic Plummer velocities: q = |v|/v_esc from q^2 (1 - q^2)^(7/2) by rejection under
    its closed-form maximum (acceptance ≈ 47 %); ``draw_velocities_df`` handles every other DF."""
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
def _hernquist_h(e: float) -> float:
    """h(ε) = 3 arcsin √ε + √(ε(1 − ε)) (1 − 2ε)(8ε² − 8ε − 3) = ∫_0^ε 64 (t(1 − t))^(3/2) dt."""
    if e < _H_SWITCH:
        acc = 0.0
        p = e * e * math.sqrt(e)
        for k in range(_H_SERIES.shape[0]):
            acc += _H_SERIES[k] * p
            p *= e
        return acc
    return 3.0 * math.asin(math.sqrt(e)) + math.sqrt(e * (1.0 - e)) * (1.0 - 2.0 * e) * (
        8.0 * e * e - 8.0 * e - 3.0
    )


@njit(inline="always")
def _df_parts(model: int, alpha: float, e: float) -> tuple[float, float]:
    """Increasing parts (f⁺, f⁻) of the unnormalised DF f̃ = f⁺ − f⁻ at ε = Q/Ψ(0) ∈ (0, 1].

    Plummer: f̃ = (1 − α) ε^(7/2) + (7/16) α ε^(3/2); Hernquist:
    f̃ = (1 − ε)^(−5/2) h(ε) + 8 α √ε (1 − 2ε); α = (scale radius / r_a)² (0 if isotropic).
    """
    if e <= 0.0:
        return 0.0, 0.0
    if model == PLUMMER:
        lead = (1.0 - alpha) * e**3.5
        tail = 7.0 / 16.0 * alpha * e**1.5
        if alpha <= 1.0:
            return lead + tail, 0.0
        return tail, -lead
    e = min(e, 1.0)
    iso = _hernquist_h(e) / (1.0 - e) ** 2.5 if e < 1.0 else math.inf
    root = math.sqrt(e)
    return iso + 8.0 * alpha * root, 16.0 * alpha * e * root


@njit(cache=True, parallel=True)
def df_values(model: int, alpha: float, e: np.ndarray, out: np.ndarray) -> None:
    """f̃(ε) = f⁺ − f⁻ elementwise (see ``_df_parts``); 0 for ε ≤ 0."""
    for i in prange(e.shape[0]):
        fp, fm = _df_parts(model, alpha, e[i])
        out[i] = fp - fm


@njit(cache=True, parallel=True)
def draw_velocities_df(
    key: np.uint64,
    index: np.ndarray,
    x: np.ndarray,
    model: int,
    gm: float,
    scale: float,
    inv_ra2: float,
    v_out: np.ndarray,
) -> None:
    """Velocities from an isotropic or Osipkov–Merritt DF f̃(Q), exactly, by rejection.

    w = (v_r, v_t √(1 + r²/r_a²)) is isotropic with q = |w|/w_esc ∝ q² f̃(Ψ (1 − q²)). The
    proposal is a step function on 32 equal cells of q: on [q_i, q_(i+1)] it is
    q_(i+1)² (f⁺(Ψ(1 − q_i²)) − f⁻(Ψ(1 − q_(i+1)²))), an upper bound because f⁺ and f⁻ increase
    with Q; so the draw is exact for any Ψ, including the cusp's narrow peak.
    """
    psi0 = gm / scale
    alpha = scale * scale * inv_ra2
    n_cells = _ENVELOPE_CELLS
    for j in prange(index.shape[0]):
        s = _stream(key, index[j], 1)
        r2 = x[j, 0] ** 2 + x[j, 1] ** 2 + x[j, 2] ** 2
        r = math.sqrt(r2)
        if model == PLUMMER:
            psi = gm / math.sqrt(r2 + scale * scale)
        else:
            psi = gm / (r + scale)
        e_psi = psi / psi0
        cum = np.empty(n_cells + 1)
        bound = np.empty(n_cells)
        cum[0] = 0.0
        for i in range(n_cells):
            q_lo = i / n_cells
            q_hi = (i + 1) / n_cells
            fp, _ = _df_parts(model, alpha, e_psi * (1.0 - q_lo * q_lo))
            _, fm = _df_parts(model, alpha, e_psi * (1.0 - q_hi * q_hi))
            bound[i] = max(q_hi * q_hi * (fp - fm), 0.0)
            cum[i + 1] = cum[i] + bound[i] / n_cells
        q = 0.0
        while True:
            s, u = _uniform(s)
            target = u * cum[n_cells]
            cell = 0
            while cell < n_cells - 1 and cum[cell + 1] <= target:
                cell += 1
            s, u = _uniform(s)
            q = (cell + u) / n_cells
            fp, fm = _df_parts(model, alpha, e_psi * (1.0 - q * q))
            s, u = _uniform(s)
            if u * bound[cell] < q * q * (fp - fm):
                break
        s, u = _uniform(s)
        cos_t = 2.0 * u - 1.0
        sin_t = math.sqrt(max(0.0, 1.0 - cos_t * cos_t))
        s, u = _uniform(s)
        phi = 2.0 * math.pi * u
        w = q * math.sqrt(2.0 * psi)
        wx = w * sin_t * math.cos(phi)
        wy = w * sin_t * math.sin(phi)
        wz = w * cos_t
        if inv_ra2 > 0.0 and r > 0.0:
            # Shrink the tangential part of w by 1/√(1 + r²/r_a²).
            w_r = (wx * x[j, 0] + wy * x[j, 1] + wz * x[j, 2]) / r
            shrink = 1.0 / math.sqrt(1.0 + r2 * inv_ra2)
            wx = w_r * x[j, 0] / r + (wx - w_r * x[j, 0] / r) * shrink
            wy = w_r * x[j, 1] / r + (wy - w_r * x[j, 1] / r) * shrink
            wz = w_r * x[j, 2] / r + (wz - w_r * x[j, 2] / r) * shrink
        v_out[j, 0] = wx
        v_out[j, 1] = wy
        v_out[j, 2] = wz


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
