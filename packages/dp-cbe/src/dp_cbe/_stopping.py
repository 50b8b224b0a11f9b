"""The stopping rule: validation-loss plateau + stable Φ on a fixed probe set, with a ceiling.

After every evaluation the monitor sees the validation loss and ∇Φ, ∇²Φ on a fixed set of
probe positions (shells spanning the data's radii). The fit has converged when, for
``patience`` evaluations in a row, the validation loss has not improved by a relative
``val_tol`` and ∇Φ and ∇²Φ moved by less than ``probe_tol`` (relative, median per shell, worst
shell). With the ``plateau`` schedule a stalled validation loss that is not yet converged
lowers the learning rate by ``lr_decay`` (down to ``min_lr_fraction`` of the peak). Everything
is a deterministic function of the evaluation sequence, so a resumed fit takes the same path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from jaxtyping import Float

from ._config import FitConfig


class ConvergenceWarning(UserWarning):
    """A fit stopped at its step ceiling (``FitConfig.n_steps``) without meeting the stopping
    rule; its ``history["converged"]`` is False."""


def probe_positions(
    x: Float[np.ndarray, "n 3"], center: Float[np.ndarray, " 3"], *, n_shells: int = 8,
    n_dirs: int = 64,
) -> tuple[Float[np.ndarray, "p 3"], np.ndarray]:  # fmt: skip
    """Fixed probe points: ``n_shells`` shells evenly spaced in radius between the 0.5 % and
    99.5 % radius quantiles of the data (about ``center``), ``n_dirs`` Fibonacci directions
    each. Returns the points (n_shells·n_dirs, 3) in the units of x and each point's shell."""
    r = np.linalg.norm(np.asarray(x, np.float64) - center, axis=1)
    lo, hi = np.quantile(r, [0.005, 0.995])
    radii = np.linspace(lo, hi, n_shells)
    k = np.arange(n_dirs) + 0.5
    cos_t = 1.0 - 2.0 * k / n_dirs
    sin_t = np.sqrt(1.0 - cos_t**2)
    ang = np.pi * (1.0 + 5.0**0.5) * k
    dirs = np.stack([sin_t * np.cos(ang), sin_t * np.sin(ang), cos_t], axis=1)
    pts = center + radii[:, None, None] * dirs[None, :, :]
    return pts.reshape(-1, 3), np.repeat(np.arange(n_shells), n_dirs)


def probe_change(
    old: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray], shell: np.ndarray
) -> float:
    """Worst shell's median relative change of ∇Φ (vector) and of ∇²Φ between two probes."""
    g0, l0 = (np.asarray(a, np.float64) for a in old)
    g1, l1 = (np.asarray(a, np.float64) for a in new)
    tiny = 1e-30
    dg = np.linalg.norm(g1 - g0, axis=1) / np.maximum(np.linalg.norm(g0, axis=1), tiny)
    dl = np.abs(l1 - l0) / np.maximum(np.abs(l0), tiny)
    worst = 0.0
    for s in np.unique(shell):
        m = shell == s
        worst = max(worst, float(np.median(dg[m])), float(np.median(dl[m])))
    return worst


class StoppingRule:
    """Plateau detection, learning-rate decay and the convergence test of one fit.

    ``state`` is a JSON-serialisable dict (saved with checkpoints); ``update`` is called once
    per evaluation and returns True when the fit has converged.
    """

    def __init__(self, cfg: FitConfig, state: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.state: dict[str, Any] = state or {
            "lr_factor": 1.0, "ref_val": math.inf, "since_improve": 0, "stable": 0,
            "prev_probe": None,
        }  # fmt: skip

    def update(self, step: int, val: float, probe: tuple[np.ndarray, np.ndarray],
               shell: np.ndarray) -> tuple[bool, float]:  # fmt: skip
        """Record one evaluation; returns (converged, probe change since the last one)."""
        st, cfg = self.state, self.cfg
        if val < st["ref_val"] - cfg.val_tol * abs(st["ref_val"]) or not math.isfinite(
            st["ref_val"]
        ):
            st["ref_val"], st["since_improve"] = val, 0
        else:
            st["since_improve"] += 1
        prev = st["prev_probe"]
        change = math.inf if prev is None else probe_change(
            (np.asarray(prev[0]), np.asarray(prev[1])), probe, shell
        )  # fmt: skip
        st["prev_probe"] = [np.asarray(probe[0]).tolist(), np.asarray(probe[1]).tolist()]
        warm = step > min(cfg.warmup_steps, cfg.ceiling // 5)
        st["stable"] = st["stable"] + 1 if (change < cfg.probe_tol and warm) else 0
        converged = st["stable"] >= cfg.patience and st["since_improve"] >= cfg.patience
        if (not converged and cfg.schedule == "plateau" and st["since_improve"] >= cfg.patience
                and st["lr_factor"] > cfg.min_lr_fraction):  # fmt: skip
            st["lr_factor"] = max(st["lr_factor"] * cfg.lr_decay, cfg.min_lr_fraction)
            st["since_improve"] = 0
        return converged, change

    def learning_rates(self, steps: np.ndarray) -> np.ndarray:
        """Learning rate of each optimiser step (0-based step indices)."""
        cfg = self.cfg
        steps = np.asarray(steps, np.float64)
        warm = max(1, min(cfg.warmup_steps, cfg.ceiling // 5))
        ramp = np.minimum(1.0, steps / warm) if cfg.warmup_steps > 0 else np.ones_like(steps)
        if cfg.schedule == "plateau":
            return cfg.learning_rate * self.state["lr_factor"] * ramp
        # cosine: linear warm-up, then cosine decay to final_lr_fraction at n_steps
        t = np.clip((steps - warm) / max(1, cfg.ceiling - warm), 0.0, 1.0)
        end = cfg.final_lr_fraction
        cos = end + (1.0 - end) * 0.5 * (1.0 + np.cos(np.pi * t))
        return cfg.learning_rate * np.where(steps < warm, ramp, cos)
