"""Per-sample residual scales from the data alone (the loss's scale-aware weighting).

The CBE residual r = ∇Φ·∇_v ln p − v·∇_x ln p (− v·∇ln n, ...) is a difference of two terms
whose size follows the local dynamical rate |v|/r: in absolute units, samples where orbits are
slow (a cuspy system's outskirts) count for little. Dividing r by an estimate s of the size of
those terms makes the loss a relative residual everywhere. The estimate uses only the data
(positions, velocities, the density model's gradients), never the fitted Φ, so the fit cannot
shrink its own loss by changing the weights.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from jaxtyping import Float


def residual_scales(
    x: Float[np.ndarray, "n 3"],
    v: Float[np.ndarray, "n 3"],
    dlnf_dx: Float[np.ndarray, "n 3"],
    dlnf_dv: Float[np.ndarray, "n 3"],
    center: Float[np.ndarray, " 3"] | None = None,
    *,
    n_bins: int = 32,
    per: Literal["sample", "shell"] = "sample",
) -> Float[np.ndarray, " n"]:
    """Typical size s of the two CBE terms at each sample, normalised to median 1.

    s_i = |v_i| |∇_x ln f_i| + |∇_v ln f_i| g(r_i), with g(r) = ⟨|v|²⟩(r) / r the data's
    estimate of |∇Φ| (circular-speed scale), ⟨|v|²⟩ averaged in ``n_bins`` equal-count shells of
    r = |x − center| and r floored at the 1 % quantile of r. Any consistent units (the ratio
    s_i / s_j is unit-free); dp-cbe calls it in internal units (kpc, 100 km/s).

    Args:
        x, v: positions and velocities (n, 3).
        dlnf_dx, dlnf_dv: gradients of ln f (or ln f_obs, ln p(v|x)) (n, 3).
        center: the system's centre (3,); None: the mean of x.
        n_bins: radial shells for ⟨|v|²⟩ (and for ``per="shell"``).
        per: ``sample``: s_i as above; ``shell``: the median of s_i over its radial shell, a
            function of r alone. A per-sample s is small for slow stars (|∇_v ln f| → 0 as
            v → 0), so their relative residuals weigh most, and there an estimated ∇_v ln f is
            least accurate; a per-shell s keeps the shells' balance without that.

    Returns:
        (n,) positive scales with median 1 (a floor of 1e-3 of the median keeps every weight
        1/s finite).
    """
    x, v = np.asarray(x, np.float64), np.asarray(v, np.float64)
    c = x.mean(axis=0) if center is None else np.asarray(center, np.float64)
    r = np.linalg.norm(x - c, axis=1)
    r = np.maximum(r, np.quantile(r, 0.01))
    v2 = np.sum(v * v, axis=1)
    n_bins = max(1, min(n_bins, len(r) // 16))
    edges = np.quantile(r, np.linspace(0.0, 1.0, n_bins + 1))
    which = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, n_bins - 1)
    mean_v2 = np.bincount(which, weights=v2, minlength=n_bins) / np.maximum(
        np.bincount(which, minlength=n_bins), 1
    )
    g = mean_v2[which] / r
    s = (
        np.linalg.norm(v, axis=1) * np.linalg.norm(dlnf_dx, axis=1)
        + np.linalg.norm(dlnf_dv, axis=1) * g
    )
    if per == "shell":
        shell_med = np.array([np.median(s[which == b]) if np.any(which == b) else 0.0
                              for b in range(n_bins)])  # fmt: skip
        s = shell_med[which]
    elif per != "sample":
        raise ValueError(f"per must be 'sample' or 'shell', got {per!r}")
    med = np.median(s)
    if not (np.isfinite(med) and med > 0):
        raise ValueError("residual scales are all zero or non-finite: check the gradients")
    return np.maximum(s / med, 1e-3)


def weighting_scales(
    x: Float[np.ndarray, "n 3"],
    v: Float[np.ndarray, "n 3"],
    dlnf_dx: Float[np.ndarray, "n 3"],
    dlnf_dv: Float[np.ndarray, "n 3"],
    weighting: str,
) -> Float[np.ndarray, " n"]:
    """The residual scales of ``FitConfig.weighting``: ``scale`` per sample, ``shell`` per
    radial shell (`residual_scales`), ``none`` all 1 (centre: the mean of x)."""
    if weighting == "none":
        return np.ones(len(x))
    if weighting not in ("scale", "shell"):
        raise ValueError(f"weighting must be 'none', 'scale' or 'shell', got {weighting!r}")
    return residual_scales(
        x, v, dlnf_dx, dlnf_dv, per="sample" if weighting == "scale" else "shell"
    )


def radial_balance_probabilities(
    x: Float[np.ndarray, "n 3"],
    center: Float[np.ndarray, " 3"],
    balance: float,
    *,
    n_shells: int = 16,
) -> Float[np.ndarray, " n"]:
    """Minibatch sampling probabilities that give outer radii more samples.

    p_i = (1 − balance)/n + balance/(K n_k(i)): a fraction ``balance`` of each minibatch is
    spread evenly over K = ``n_shells`` equal-width shells in r = |x − center| (shell k holds
    n_k samples), the rest is drawn as the data are. Observed stars of a cuspy, magnitude-limited
    system sit mostly near the centre; balancing keeps the outer shells from being starved.

    Returns:
        (n,) probabilities summing to 1 (the uniform 1/n when ``balance`` is 0).
    """
    n = len(x)
    if not 0.0 <= balance <= 1.0:
        raise ValueError(f"balance must be in [0, 1], got {balance}")
    r = np.linalg.norm(np.asarray(x, np.float64) - center, axis=1)
    edges = np.linspace(r.min(), r.max(), n_shells + 1)
    which = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, n_shells - 1)
    counts = np.bincount(which, minlength=n_shells)
    occupied = int(np.count_nonzero(counts))
    p = (1.0 - balance) / n + balance / (occupied * counts[which])
    return p / p.sum()
