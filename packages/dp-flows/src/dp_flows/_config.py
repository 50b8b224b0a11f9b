"""Hyperparameters of a flow and of its training (`FlowConfig`)."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """Network, training and ODE-solver settings of a continuous normalizing flow.

    Attributes:
        width: hidden width of the ResNet vector field.
        depth: number of residual blocks ``h + Linear(SiLU(Linear(h)))``.
        time_embedding_dim: length of the sinusoidal time embedding (even).
        sh_lmax: degree of spherical-harmonic features of the position (0 = none; 3-D only).
        batch_size: training batch size (a multiple of ``ot_block`` when OT is on, and of the
            number of devices).
        n_epochs: passes over the training split.
        learning_rate: peak AdamW learning rate (cosine decay to ``lr_final_fraction`` of it).
        lr_final_fraction: final learning rate as a fraction of the peak.
        warmup_steps: linear warm-up steps.
        weight_decay: AdamW decoupled weight decay.
        grad_clip: global gradient-norm clip (0 = none).
        ema_decay: exponential moving average of the weights (0 = off; default 0.999, which
            measured ~10 % better velocity gradients on the demo mock); validation, model
            selection and the returned flow use the averaged weights. The effective decay
            ramps up as ``min(ema_decay, (1 + step) / (10 + step))``.
        val_fraction: fraction of the stars held out for validation / model selection.
        ot: minibatch optimal-transport pairing; ``None`` = on for unconditional flows, off
            for conditional ones (OT biases conditional flows).
        ot_block: OT block size (stars per exact assignment).
        ot_epochs: epochs of pairings precomputed with dp-ot before they are reshuffled.
        weight_clip: per-star weights are clipped at this value before normalisation.
        rtol, atol: adaptive Tsit5 tolerances used by ``log_prob``/``sample``.
        max_steps: step limit of one ODE solve (exceeding it is an error).
        fixed_steps: if > 0 (default 4), use a fixed-step solve of the whole batch with this
            many steps; 0 selects the adaptive Tsit5 solve (4 RK4 steps match the adaptive
            solve's gradient accuracy on the demo mock at ~20–40x its speed, see
            ``benchmarks/results/flows.md``).
        fixed_solver: the fixed-step method: ``"rk4"``, ``"midpoint"`` or ``"euler"``.
        whiten: conditional whitening of a conditional flow (`dp_flows._whiten`):
            ``"none"``, ``"scalar"`` (mean μ(c) and dispersion σ(c)), ``"diagonal"`` or
            ``"cholesky"`` (mean and full covariance factor L(c)); the flow then models
            u = L(c)⁻¹(z − μ(c)) given c, with the exact change of variables. ``"auto"``
            (default): ``"cholesky"`` for conditional flows, ``"none"`` otherwise. Measured on
            the demo mock (96 epochs, conditional fit): median Δln ρ −0.51…−0.09 without,
            −0.13…+0.07 with Cholesky whitening (``benchmarks/results/flows.md``).
        whiten_width, whiten_depth: the whitening network (a SiLU MLP of the condition).
        whiten_degree: if > 0, the whitening uses polynomials of the condition of this
            degree instead of the MLP.
        whiten_steps: AdamW steps of its Gaussian-likelihood fit.
        cond_log_r: give the networks (vector field and whitener) of a conditional flow the
            log-radius of the condition as one more input (`dp_flows.condition_features`).
        cond_jitter: standard deviation (in standardised units of the condition) of Gaussian
            noise added to the condition in training (0 = none): smooths the flow's learned
            dependence on the condition on that scale.
        cond_penalty: weight of ‖∂u_θ/∂c · ε‖² (ε ~ N(0, I)) added to the training loss
            (0 = none): penalises the vector field's dependence on the condition.
        eval_every: validate every this many epochs.
        checkpoint_every: write a resumable checkpoint every this many epochs.
        dtype: ``"float32"`` (fast) or ``"float64"`` parameters and training arithmetic.
    """

    width: int = 128
    depth: int = 4
    time_embedding_dim: int = 32
    sh_lmax: int = 0
    batch_size: int = 4096
    n_epochs: int = 64
    learning_rate: float = 2e-3
    lr_final_fraction: float = 0.0
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    val_fraction: float = 0.25
    ot: bool | None = None
    ot_block: int = 256
    ot_epochs: int = 512
    weight_clip: float = 100.0
    rtol: float = 1e-4
    atol: float = 1e-5
    max_steps: int = 4096
    fixed_steps: int = 4
    fixed_solver: str = "rk4"
    whiten: str = "auto"
    whiten_width: int = 16
    whiten_depth: int = 1
    whiten_degree: int = 0
    whiten_steps: int = 3000
    cond_log_r: bool = False
    cond_jitter: float = 0.0
    cond_penalty: float = 0.0
    eval_every: int = 1
    checkpoint_every: int = 5
    dtype: str = "float32"

    def __post_init__(self) -> None:
        positive = ("width", "depth", "batch_size", "n_epochs", "ot_block", "ot_epochs")
        for name in (*positive, "max_steps", "eval_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"FlowConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.time_embedding_dim < 2 or self.time_embedding_dim % 2:
            raise ValueError(
                f"FlowConfig.time_embedding_dim must be even and >= 2, got {self.time_embedding_dim}"
            )
        for name in ("sh_lmax", "fixed_steps", "warmup_steps", "weight_decay", "grad_clip",
                     "whiten_degree"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"FlowConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("learning_rate", "rtol", "atol", "weight_clip"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"FlowConfig.{name} must be finite and > 0, got {value}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"FlowConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"FlowConfig.val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.lr_final_fraction <= 1.0:
            raise ValueError(
                f"FlowConfig.lr_final_fraction must be in [0, 1], got {self.lr_final_fraction}"
            )
        if self.fixed_solver not in ("rk4", "midpoint", "euler"):
            raise ValueError(
                "FlowConfig.fixed_solver must be 'rk4', 'midpoint' or 'euler', "
                f"got {self.fixed_solver!r}"
            )
        if not isinstance(self.cond_log_r, bool):
            raise ValueError(f"FlowConfig.cond_log_r must be true or false, got {self.cond_log_r!r}")
        if self.whiten not in ("auto", "none", "scalar", "diagonal", "cholesky"):
            raise ValueError(
                "FlowConfig.whiten must be 'auto', 'none', 'scalar', 'diagonal' or 'cholesky', "
                f"got {self.whiten!r}"
            )
        for name in ("whiten_width", "whiten_depth", "whiten_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"FlowConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("cond_jitter", "cond_penalty"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"FlowConfig.{name} must be finite and >= 0, got {value}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"FlowConfig.dtype must be 'float32' or 'float64', got {self.dtype!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowConfig:
        """Build from a dict; raises ``ValueError`` naming any unknown key or bad value."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown FlowConfig key(s): {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_toml(cls, path: str | Path) -> FlowConfig:
        """Read a TOML file (top level, or a ``[flow]`` table) into a config."""
        with open(path, "rb") as fh:
            d = tomllib.load(fh)
        if set(d) == {"flow"} and isinstance(d["flow"], dict):
            d = d["flow"]
        return cls.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> FlowConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)
