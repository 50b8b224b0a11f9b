"""Accuracy metrics (docs/design.md §8): recovered-field residuals, binned in r and S_true."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
from jaxtyping import Float

if TYPE_CHECKING:
    from dp_cbe import GradientSet


def uniform_ball(rng: np.random.Generator, n: int, r_max: float) -> Float[np.ndarray, "n 3"]:
    """``n`` points uniform in volume inside the sphere of radius ``r_max`` (kpc)."""
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = r_max * rng.uniform(size=n) ** (1.0 / 3.0)
    return d * r[:, None]


def plane_grid(r_max: float, res: int) -> tuple[Float[np.ndarray, "m 3"], np.ndarray, np.ndarray]:
    """The z = 0 plane on a ``res``×``res`` grid over [-r_max, r_max]² (pixel centres).

    Returns:
        Points inside r < r_max (m, 3), the boolean mask (res, res) of those pixels, and the
        1-D pixel-centre coordinates (res,) in kpc.
    """
    c = (np.arange(res) + 0.5) / res * 2 * r_max - r_max
    xx, yy = np.meshgrid(c, c, indexing="xy")
    mask = xx**2 + yy**2 < r_max**2
    pts = np.stack([xx[mask], yy[mask], np.zeros(mask.sum())], axis=1)
    return pts, mask, c


def safe_log(a: np.ndarray) -> np.ndarray:
    """ln(a), NaN where a <= 0 or not finite (a negative model density has no log)."""
    a = np.asarray(a, dtype=np.float64)
    out = np.full(a.shape, np.nan)
    ok = np.isfinite(a) & (a > 0)
    out[ok] = np.log(a[ok])
    return out


def remove_constant(d: np.ndarray) -> tuple[np.ndarray, float]:
    """Subtract the median (the best constant in the L1 sense) from the finite entries."""
    ok = np.isfinite(d)
    c = float(np.median(d[ok])) if ok.any() else 0.0
    return d - c, c


def summary(values: np.ndarray) -> dict[str, float | int]:
    """Median, 16th and 84th percentiles, median |value| and count of the finite values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {
            "n": 0,
            "median": float("nan"),
            "p16": float("nan"),
            "p84": float("nan"),
            "median_abs": float("nan"),
        }
    p16, med, p84 = np.percentile(v, [16, 50, 84])
    return {
        "n": int(v.size),
        "median": float(med),
        "p16": float(p16),
        "p84": float(p84),
        "median_abs": float(np.median(np.abs(v))),
    }


def binned(values: np.ndarray, by: np.ndarray, edges: np.ndarray) -> list[dict[str, Any]]:
    """``summary`` of ``values`` in each bin ``edges[i] <= by < edges[i+1]``."""
    out = []
    for lo, hi in itertools.pairwise(edges):
        sel = (by >= lo) & (by < hi) if hi != edges[-1] else (by >= lo) & (by <= hi)
        out.append({"lo": float(lo), "hi": float(hi), **summary(values[sel])})
    return out


def binned_both(
    values: np.ndarray,
    r: np.ndarray,
    s: np.ndarray | None,
    r_edges: np.ndarray,
    s_edges: np.ndarray | None,
) -> dict[str, Any]:
    """Overall summary plus radial bins and (when S_true is known) S_true bins."""
    out: dict[str, Any] = {"all": summary(values), "by_r": binned(values, r, r_edges)}
    if s is not None and s_edges is not None:
        out["by_s"] = binned(values, s, s_edges)
    return out


