"""Diagnostics of a learned p(v|x) against a mock's truth, in the terms the CBE fit sees.

The conditional CBE residual is r = ∇Φ·∇ᵥ ln p − v·(∇ₓ ln p + ∇ln n). At a fixed position the
fit has six free numbers, ∇Φ and ∇ln n, to make r vanish for every v there. So an error in the
flow's ∇ₓ ln p splits into two parts:

- its mean over v at fixed x, which the fit absorbs into ∇ln n (harmless for Φ);
- the rest, which varies with v and can only be met by a wrong ∇Φ.

`gradient_diagnostics` measures both at ``n_pos`` positions with ``n_vel`` velocities each,
drawn from the TRUE p(v|x), and solves the per-position least-squares problem
v·a − g·∇ᵥ ln p = −v·∇ₓ ln p for (g, a) with the flow's gradients: g is the acceleration the
flow implies at that position, before any network smooths it — the error the CBE fit cannot
absorb. It also compares velocity moments (dispersions, kurtosis) of flow samples with true
samples at the same positions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

GradFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(x (n, 3) kpc, v (n, 3) km/s) → (∇ₓ ln p (n, 3) kpc⁻¹, ∇ᵥ ln p (n, 3) (km/s)⁻¹)."""


def _grad_ln_n(truth: Any, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """∇ ln n of the truth by central differences (h in kpc; smooth n: error ~ h²)."""
    out = np.empty_like(x)
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        out[:, j] = (np.log(truth.number_density(x + e)) - np.log(truth.number_density(x - e))) / (
            2 * h
        )
    return out


def _true_draws(
    truth: Any, positions: np.ndarray, n_pos: int, n_vel: int, seed: list[int]
) -> tuple[np.ndarray, ...]:
    """n_pos of the positions, n_vel true velocities at each, and the true gradients there.

    Returns (x (n_pos, 3), xs, vs (n_pos·n_vel, 3), ∇ₓ ln p, ∇ᵥ ln p at (xs, vs)).
    """
    rng = np.random.default_rng(seed)
    positions = np.asarray(positions, np.float64)
    x = positions[rng.choice(len(positions), n_pos, replace=len(positions) < n_pos)]
    xs = np.repeat(x, n_vel, axis=0)
    vs = truth.sample_velocities(int(rng.integers(2**31)), xs)
    tx, tv = truth.grad_log_p_v_given_x(xs, vs)
    return x, xs, vs, tx, tv


def _binned(key: np.ndarray, edges: list[float], values: dict[str, np.ndarray]) -> list[dict]:
    rows = []
    for lo, hi in itertools.pairwise(edges):
        m = (key >= lo) & (key < hi)
        if m.any():
            row: dict[str, Any] = {"lo": float(lo), "hi": float(hi), "n": int(m.sum())}
            row.update({k: float(np.median(v[m])) for k, v in values.items()})
            rows.append(row)
    return rows


def local_acceleration_fit(
    x: np.ndarray, v: np.ndarray, dlnp_dx: np.ndarray, dlnp_dv: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-position least squares of the conditional CBE: (g = ∇Φ, a = ∇ln n) at each x.

    Args:
        x: (m, 3) positions (only for the shape check).
        v, dlnp_dx, dlnp_dv: (m, k, 3) velocities and the gradients of ln p(v|x) at them.

    Returns:
        g (m, 3) in (km/s)²/kpc and a (m, 3) in kpc⁻¹ minimising Σ_k r_k² at each position,
        r_k = g·∇ᵥ ln p_k − v_k·(∇ₓ ln p_k + a).
    """
    m, _k, _ = v.shape
    if x.shape != (m, 3) or dlnp_dx.shape != v.shape or dlnp_dv.shape != v.shape:
        raise ValueError("x must be (m, 3) and v, dlnp_dx, dlnp_dv (m, k, 3)")
    # Unknowns θ = (a, g): v·a − ∇ᵥ ln p·g = −v·∇ₓ ln p. Columns scaled to O(1) for lstsq.
    sv = np.sqrt(np.mean(v**2))
    sg = np.sqrt(np.mean(dlnp_dv**2))
    design = np.concatenate([v / sv, -dlnp_dv / sg], axis=2)  # (m, k, 6)
    rhs = -np.sum(v * dlnp_dx, axis=2)  # (m, k)
    theta = np.stack([np.linalg.lstsq(design[i], rhs[i], rcond=None)[0] for i in range(m)])
    return theta[:, 3:] / sg, theta[:, :3] / sv


def gradient_diagnostics(
    grad_fn: GradFn,
    truth: Any,
    positions: np.ndarray,
    *,
    n_pos: int = 256,
    n_vel: int = 64,
    seed: int = 0,
    sample_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    r_edges: list[float] | None = None,
    s_edges: list[float] | None = None,
) -> dict[str, Any]:
    """Split the error of a learned ∇ ln p(v|x) into what the CBE fit can and cannot absorb.

    Args:
        grad_fn: the model's gradients (see `GradFn`).
        truth: a dp-mock `Truth` (grad_log_p_v_given_x, acceleration, number_density,
            selection, sample_velocities).
        positions: (N, 3) candidate positions (e.g. observed stars); ``n_pos`` are drawn.
        n_pos, n_vel: positions, and true velocities per position.
        seed: the draws derive from it alone.
        sample_fn: x (n, 3) → v (n, 3) samples of the MODEL's p(v|x); if given, velocity
            moments of the model are compared with the truth's at the same positions.
        r_edges, s_edges: radial (kpc) and S_true bin edges of the tables.

    Returns:
        A JSON-serialisable dict: overall medians and per-bin tables (``by_r``, ``by_s``) of
        ``grad_x_rel`` (|Δ∇ₓ ln p| / |∇ₓ ln p|), its v-mean part ``grad_x_mean_rel`` and
        v-dependent part ``grad_x_vdep_rel``, ``grad_v_rel``, the local-fit acceleration error
        ``local_acc_rel`` (|g − ∇Φ| / |∇Φ|), its signed projection ``local_acc_ratio``
        (g·∇Φ / |∇Φ|²: below 1 the flow implies too weak a force), the same ratio with only
        the model's ∇ₓ ln p (``local_acc_ratio_flow_dx``, ∇ᵥ exact) or only its ∇ᵥ ln p
        (``local_acc_ratio_flow_dv``) and, with ``sample_fn``, velocity-moment ratios.
    """
    x, xs, vs, tx, tv = _true_draws(truth, positions, n_pos, n_vel, [int(seed), 0xD1A6])
    gx, gv = grad_fn(xs, vs)
    shape = (n_pos, n_vel, 3)
    e = (gx - tx).reshape(shape)
    e_mean = e.mean(axis=1, keepdims=True)
    scale_x = np.linalg.norm(tx, axis=1).reshape(n_pos, n_vel)
    # Per-position scale of the x-signal: the RMS of the true ∇ₓ ln p over the velocities.
    rms_x = np.sqrt(np.mean(scale_x**2, axis=1))
    rel = {
        "grad_x_rel": np.median(np.linalg.norm(e, axis=2) / scale_x, axis=1),
        "grad_x_mean_rel": np.linalg.norm(e_mean[:, 0], axis=1) / rms_x,
        "grad_x_vdep_rel": np.sqrt(np.mean(np.sum((e - e_mean) ** 2, axis=2), axis=1)) / rms_x,
        "grad_v_rel": np.median(
            (np.linalg.norm(gv - tv, axis=1) / np.linalg.norm(tv, axis=1)).reshape(n_pos, n_vel),
            axis=1,
        ),
    }
    g, a = local_acceleration_fit(x, vs.reshape(shape), gx.reshape(shape), gv.reshape(shape))
    g_true = -truth.acceleration(x)
    rel["local_acc_rel"] = np.linalg.norm(g - g_true, axis=1) / np.linalg.norm(g_true, axis=1)
    # Signed: the local fit's pull along the true one (< 1: the flow implies too weak a
    # force there, which biases the fitted density low).
    rel["local_acc_ratio"] = np.sum(g * g_true, axis=1) / np.sum(g_true * g_true, axis=1)
    # Which of the two gradients sets that ratio: each of the model's, with the other exact.
    # An error in ∇ᵥ ln p, the term ∇Φ multiplies, pulls the ratio towards 0 when it is noise
    # (errors in variables) and either way when it is a wrong shape; one in ∇ₓ ln p biases it
    # only through its v-dependent part.
    for name, (hx, hv) in {"flow_dx": (gx, tv), "flow_dv": (tx, gv)}.items():
        gs, _ = local_acceleration_fit(x, vs.reshape(shape), hx.reshape(shape), hv.reshape(shape))
        rel[f"local_acc_ratio_{name}"] = np.sum(gs * g_true, axis=1) / np.sum(g_true**2, axis=1)
    g0, _ = local_acceleration_fit(x, vs.reshape(shape), tx.reshape(shape), tv.reshape(shape))
    rel["local_acc_rel_truth"] = np.linalg.norm(g0 - g_true, axis=1) / np.linalg.norm(
        g_true, axis=1
    )
    a_true = _grad_ln_n(truth, x)
    rel["local_grad_ln_n_err"] = np.linalg.norm(a - a_true, axis=1)

    out: dict[str, Any] = {
        "n_pos": n_pos,
        "n_vel": n_vel,
        "median": {k: float(np.median(v)) for k, v in rel.items()},
    }
    if sample_fn is not None:
        vm = sample_fn(xs).reshape(shape)
        ratios = velocity_moment_ratios(x, vm, vs.reshape(shape))
        rel.update(ratios)
        out["median"].update({k: float(np.median(v)) for k, v in ratios.items()})
    r = np.linalg.norm(x, axis=1)
    s = truth.selection(x)
    r_edges = r_edges or list(np.linspace(0.0, float(truth.r_max), 5))
    s_edges = s_edges or [0.0, 0.01, 0.03, 0.1, 0.3, 1.0001]
    per_pos = {k: v for k, v in rel.items() if np.ndim(v) == 1 and len(v) == n_pos}
    out["by_r"] = _binned(r, r_edges, per_pos)
    out["by_s"] = _binned(s, s_edges, per_pos)
    return out


def _kurtosis(a: np.ndarray) -> np.ndarray:
    """⟨a⁴⟩ / ⟨a²⟩² along the last axis (a about zero: the caller removes any mean)."""
    return np.mean(a**4, axis=-1) / np.mean(a**2, axis=-1) ** 2


def velocity_moment_ratios(
    x: np.ndarray, v_model: np.ndarray, v_true: np.ndarray
) -> dict[str, np.ndarray]:
    """Model/true ratios of σ_r², σ_t² (per tangential component) and κ_r = ⟨v_r⁴⟩/σ_r⁴.

    Args:
        x: (m, 3) positions; v_model, v_true: (m, k, 3) velocities at each.
    """
    rhat = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def moments(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        vr = np.einsum("mkj,mj->mk", v, rhat)
        vt2 = np.sum(v**2, axis=2) - vr**2
        s_r2 = np.mean(vr**2, axis=1)
        return s_r2, 0.5 * np.mean(vt2, axis=1), _kurtosis(vr)

    (mr, mt, mk), (tr, tt, tk) = moments(v_model), moments(v_true)
    return {"sigma_r2_ratio": mr / tr, "sigma_t2_ratio": mt / tt, "kurtosis_r_ratio": mk / tk}


def ensemble_bias_variance(
    grad_fns: list[GradFn],
    truth: Any,
    positions: np.ndarray,
    *,
    n_pos: int = 128,
    n_vel: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """Bias and variance of K flows' ∇ₓ ln p(v|x) at the same points from the true p(v|x).

    The members' mean error estimates the bias (what averaging cannot remove); their spread
    (standard deviation over members) the seed-to-seed variance (what averaging K members cuts
    by √K). Both are split into the v-dependent part the CBE fit cannot absorb, relative to the
    RMS true ∇ₓ ln p at each position.

    Returns:
        ``{"k", "median": {"bias_vdep_rel", "spread_vdep_rel", "bias_rel", "spread_rel"}}``.
    """
    if len(grad_fns) < 2:
        raise ValueError("bias vs variance needs at least two members")
    _, xs, vs, tx, _ = _true_draws(truth, positions, n_pos, n_vel, [int(seed), 0xB1A5])
    errs = np.stack([fn(xs, vs)[0] - tx for fn in grad_fns]).reshape(-1, n_pos, n_vel, 3)
    rms = np.sqrt(np.mean(np.sum(tx.reshape(n_pos, n_vel, 3) ** 2, axis=2), axis=1))

    def vdep(e: np.ndarray) -> np.ndarray:  # (..., n_pos, n_vel, 3) minus its v-mean
        return e - e.mean(axis=-2, keepdims=True)

    bias = errs.mean(axis=0)
    spread = errs.std(axis=0, ddof=1)

    def rel(e: np.ndarray) -> float:
        return float(np.median(np.sqrt(np.mean(np.sum(e**2, axis=2), axis=1)) / rms))

    return {
        "k": len(grad_fns),
        "median": {
            "bias_rel": rel(bias),
            "spread_rel": rel(spread),
            "bias_vdep_rel": rel(vdep(bias)),
            "spread_vdep_rel": rel(np.std(vdep(errs), axis=0, ddof=1)),
        },
    }


# |κ − 3| below this in both the radial and the tangential kurtosis marks a shell where the
# stars' p(v|x) is close to Gaussian (the demo's Plummer sphere has κ = 18/7, 3 − κ = 0.43).
SHAPE_MARGIN = 0.3
BOOT_CAP = 8192  # stars per bootstrap resample in `velocity_shape` (cost independent of N)


def velocity_shape(
    x: np.ndarray,
    v: np.ndarray,
    *,
    n_shells: int = 12,
    n_boot: int = 64,
    seed: int = 0,
    margin: float = SHAPE_MARGIN,
) -> dict[str, Any]:
    """The stars' velocity kurtosis by radius: where p(v|x) is near Gaussian (data only).

    The conditional method reads the force from how the *shape* of p(v|x) changes with
    position. For a Gaussian p(v|x) = N(μ, Σ) at x the CBE residual's terms linear in v are
    ∇Φ and Σ·∇ln n in one combination, so the stars there cannot tell the force from the
    density gradient; for an isotropic system the Jeans equations of order 2 and 4 make it
    explicit, dΦ/dr = −κσ² d ln(κσ²)/dr / (3 − κ), which amplifies every error as κ → 3.
    Selection depends on x alone, so the observed stars sample p(v|x) at every x and the
    kurtosis of their velocities is selection-free.

    In ``n_shells`` equal-count shells of r = |x| (about the origin, the system's centre)
    it measures κ_r = ⟨w_r⁴⟩/⟨w_r²⟩² and κ_t, the same for the two tangential components
    (pooled), with w = v minus the shell's mean velocity, and their bootstrap standard errors.

    Returns:
        ``{"r_edges", "r_mid", "n", "kappa_r", "kappa_r_err", "kappa_t", "kappa_t_err",
        "margin", "near_gaussian" (per shell: both |κ − 3| < margin), "near_gaussian_kpc"
        ([lo, hi] radius ranges of adjacent flagged shells)}``.
    """
    x, v = np.asarray(x, np.float64), np.asarray(v, np.float64)
    if x.ndim != 2 or x.shape[1] != 3 or v.shape != x.shape or len(x) < 2:
        raise ValueError(
            f"velocity_shape needs positions and velocities of shape (N, 3), N ≥ 2; got "
            f"x {x.shape} and v {v.shape}"
        )
    r = np.linalg.norm(x, axis=1)
    n_shells = max(1, min(n_shells, len(r) // 64))
    edges = np.quantile(r, np.linspace(0.0, 1.0, n_shells + 1))
    which = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, n_shells - 1)
    rng = np.random.default_rng([int(seed), 0x5A9E])
    out: dict[str, list] = {
        k: [] for k in ("n", "kappa_r", "kappa_r_err", "kappa_t", "kappa_t_err")
    }
    for k in range(n_shells):
        m = which == k
        xs, ws = x[m], v[m] - v[m].mean(axis=0)
        e_r = xs / np.maximum(r[m], 1e-12)[:, None]
        # e_φ = ẑ × e_r (normalised; any unit vector ⊥ e_r where e_r ∥ ẑ), e_θ = e_φ × e_r
        e_p = np.stack([-e_r[:, 1], e_r[:, 0], np.zeros(len(xs))], axis=1)
        norm = np.linalg.norm(e_p, axis=1)
        e_p = np.where(norm[:, None] > 1e-9, e_p / np.maximum(norm, 1e-12)[:, None], [1.0, 0, 0])
        e_t = np.cross(e_p, e_r)
        wr = np.sum(ws * e_r, axis=1)
        wt = np.concatenate([np.sum(ws * e_t, axis=1), np.sum(ws * e_p, axis=1)])

        n = len(wr)
        # bootstrap resamples of at most BOOT_CAP stars, their spread scaled by √(m/n)
        m_b = min(n, BOOT_CAP)
        boot = rng.integers(0, n, size=(n_boot, m_b))
        shrink = np.sqrt(m_b / n)
        out["n"].append(int(n))
        out["kappa_r"].append(float(_kurtosis(wr)))
        out["kappa_r_err"].append(float(np.std(_kurtosis(wr[boot]), ddof=1) * shrink))
        out["kappa_t"].append(float(_kurtosis(wt)))
        both = np.concatenate([boot, boot + n], axis=1)  # a star's two tangential components
        out["kappa_t_err"].append(float(np.std(_kurtosis(wt[both]), ddof=1) * shrink))
    flag = [bool(abs(a - 3) < margin and abs(b - 3) < margin)
            for a, b in zip(out["kappa_r"], out["kappa_t"], strict=True)]  # fmt: skip
    ranges: list[list[float]] = []
    for k, f in enumerate(flag):
        if f and ranges and k > 0 and flag[k - 1]:
            ranges[-1][1] = float(edges[k + 1])
        elif f:
            ranges.append([float(edges[k]), float(edges[k + 1])])
    return {
        "r_edges": edges.tolist(),
        "r_mid": (0.5 * (edges[1:] + edges[:-1])).tolist(),
        **out,
        "margin": margin,
        "near_gaussian": flag,
        "near_gaussian_kpc": ranges,
    }
