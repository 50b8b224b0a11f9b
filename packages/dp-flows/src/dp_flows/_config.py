"""Hyperparameters of a flow and of its training (`FlowConfig`)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from ._strict import strict_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_Count = Annotated[int, Field(ge=1)]
# ``n_epochs = None``: a conditional flow trains for AUTO_STEPS optimiser steps, in AUTO_EPOCHS
# (lowest, highest) epochs; an unconditional one for the lowest.
AUTO_STEPS = 6000
AUTO_EPOCHS = (64, 512)
_NonNegInt = Annotated[int, Field(ge=0)]
_Positive = Annotated[float, Field(gt=0)]
_NonNeg = Annotated[float, Field(ge=0)]
_Fraction = Annotated[float, Field(ge=0, le=1)]


@strict_config(renamed={"lr_final_fraction": "final_lr_fraction"})
class FlowConfig:
    """Network, training and ODE-solver settings of a continuous normalizing flow.

    Strict (`dp_flows._strict`): each field's type and range are declared with it; nothing is
    coerced (``width = "16"``, ``width = 16.5``, ``ot = "no"`` and ``cond_log_r = 1`` are
    errors, an int where a float is expected is fine), every float is finite, and an error is a
    one-line `ValueError` naming the field: ``FlowConfig.width must be an integer ≥ 1, got
    16.5``. The old key ``lr_final_fraction`` is refused with its new name,
    ``final_lr_fraction`` (the name dp-cbe's `FitConfig` uses for the same knob).

    Attributes:
        width: hidden width of the ResNet vector field.
        depth: number of residual blocks ``h + Linear(SiLU(Linear(h)))``.
        time_embedding_dim: length of the sinusoidal time embedding (even).
        sh_lmax: degree of spherical-harmonic features of the position (0 = none; 3-D only).
        batch_size: training batch size (a multiple of ``ot_block`` when OT is on, and of the
            number of devices).
        n_epochs: passes over the training split. ``None`` (the default) picks them from the
            data's size (`FlowConfig.epochs_for`): a conditional flow gets enough epochs for
            ``AUTO_STEPS`` = 6,000 optimiser steps (64 to 512 epochs), because the
            x-dependence of p(v|x) keeps improving with steps where the density's fit has
            stopped (∇ₓ ln p error 0.33 after 64 epochs, 0.16 after 240, on the 2^17-star cusp
            mock; benchmarks/results/flows.md); an unconditional flow gets 64 epochs.
        learning_rate: peak AdamW learning rate (cosine decay to ``final_lr_fraction`` of it).
        final_lr_fraction: final learning rate as a fraction of the peak.
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
            (default): for conditional flows, ``"scalar"`` unless the full ``"cholesky"``
            factor fits held-out stars better by > 3 standard errors (an anisotropic
            system), chosen together with ``cond_log_r``; ``"none"`` for unconditional flows.
            Measured on the demo mock (96 epochs, conditional fit): median Δln ρ −0.51…−0.09
            without, −0.13…+0.07 with Cholesky, −0.12…+0.05 with scalar whitening
            (``benchmarks/results/flows.md``).
        whiten_width, whiten_depth: the whitening network (a SiLU MLP of the condition).
            None (default): by mode, 16×1 for a scalar σ(x) and 32×2 for a diagonal or
            Cholesky factor (`dp_flows._train.WHITEN_SIZES`). Measured: on the anisotropic
            Osipkov–Merritt mock a 16×1 Cholesky network leaves the radial dispersion 4 %
            low at 1–3 kpc (32×2: ≤ 1 %); on the isotropic demo sphere 32×2 only added noise
            to ∇ ln det L (median error 22 % against 12–15 % at 16×1).
        whiten_degree: if > 0, the whitening uses polynomials of the condition of this
            degree instead of the MLP.
        whiten_steps: AdamW steps of its Gaussian-likelihood fit.
        whiten_batch_size: stars per step of that fit (None: every training star in every
            step, a deterministic full-batch fit, ~4x slower). Measured on the demo mock: refits
            with full batches gave σ(x) slopes nearer the closed form on three split seeds, but
            the end-to-end demo with them was no better (median Δln ρ −0.19 … −0.03 against
            −0.07 … +0.07), so 4,096 stays the default (benchmarks/results/flows.md).
        cond_log_r: give the networks (vector field and whitener) of a conditional flow the
            log-radius of the condition as one more input (`dp_flows.condition_features`):
            ``True``, ``False``, or ``"auto"`` (default: fit the whitening with and without it
            and keep it only if the held-out stars' likelihood improves by > 3 standard
            errors, see ``whiten``; without whitening, off). Measured on a cuspy Hernquist mock (96 epochs):
            local force error of the flow 0.64 → 0.15 with it; on the cored Plummer demo it
            adds a spurious slope at the centre, and "auto" leaves it off there.
        cond_jitter: standard deviation (in standardised units of the condition) of Gaussian
            noise added to the condition in training (0 = none): smooths the flow's learned
            dependence on the condition on that scale. Measured on the cuspy Hernquist mock
            (240 epochs): 0.05 and 0.15 move the conditional fit's central density bin from
            −0.2 to −0.4 (benchmarks/results/cbe.md), hence off.
        cond_penalty: weight of ‖∂u_θ/∂c · ε‖² (ε ~ N(0, I)) added to the training loss
            (0 = none): penalises the vector field's dependence on the condition.
        time_power: the flow-matching times are t = U^(1/time_power), U uniform on (0, 1), so
            their density is time_power · t^(time_power − 1): 1 is uniform, 2 (default) puts
            more of the training near the data (t = 1), larger values more still.
        eval_every: validate every this many epochs.
        checkpoint_every: write a resumable checkpoint every this many epochs.
        dtype: ``"float32"`` (fast) or ``"float64"`` parameters and training arithmetic.
    """

    width: _Count = 128
    depth: _Count = 4
    time_embedding_dim: Annotated[int, Field(ge=2, multiple_of=2)] = 32
    sh_lmax: _NonNegInt = 0
    batch_size: _Count = 4096
    n_epochs: _Count | None = None
    learning_rate: _Positive = 2e-3
    final_lr_fraction: _Fraction = 0.0
    warmup_steps: _NonNegInt = 100
    weight_decay: _NonNeg = 1e-4
    grad_clip: _NonNeg = 1.0
    ema_decay: Annotated[float, Field(ge=0, lt=1)] = 0.999
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.25
    ot: bool | None = None
    ot_block: _Count = 256
    ot_epochs: _Count = 512
    weight_clip: _Positive = 100.0
    rtol: _Positive = 1e-4
    atol: _Positive = 1e-5
    max_steps: _Count = 4096
    fixed_steps: _NonNegInt = 4
    fixed_solver: Literal["rk4", "midpoint", "euler"] = "rk4"
    whiten: Literal["auto", "none", "scalar", "diagonal", "cholesky"] = "auto"
    whiten_width: _Count | None = None
    whiten_depth: _Count | None = None
    whiten_degree: _NonNegInt = 0
    whiten_steps: _Count = 3000
    whiten_batch_size: _Count | None = 4096
    cond_log_r: bool | Literal["auto"] = "auto"
    cond_jitter: _NonNeg = 0.0
    cond_penalty: _NonNeg = 0.0
    time_power: Annotated[float, Field(ge=0.25, le=16)] = 2.0
    eval_every: _Count = 1
    checkpoint_every: _Count = 5
    dtype: Literal["float32", "float64"] = "float32"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowConfig:
        """Build from a dict; raises ``ValueError`` naming any unknown key or bad value."""
        return cls(**d)

    @classmethod
    def from_toml(cls, path: str | Path) -> FlowConfig:
        """Read a TOML file (top level, or a ``[flow]`` table) into a config."""
        with open(path, "rb") as fh:
            d = tomllib.load(fh)
        if set(d) == {"flow"} and isinstance(d["flow"], dict):
            d = d["flow"]
        return cls.from_dict(d)

    def epochs_for(self, steps_per_epoch: int, conditional: bool) -> int:
        """The number of epochs a fit with ``steps_per_epoch`` minibatches per epoch trains:
        ``n_epochs`` when set; otherwise, for a conditional flow, ⌈AUTO_STEPS /
        steps_per_epoch⌉ clipped to [64, 512] (2^17 stars in batches of 4096: 250 epochs;
        2^22: 64), and 64 for an unconditional one."""
        if self.n_epochs is not None:
            return self.n_epochs
        if not conditional:
            return AUTO_EPOCHS[0]
        lo, hi = AUTO_EPOCHS
        return min(hi, max(lo, -(-AUTO_STEPS // max(1, steps_per_epoch))))

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> FlowConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)
