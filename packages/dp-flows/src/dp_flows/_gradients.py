"""Gradient sets for the CBE solvers: samples (x, v) with ∇ₓ ln f and ∇ᵥ ln f (``gradients.h5``).

- ``conditional``: x from the observed positions (optionally a fraction uniform in r < r_max),
  v ~ p(v|x); gradients of ln p(v|x).                                density ``p_v_given_x``
- ``selection``: (x, v) ~ f_obs = n_obs(x) p(v|x); ∇ₓ ln f_obs = ∇ ln n_obs + ∇ₓ ln p,
  ∇ᵥ ln f_obs = ∇ᵥ ln p.                                              density ``f_obs``
- ``vanilla``: the same with the spatial flow trained on weighted stars.  density ``f``
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import h5py
import jax
import numpy as np
from jaxtyping import ArrayLike, Float

from ._ensemble import ensemble_grad_log_prob
from ._flow import Flow, grad_log_prob, sample
from ._io import atomic_path, load_flow

GRADIENTS_SCHEMA = "dp-gradients/1"
DENSITY = {"vanilla": "f", "selection": "f_obs", "conditional": "p_v_given_x"}


@overload
def _as_flow(flow: Flow | str | Path) -> Flow: ...
@overload
def _as_flow(flow: None) -> None: ...
def _as_flow(flow: Flow | str | Path | None) -> Flow | None:
    return flow if flow is None or isinstance(flow, Flow) else load_flow(flow)


def _uniform_ball(rng: np.random.Generator, n: int, r_max: float) -> np.ndarray:
    u = rng.standard_normal((n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u * (r_max * rng.uniform(size=(n, 1)) ** (1.0 / 3.0))


def _spatial_samples(key, spatial: Flow, n: int, r_max: float | None, **kw) -> np.ndarray:
    """n samples of the spatial flow, resampling any that fall outside r < r_max."""
    out, have, i = [], 0, 0
    while have < n:
        x = sample(jax.random.fold_in(key, i), spatial, max(n - have, 1024), **kw)
        if r_max is not None:
            x = x[np.linalg.norm(x, axis=1) < r_max]
        out.append(x)
        have += len(x)
        i += 1
        if i > 50:
            raise RuntimeError(f"the spatial flow puts almost no mass inside r < r_max={r_max}")
    return np.concatenate(out)[:n]


def make_gradients(
    method: str,
    *,
    conditional: Flow | str | Path | Sequence[Flow | str | Path],
    spatial: Flow | str | Path | None = None,
    n: int,
    seed: int = 0,
    positions: Float[ArrayLike, "m 3"] | None = None,
    uniform_fraction: float = 0.0,
    r_max: float | None = None,
    batch_size: int = 4096,
    progress: bool = True,
) -> dict[str, Any]:
    """Draw n points and the gradients of the method's log-density there.

    Args:
        method: ``"vanilla"``, ``"selection"`` or ``"conditional"``.
        conditional: the p(v|x) flow (data v in km/s, condition x in kpc), or its directory;
            or a sequence of them (an ensemble): each v is drawn from a member chosen at
            random, the gradients are the members' MAD-clipped mean (`robust_mean`), and
            their standard errors are returned as ``dlnf_dx_std``/``dlnf_dv_std``.
        spatial: the n_obs(x) (or weighted n(x)) flow; required for vanilla/selection, and for
            conditional when no ``positions`` are given.
        n: number of points.
        seed: integer seed of every draw.
        positions: (m, 3) observed positions (kpc) to draw x from (conditional method).
        uniform_fraction: fraction of the points with x uniform in the ball r < r_max.
        r_max: radius (kpc) of that ball; spatial-flow samples outside it are redrawn.
        batch_size: ODE batch size (fixed: one compile).
        progress: progress bars.

    Returns:
        dict with ``x``, ``v``, ``dlnf_dx``, ``dlnf_dv`` (n, 3) float64 (kpc, km/s, kpc⁻¹,
        (km/s)⁻¹) and ``density`` (plus, for an ensemble, ``dlnf_dx_std``, ``dlnf_dv_std``
        and ``members``: (K, n, 3) arrays of each member's own ``dlnf_dx`` and ``dlnf_dv``);
        pass it to `write_gradients` as ``**d``.
    """
    if method not in DENSITY:
        raise ValueError(f"method must be one of {sorted(DENSITY)}, got {method!r}")
    if not 0.0 <= uniform_fraction <= 1.0:
        raise ValueError(f"uniform_fraction must be in [0, 1], got {uniform_fraction}")
    if uniform_fraction > 0 and r_max is None:
        raise ValueError("uniform_fraction > 0 needs r_max (the radius of the ball)")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    members = (
        [_as_flow(c) for c in conditional]
        if isinstance(conditional, Sequence) and not isinstance(conditional, str)
        else [_as_flow(conditional)]
    )
    if not members:
        raise ValueError("conditional: an empty sequence of flows")
    cond, spat = members[0], _as_flow(spatial)
    if method != "conditional" and spat is None:
        raise ValueError(f"method {method!r} needs the spatial flow (spatial=...)")
    if method == "conditional" and positions is None and spat is None:
        raise ValueError("method 'conditional' needs positions=... (observed x) or spatial=...")
    rng = np.random.default_rng([int(seed), 0x6AD])
    key_x, key_v = jax.random.split(jax.random.key(seed))
    kw = {"batch_size": batch_size, "progress": progress}

    n_uni = round(uniform_fraction * n)
    n_obs = n - n_uni
    parts = [_uniform_ball(rng, n_uni, r_max)] if n_uni and r_max is not None else []
    if n_obs and method == "conditional" and positions is not None:
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3 or len(positions) == 0:
            raise ValueError(f"positions must have shape (m, 3), got {positions.shape}")
        parts.append(positions[rng.choice(len(positions), n_obs, replace=n_obs > len(positions))])
    elif n_obs:
        assert (
            spat is not None
        )  # checked above: vanilla/selection, or conditional without positions
        parts.append(_spatial_samples(key_x, spat, n_obs, r_max, **kw))
    x = np.concatenate(parts)
    extra: dict[str, Any] = {}
    if len(members) == 1:
        v = sample(key_v, cond, n, condition=x, **kw)
        dv, dx = grad_log_prob(cond, v, x, **kw)
    else:
        # v from the ensemble's mixture: each point's member is drawn at random.
        which = rng.integers(len(members), size=n)
        v = np.empty((n, x.shape[1]))
        for k, member in enumerate(members):
            sel = which == k
            if sel.any():
                v[sel] = sample(jax.random.fold_in(key_v, k), member, int(sel.sum()),
                                condition=x[sel], **kw)  # fmt: skip
        ens = ensemble_grad_log_prob(members, v, x, batch_size=batch_size, progress=progress)
        dv, dx = ens["grad_x"], ens["grad_c"]
        extra = {"dlnf_dv_std": ens["grad_x_se"], "dlnf_dx_std": ens["grad_c_se"],
                 "members": {"dlnf_dv": ens["members_x"], "dlnf_dx": ens["members_c"]}}  # fmt: skip
    assert dx is not None  # p(v|x) flows are conditional: grad_log_prob gives ∇_c ln p
    if method != "conditional":
        assert spat is not None  # checked above
        dn, _ = grad_log_prob(spat, x, **kw)
        dx = dx + dn
        if "members" in extra:
            extra["members"]["dlnf_dx"] = extra["members"]["dlnf_dx"] + dn[None]
    f64 = np.float64
    return {
        "x": x.astype(f64),
        "v": v.astype(f64),
        "dlnf_dx": dx.astype(f64),
        "dlnf_dv": dv.astype(f64),
        "density": DENSITY[method],
        **extra,
    }


def write_gradients(
    path: str | Path,
    *,
    x: Float[ArrayLike, "n 3"],
    v: Float[ArrayLike, "n 3"],
    dlnf_dx: Float[ArrayLike, "n 3"],
    dlnf_dv: Float[ArrayLike, "n 3"],
    density: str,
    dlnf_dx_std: Float[ArrayLike, "n 3"] | None = None,
    dlnf_dv_std: Float[ArrayLike, "n 3"] | None = None,
    members: object = None,
) -> Path:
    """Write a ``gradients.h5`` (schema ``dp-gradients/1``) atomically.

    ``dlnf_dx_std``/``dlnf_dv_std`` (an ensemble's standard errors) are written when given;
    ``members`` (an ensemble's per-member gradients) is not written — write each member's
    own set with `member_gradients` if it is wanted.
    """
    if density not in DENSITY.values():
        raise ValueError(f"density must be one of {sorted(DENSITY.values())}, got {density!r}")
    arrays = {"x": x, "v": v, "dlnf_dx": dlnf_dx, "dlnf_dv": dlnf_dv}
    if dlnf_dx_std is not None and dlnf_dv_std is not None:
        arrays |= {"dlnf_dx_std": dlnf_dx_std, "dlnf_dv_std": dlnf_dv_std}
    arrays = {k: np.asarray(a, dtype=np.float64) for k, a in arrays.items()}
    n = len(arrays["x"])
    for k, a in arrays.items():
        if a.shape != (n, 3):
            raise ValueError(f"{k} must have shape ({n}, 3), got {a.shape}")
        bad = ~np.isfinite(a).all(axis=1)
        if bad.any():
            raise ValueError(f"{k} has {int(bad.sum())} rows with NaN/inf")
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema"] = GRADIENTS_SCHEMA
            f.attrs["units"] = "x: kpc, v: km/s, dlnf_dx: 1/kpc, dlnf_dv: 1/(km/s)"
            f.attrs["density"] = density
            for k, a in arrays.items():
                f.create_dataset(k, data=a)
    return path


def member_gradients(gradients: dict, k: int) -> dict[str, Any]:
    """Member ``k``'s own gradient set from an ensemble's `make_gradients` output."""
    if "members" not in gradients:
        raise ValueError("not an ensemble's gradient set (no 'members')")
    m = gradients["members"]
    return {
        "x": gradients["x"],
        "v": gradients["v"],
        "dlnf_dx": np.asarray(m["dlnf_dx"][k], np.float64),
        "dlnf_dv": np.asarray(m["dlnf_dv"][k], np.float64),
        "density": gradients["density"],
    }
