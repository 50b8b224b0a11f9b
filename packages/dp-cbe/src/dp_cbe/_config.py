"""`FitConfig`: every knob of a potential fit, strict `from_dict`, TOML loading."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from ._frame import FRAMES
from ._losses import LossSettings


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Hyperparameters of a CBE potential fit (defaults: a CPU demo, ~2^16–2^17 samples).

    Loss weights are in internal units (kpc, 100 km/s, G = 1) where the paper's α = β = λ = 1
    are meaningful. Networks: Φ (``phi_*``), ln n (``n_*``, conditional) and ln S (``s_*``,
    selection), each a ResNet of ``depth`` residual blocks of ``width`` units.

    Attributes:
        phi_width, phi_depth, phi_l_max: Φ network width, blocks, harmonic degree (0: none).
        n_width, n_depth, n_l_max: ln n network (conditional variant).
        s_width, s_depth, l_max: ln S network; ``l_max`` = its real-spherical-harmonic degree
            (0 by default: a smooth S is fitted better without; raise it for dusty, angularly
            structured S).
        n_fourier: Fourier frequencies per axis fed to every network (0: none).
        r_soft: softening (kpc) of the harmonic features' direction x/√(|x|²+r_soft²).
        log_r: feed every network ½ ln(|z|² + 0.05²) of its standardised input z as well.
        weighting: ``scale``: divide each sample's CBE residual by its data-only scale
            (`dp_cbe.residual_scales`: the loss becomes a relative residual, so slow outer
            orbits count as much as fast inner ones); ``none``: absolute internal units.
        alpha, beta, lam: asinh scales of the residual and negative-density penalties, weight λ.
        lam_s: weight of λ_S (ln S)² (selection). lam_nobs: weight of (ln n − ln n_obs)²
            (conditional; needs ``ln_n_obs`` in the gradient set when non-zero).
        l2: weight of the mean squared network weights (per network).
        log_loss: minimise ln⟨L⟩ instead of ⟨L⟩.
        batch_size: samples per step (split across devices; a multiple of their number).
        radial_balance: fraction of each minibatch drawn evenly over 16 equal-width radial
            shells of the training positions (0: minibatches are epochs of the data; > 0:
            draws with replacement by `dp_cbe.radial_balance_probabilities`, and the
            validation loss is weighted alike).
        n_steps: the step ceiling (with ``early_stop``) or the step count (without).
        learning_rate: peak AdamW rate, reached after a linear warm-up of
            min(``warmup_steps``, n_steps // 5) steps.
        schedule: ``plateau``: constant rate, multiplied by ``lr_decay`` whenever the
            validation loss stalls (``patience`` evaluations without a relative improvement
            of ``val_tol``) and the fit has not converged, down to ``min_lr_fraction`` of the
            peak; ``cosine``: cosine decay to ``final_lr_fraction`` of the peak at n_steps.
        early_stop: stop when converged: for ``patience`` evaluations in a row the
            validation loss improved by less than ``val_tol`` (relative) and ∇Φ and ∇²Φ on a
            fixed probe set moved by less than ``probe_tol`` (relative; worst radial shell's
            median). Without it the fit runs n_steps; either way ``history["converged"]``
            records the rule and a `ConvergenceWarning` says when it was not met.
        weight_decay: AdamW decoupled weight decay. grad_clip: global-norm clip (0: none).
        val_fraction: held-out fraction for best-model selection.
        eval_every: steps between validation evaluations (and progress updates).
        val_batches: at most this many validation batches per evaluation.
        checkpoint_every: steps between checkpoints in out_dir (a multiple of eval_every).
        n_devices: devices for data parallelism (None: all local devices).
        frame: the frame in which the DF is taken to be stationary, relative to the data
            frame (taken as inertial): ``none`` (the data frame), ``boost`` (a constant
            velocity u₀), ``rotation`` (angular velocity Ω about the origin) or
            ``boost+rotation`` (the rigid velocity field u₀ + Ω × x). The fitted parameters
            start at 0, train with Φ and are reported by `PotentialSolution.frame`.
    """

    phi_width: int = 64
    phi_depth: int = 2
    phi_l_max: int = 0
    n_width: int = 64
    n_depth: int = 2
    n_l_max: int = 0
    s_width: int = 64
    s_depth: int = 2
    l_max: int = 0
    n_fourier: int = 0
    r_soft: float = 1.0
    log_r: bool = True
    weighting: str = "scale"
    alpha: float = 1.0
    beta: float = 1.0
    lam: float = 1.0
    lam_s: float = 0.0
    lam_nobs: float = 0.0
    l2: float = 0.0
    log_loss: bool = False
    batch_size: int = 1024
    radial_balance: float = 0.5
    n_steps: int = 6000
    learning_rate: float = 5e-3
    warmup_steps: int = 100
    final_lr_fraction: float = 0.0
    schedule: str = "plateau"
    early_stop: bool = True
    patience: int = 3
    lr_decay: float = 0.3
    min_lr_fraction: float = 0.01
    val_tol: float = 0.01
    probe_tol: float = 0.01
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    val_fraction: float = 0.25
    eval_every: int = 250
    val_batches: int = 8
    checkpoint_every: int = 500
    n_devices: int | None = None
    frame: str = "none"

    def __post_init__(self) -> None:
        positive_int = (
            "phi_width", "phi_depth", "n_width", "n_depth", "s_width", "s_depth",
            "batch_size", "n_steps", "eval_every", "val_batches", "checkpoint_every", "patience",
        )  # fmt: skip
        for name in positive_int:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"FitConfig.{name} must be a positive integer, got {value!r}")
        for name in ("phi_l_max", "n_l_max", "l_max", "n_fourier", "warmup_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"FitConfig.{name} must be an integer ≥ 0, got {value!r}")
        for name, allowed in (("weighting", ("none", "scale")),
                              ("schedule", ("plateau", "cosine")), ("frame", FRAMES)):  # fmt: skip
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"FitConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        if not 0.0 <= self.radial_balance <= 1.0:
            raise ValueError(
                f"FitConfig.radial_balance must be in [0, 1], got {self.radial_balance}"
            )
        for name in ("lr_decay", "min_lr_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"FitConfig.{name} must be in (0, 1], got {getattr(self, name)!r}")
        for name in ("alpha", "beta", "r_soft", "learning_rate", "val_tol", "probe_tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"FitConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("lam", "lam_s", "lam_nobs", "l2", "weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"FitConfig.{name} must be ≥ 0, got {getattr(self, name)!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"FitConfig.val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.final_lr_fraction <= 1.0:
            raise ValueError(
                f"FitConfig.final_lr_fraction must be in [0, 1], got {self.final_lr_fraction}"
            )
        if self.checkpoint_every % self.eval_every:
            raise ValueError("FitConfig.checkpoint_every must be a multiple of eval_every")
        if self.n_devices is not None and (
            not isinstance(self.n_devices, int) or self.n_devices < 1
        ):
            raise ValueError(f"FitConfig.n_devices must be None or ≥ 1, got {self.n_devices!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitConfig:
        """Build from a dict; unknown keys and impossible values raise `ValueError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown FitConfig key(s): {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_toml(cls, path: str | Path) -> FitConfig:
        """Load from a TOML file (top-level keys, or a ``[fit]`` table)."""
        with open(path, "rb") as fh:
            d = tomllib.load(fh)
        if set(d) == {"fit"} and isinstance(d["fit"], dict):
            d = d["fit"]
        return cls.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain (JSON-serialisable) dict."""
        return dataclasses.asdict(self)

    def loss_settings(self) -> LossSettings:
        """The loss hyperparameters as a hashable tuple."""
        return LossSettings(
            alpha=float(self.alpha),
            beta=float(self.beta),
            lam=float(self.lam),
            lam_s=float(self.lam_s),
            lam_nobs=float(self.lam_nobs),
            l2=float(self.l2),
            log_loss=bool(self.log_loss),
        )
