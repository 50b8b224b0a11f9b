"""Plummer-sphere oracle for dp-cbe tests (closed forms written here: dp-cbe must not import
dp-mock). Physical units: kpc, km/s, M☉; G = 4.300917e-6 kpc (km/s)²/M☉."""

from __future__ import annotations

import numpy as np

G = 4.300917e-6
GM = 1.0e7  # kpc (km/s)²
B = 10.0  # kpc
R_MAX = 8.0  # kpc
# Selection function of the "selection" variant: a smooth magnitude-limit-like fall-off in
# radius times an angular modulation, ln S = log σ((R0 − √(r²+1))/W) + A (x²−y²+xz)/(r²+C²).
R0, W, A, C = 6.0, 1.5, 0.3, 2.0


def potential(x: np.ndarray) -> np.ndarray:
    return -GM / np.sqrt(np.sum(x**2, axis=1) + B**2)


def grad_potential(x: np.ndarray) -> np.ndarray:
    return GM * x / (np.sum(x**2, axis=1, keepdims=True) + B**2) ** 1.5


def density(x: np.ndarray) -> np.ndarray:
    r2 = np.sum(x**2, axis=1)
    return 3 * (GM / G) / (4 * np.pi * B**3) * (1 + r2 / B**2) ** -2.5


def ln_n(x: np.ndarray) -> np.ndarray:
    """ln n up to a constant: n ∝ (−Φ)^5."""
    return 5 * np.log(-potential(x))


def grad_ln_f(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """∇_x ln f, ∇_v ln f for f ∝ (−E)^{7/2}."""
    dphi = grad_potential(x)
    neg_e = -(0.5 * np.sum(v**2, axis=1, keepdims=True) + potential(x)[:, None])
    return -3.5 * dphi / neg_e, -3.5 * v / neg_e


def grad_ln_p(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """∇_x ln p(v|x), ∇_v ln p(v|x) with p ∝ (−Φ − v²/2)^{7/2} / n."""
    dx, dv = grad_ln_f(x, v)
    return dx - 5 * grad_potential(x) / potential(x)[:, None], dv


def ln_selection(x: np.ndarray) -> np.ndarray:
    r2 = np.sum(x**2, axis=1)
    u = (R0 - np.sqrt(r2 + 1.0)) / W
    ang = (x[:, 0] ** 2 - x[:, 1] ** 2 + x[:, 0] * x[:, 2]) / (r2 + C**2)
    return -np.logaddexp(0.0, -u) + A * ang


def grad_ln_selection(x: np.ndarray) -> np.ndarray:
    r2 = np.sum(x**2, axis=1, keepdims=True)
    rs = np.sqrt(r2 + 1.0)
    u = (R0 - rs) / W
    sig_neg = 1.0 / (1.0 + np.exp(u))  # 1 − σ(u) = d log σ(u)/du
    d_radial = sig_neg * (-x / (W * rs))
    num = (x[:, 0] ** 2 - x[:, 1] ** 2 + x[:, 0] * x[:, 2])[:, None]
    dnum = np.stack([2 * x[:, 0] + x[:, 2], -2 * x[:, 1], x[:, 0]], axis=1)
    d_ang = A * (dnum / (r2 + C**2) - num * 2 * x / (r2 + C**2) ** 2)
    return d_radial + d_ang


def sample(seed: int, n: int, group: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(x, v) from the Plummer DF truncated at R_MAX (inverse mass CDF; rejection in q);
    ``group`` > 1: n // group positions, each repeated with ``group`` velocities."""
    rng = np.random.default_rng(seed)
    m_max = (R_MAX**2 / (R_MAX**2 + B**2)) ** 1.5
    n_pos = n // group
    s = (rng.uniform(0, m_max, n_pos)) ** (2 / 3)
    r = B * np.sqrt(s / (1 - s))
    x = np.repeat(_directions(rng, n_pos) * r[:, None], group, axis=0)
    n = len(x)
    gmax = (2 / 9) * (7 / 9) ** 3.5
    q = np.empty(0)
    while q.size < n:
        cand = rng.uniform(0, 1, 2 * n)
        keep = rng.uniform(0, gmax, 2 * n) < cand**2 * (1 - cand**2) ** 3.5
        q = np.concatenate([q, cand[keep]])
    v_esc = np.sqrt(-2 * potential(x))
    v = _directions(rng, n) * (q[:n] * v_esc)[:, None]
    return x, v


def _directions(rng: np.random.Generator, n: int) -> np.ndarray:
    d = rng.normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def gradients(method: str, seed: int, n: int, group: int = 1) -> dict[str, np.ndarray | str | int]:
    """Exact gradients for a variant: keys x, v, dlnf_dx, dlnf_dv, density, group_size."""
    x, v = sample(seed, n, group)
    if method == "vanilla":
        dx, dv = grad_ln_f(x, v)
        density_kind = "f"
    elif method == "selection":
        dx, dv = grad_ln_f(x, v)
        dx = dx + grad_ln_selection(x)
        density_kind = "f_obs"
    else:
        dx, dv = grad_ln_p(x, v)
        density_kind = "p_v_given_x"
    return {"x": x, "v": v, "dlnf_dx": dx, "dlnf_dv": dv, "density": density_kind,
            "group_size": group}  # fmt: skip
