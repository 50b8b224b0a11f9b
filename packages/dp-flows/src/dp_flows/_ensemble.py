"""Ensembles of flows: a robust mean of their gradients, and the spread as an uncertainty.

Flows trained on the same stars from different seeds disagree most where the data constrain
them least. Averaging K members cuts the seed-to-seed (variance) part of their error by ~√K;
the members' spread estimates it per sample. The mean is MAD-clipped: per sample and
component, members further than ``clip`` robust standard deviations from the median are
dropped before averaging, so one member that went astray in some corner does not drag it.
Samples of an ensemble come from the mixture of its members (`sample_ensemble`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jaxtyping import ArrayLike, Float, Int, PRNGKeyArray

from ._flow import Flow, grad_log_prob, sample

_MAD_TO_SIGMA = 1.482602218505602  # σ of a Gaussian per unit median absolute deviation


def robust_mean(
    values: Float[ArrayLike, " k *shape"], clip: float = 3.0
) -> tuple[Float[np.ndarray, " *shape"], Float[np.ndarray, " *shape"]]:
    """MAD-clipped mean over the first axis, and the standard error of that mean.

    Args:
        values: (K, ...) member values.
        clip: members with |value − median| > clip · 1.4826 · MAD are left out (where the MAD
            is 0, every member is kept).

    Returns:
        (mean, standard error) with the trailing shape; the standard error is the kept
        members' sample standard deviation (ddof = 1) over √kept (0 for K = 1).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim < 1 or len(v) < 1:
        raise ValueError(f"values must have a leading member axis, got shape {v.shape}")
    k = len(v)
    if k == 1:
        return v[0].copy(), np.zeros_like(v[0])
    med = np.median(v, axis=0)
    sigma = _MAD_TO_SIGMA * np.median(np.abs(v - med), axis=0)
    keep = (np.abs(v - med) <= clip * sigma) | (sigma == 0)
    n = keep.sum(axis=0)
    mean = np.where(keep, v, 0.0).sum(axis=0) / n
    var = np.where(keep, (v - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n - 1, 1)
    return mean, np.sqrt(var / n)


def ensemble_grad_log_prob(
    flows: Sequence[Flow],
    x: Float[ArrayLike, "n d"],
    condition: Float[ArrayLike, "n c"] | None = None,
    *,
    clip: float = 3.0,
    batch_size: int = 4096,
    progress: bool | None = None,
) -> dict[str, np.ndarray]:
    """Every member's ∇ ln p at the same points, their robust mean and its standard error.

    Returns:
        dict with ``grad_x``, ``grad_c`` (robust means; ``grad_c`` only for conditional
        flows), ``grad_x_se``, ``grad_c_se`` (standard errors), and ``members_x``,
        ``members_c`` (K, n, ·) — the members' own gradients.
    """
    if len(flows) < 1:
        raise ValueError("an ensemble needs at least one flow")
    gx, gc = [], []
    for f in flows:
        a, b = grad_log_prob(f, x, condition, batch_size=batch_size, progress=progress)
        gx.append(a)
        gc.append(b)
    out: dict[str, np.ndarray] = {"members_x": np.stack(gx)}
    out["grad_x"], out["grad_x_se"] = robust_mean(out["members_x"], clip)
    if condition is not None:
        out["members_c"] = np.stack(gc)
        out["grad_c"], out["grad_c_se"] = robust_mean(out["members_c"], clip)
    return out


def sample_ensemble(
    key: PRNGKeyArray,
    flows: Sequence[Flow],
    n: int,
    condition: Float[ArrayLike, "n c"] | None = None,
    *,
    which: Int[ArrayLike, " n"] | None = None,
    batch_size: int = 8192,
    progress: bool | None = None,
) -> Float[np.ndarray, "n d"]:
    """Draw n samples of the equal-weight mixture of an ensemble's members.

    Each sample (each condition row, for conditional flows) comes from one member: member k
    draws its points with ``jax.random.fold_in(key, k)``.

    Args:
        key: JAX PRNG key.
        flows: the members (the same data and condition dimensions).
        n: number of samples.
        condition: (n, c) conditions, one per sample, for conditional members.
        which: (n,) index of the member that draws each sample; None: each drawn uniformly
            at random (from ``key``).
        batch_size, progress: as in `sample`.

    Returns:
        (n, d) samples in the data's units, in the members' dtype.

    Example (two tiny p(v|x) flows; real members train for many epochs):
        >>> import jax, numpy as np
        >>> from dp_flows import FlowConfig, fit_flow, sample_ensemble
        >>> rng = np.random.default_rng(0)
        >>> x, v = rng.normal(size=(256, 3)), rng.normal(size=(256, 3))
        >>> cfg = FlowConfig(width=8, depth=1, batch_size=64, n_epochs=1, whiten="none",
        ...                  cond_log_r=False)
        >>> members = [fit_flow(v, condition=x, config=cfg, seed=s, progress=False)
        ...            for s in (1, 2)]
        >>> sample_ensemble(jax.random.key(0), members, 5, condition=x[:5],
        ...                 which=[0, 1, 1, 0, 1], progress=False).shape
        (5, 3)
    """
    if len(flows) < 1:
        raise ValueError("an ensemble needs at least one flow")
    dims = {(f.data_dim, f.cond_dim) for f in flows}
    if len(dims) > 1:
        raise ValueError(f"the members differ in (data, condition) dimensions: {sorted(dims)}")
    if which is None:
        key, key_which = jax.random.split(key)
        which = jax.random.randint(key_which, (n,), 0, len(flows))
    which = np.asarray(which)
    if which.shape != (n,) or not np.issubdtype(which.dtype, np.integer):
        raise ValueError(f"which must be ({n},) integers, got {which.dtype} {which.shape}")
    if n and (which.min() < 0 or which.max() >= len(flows)):
        raise ValueError(
            f"which must index the {len(flows)} members, got {which.min()}…{which.max()}"
        )
    cond = None if condition is None else np.asarray(condition)
    out = np.empty((n, flows[0].data_dim), np.dtype(flows[0].x_mean.dtype))
    for k, member in enumerate(flows):
        sel = which == k
        if sel.any():
            out[sel] = sample(
                jax.random.fold_in(key, k),
                member,
                int(sel.sum()),
                condition=None if cond is None else cond[sel],
                batch_size=batch_size,
                progress=progress,
            )
    return out