def method_residuals(
    method: str,
    model: Any,
    truth: Any | None,
    x: Float[np.ndarray, "n 3"],
) -> dict[str, np.ndarray]:
    """Per-point fields of one fitted potential and, with truth, their residuals.

    Returns:
        ``ln_rho`` (model, ln M☉/kpc³), ``accel`` (n, 3); with truth ``dlnrho``, ``acc_rel_err``,
        ``acc_ratio`` (a·a_true / |a_true|²) and ``dln_n`` (conditional) or ``dln_s``
        (selection) with the median removed; without,
        ``ln_n``/``ln_s`` of the model.
    """
    out: dict[str, np.ndarray] = {}
    rho = np.asarray(model.density(x), dtype=np.float64)
    acc = np.asarray(model.acceleration(x), dtype=np.float64)
    out["ln_rho"] = safe_log(rho)
    out["accel"] = acc
    extra = None
    if method == "conditional":
        extra = ("ln_n", np.asarray(model.ln_n(x), dtype=np.float64))
    elif method == "selection":
        extra = ("ln_s", np.asarray(model.ln_selection(x), dtype=np.float64))
    if extra:
        out[extra[0]] = extra[1]
    if truth is not None:
        out["dlnrho"] = out["ln_rho"] - safe_log(truth.density(x))
        a_true = np.asarray(truth.acceleration(x), dtype=np.float64)
        out["acc_rel_err"] = np.linalg.norm(acc - a_true, axis=1) / np.linalg.norm(a_true, axis=1)
        # Signed: the model's pull along the true one (< 1: too weak, the sign that a biased
        # density error has; acc_rel_err alone cannot tell a weak pull from a turned one).
        out["acc_ratio"] = np.sum(acc * a_true, axis=1) / np.sum(a_true * a_true, axis=1)
        if method == "conditional":
            out["dln_n"] = remove_constant(out["ln_n"] - safe_log(truth.number_density(x)))[0]
        elif method == "selection":
            out["dln_s"] = remove_constant(out["ln_s"] - safe_log(truth.selection(x)))[0]
    return out


def gradient_residuals(gradients: GradientSet, truth: Any) -> dict[str, np.ndarray]:
    """Relative errors of a gradient set's ∇_v (and, where the truth is known, ∇_x) ln-density.

    ∇_v ln f = ∇_v ln f_obs = ∇_v ln p(v|x) for a purely spatial selection, so the v part is
    compared for every method; the x part for ``f`` (vanilla) and ``p_v_given_x`` (conditional).
    Points outside the truth's support (non-finite truth) are NaN.
    """
    x, v = np.asarray(gradients.x), np.asarray(gradients.v)
    density = gradients.density
    n = len(x)
    # the truth is defined inside its DF's support only; flow samples may stray outside
    ok = in_support(truth, x, v)
    out = {"s_true": np.full(n, np.nan), "frac_outside_support": np.array(1.0 - ok.mean())}
    out["s_true"][ok] = np.asarray(truth.selection(x[ok]), dtype=np.float64)
    xo, vo = x[ok], v[ok]
    gx_p, gv_p = (np.asarray(a, dtype=np.float64) for a in truth.grad_log_p_v_given_x(xo, vo))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["grad_v_rel_err"] = _fill(ok, _rel(gradients.dlnf_dv[ok], gv_p))
        if density == "p_v_given_x":
            out["grad_x_rel_err"] = _fill(ok, _rel(gradients.dlnf_dx[ok], gx_p))
        elif density == "f":
            gx_f = np.asarray(truth.grad_log_f(xo, vo)[0], dtype=np.float64)
            out["grad_x_rel_err"] = _fill(ok, _rel(gradients.dlnf_dx[ok], gx_f))
    return out


def in_support(truth: Any, x: np.ndarray, v: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Rows inside the truth's support: r < r_max − margin and ln p(v|x) finite.

    For an isotropic DF that is E < 0; for an Osipkov–Merritt DF the stricter Q > 0.
    """
    inside = np.linalg.norm(x, axis=1) < truth.r_max - margin
    with np.errstate(invalid="ignore", divide="ignore"):
        finite = np.isfinite(np.asarray(truth.log_p_v_given_x(x, v), dtype=np.float64))
    return inside & finite


def _fill(ok: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.full(ok.shape, np.nan)
    out[ok] = values
    return out


def _rel(model: np.ndarray, true: np.ndarray) -> np.ndarray:
    err = np.linalg.norm(model - true, axis=1) / np.linalg.norm(true, axis=1)
    err[~np.isfinite(err)] = np.nan
    return err
