"""`FitConfig`: every knob of a potential fit, strict `from_dict`, TOML loading."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from ._losses import METHODS, LossSettings
from ._strict import strict_config

_Count = Annotated[int, Field(ge=1)]
_NonNegInt = Annotated[int, Field(ge=0)]
_Positive = Annotated[float, Field(gt=0)]
_NonNeg = Annotated[float, Field(ge=0)]
_Fraction = Annotated[float, Field(ge=0, le=1)]
_OpenFraction = Annotated[float, Field(gt=0, le=1)]


@strict_config()
class FitConfig:
    """Hyperparameters of a CBE potential fit (defaults: a CPU demo, ~2^16–2^17 samples).

    Strict (`dp_cbe._strict`): each field's type and range are declared with it; nothing is
    coerced (``log_loss = "false"`` or ``phi_width = 2.5`` are errors, an int where a float is
    expected is fine), every float is finite (``alpha = inf`` and ``grad_clip = nan`` are
    errors), and an error is a one-line `ValueError` naming the field: ``FitConfig.alpha must be
    a finite number > 0, got inf``.

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
        log_r: feed every network ½ ln(|z|² + log_r_soft²) of its standardised input z as well.
        log_r_soft: softening of that feature (units of the standardised input). Its gradient
            falls short of 1/r inside ~2 softenings, where a cusp's ∇ln n ≈ −x̂/r lives: 0.05
            (the value before this field) caps it at 26 % short at r = 0.1 kpc on
            demo-hernquist; 0.01 brought that system's inner bins from |median Δln ρ| ≤ 0.041
            to ≤ 0.009 (benchmarks/results/cbe.md).
        phi_mixture: number of concentric Plummer spheres of positive, trained masses and
            scales added to the Φ network (0: the network alone; None: automatic). Their
            acceleration is G M(<r)/r² with no cancellation between terms, so the network need
            only carry the remainder. Scales start log-spaced from the data's 1 % radius to
            twice their 99.5 % radius.
        phi_mixture_mass: the mixture's initial total mass, as a fraction of the virial guess
            ⟨v²⟩ r_median / G, split equally (so the small components dominate the centre: a
            cusp-like start at 1.0; None: automatic).
        aux_scale: input scale of the ln n (or ln S) network: ``spread``: the positions'
            standard deviation, as for Φ; ``extent``: the standard deviation of a uniform ball
            of the data's 99.5 % radius if larger (the same for data that fill their volume,
            larger for a centrally concentrated sample). ``extent`` lets the network follow the
            fall of ln n_obs at a steep selection edge from the first step — with exact
            gradients, demo-hernquist's outermost bin 0.65 → 0.38 — but resolves the centre
            less well: the cusp's central acceleration error 3.6 % → 19 %, the demo's innermost
            Δln ρ −0.07 → −0.13 (benchmarks/results/cbe.md). Hence not the default.
        ln_n_gradient: how the conditional variant gets ∇ln n (None: automatic). ``network``:
            from the ln n network, trained jointly with Φ. ``profile``: eliminated by least
            squares at each position from its group of velocities (a gradient set with
            ``group_size`` ≥ 4), so that Φ is fitted alone, at a fifth of the cost per step;
            the ln n network is still fitted, beside Φ and without moving it, for
            `PotentialSolution.ln_n`. With exact gradients (groups of 8, 2^17 samples) it
            removes the error a ln n network leaves where n_obs falls steeply: demo-hernquist's
            worst radial bin 0.65 → 0.33 and every other bin ≤ 0.035 in ln ρ, demo-om's 0.26 →
            0.08, and with ``phi_mixture = 16, phi_mixture_mass = 1`` 0.19 and 0.05 (others
            ≤ 0.036 and ≤ 0.005). With a flow's gradients it is worse than the network (the
            demo's worst bin 0.07 → 0.17, demo-hernquist's 0.71 → 1.35), because the
            per-position ∇ln n follows the flow's errors where a smooth ln n averages them
            out (benchmarks/results/cbe.md).
        weighting: ``scale``: divide each sample's CBE residual by its data-only scale
            (`dp_cbe.residual_scales`: the loss becomes a relative residual, so slow outer
            orbits count as much as fast inner ones); ``shell``: by that scale's median over
            the sample's radial shell (a function of r alone, so that at one radius the
            slowest stars, whose per-sample scale is smallest and whose estimated ∇_v ln f is
            least accurate, do not weigh most; measured with flows' gradients it raises ln ρ at
            large radii: demo-om's worst bin 0.45 → 0.32, the demo's 0.08 → 0.13,
            benchmarks/results/cbe.md; hence not the default); ``none``: absolute internal
            units.
        alpha, beta, lam: asinh scales of the residual and negative-density penalties, weight λ.
        density_every: in training, the negative-density penalty is averaged over every k-th
            sample of each minibatch only (an unbiased estimate of the same mean): its exact
            ∇²Φ is ~3/4 of an ungrouped step's cost, and the penalty is rarely active. 1: at
            every sample (the behaviour before this option). Validation and grouped
            (``profile``) fits use every position. Measured: 8 makes a step of an ungrouped
            conditional fit 2.75× cheaper in CPU time (vanilla 3.4×;
            benchmarks/bench_cbe_step.py), and the errors stay within the fit's own seed
            scatter (exact cusp gradients: worst bin +0.044, +0.053 recorded before; refits
            of the three demo systems' flow sets: benchmarks/results/cbe.md).
        lam_s: weight of λ_S (ln S)² (selection). lam_nobs: weight of (ln n − ln n_obs)²
            (conditional; needs ``ln_n_obs`` in the gradient set when non-zero).
        l2: weight of the mean squared network weights (per network).
        log_loss: minimise ln⟨L⟩ instead of ⟨L⟩.
        residual_loss: the CBE term of each residual: ``asinh`` (α⁻¹ asinh(α|r|/s), the
            paper's robust loss: |r|/s for small residuals) or ``l2`` (½ (r/s)²; α unused);
            None: automatic, ``l2`` for the conditional method with a flow's gradients and
            ``asinh`` otherwise. A flow's errors in ∇ₓ ln p and ∇ᵥ ln p cancel only in the
            mean over velocities, which least squares finds and the median-type asinh term
            does not: on five mock systems ``l2`` was as good (the two Plummer spheres) or
            better (a cusp's centre −0.23 → −0.03, the anisotropic cusp's worst bin −2.4 →
            −1.2) (benchmarks/results/cbe.md, session 31).
        batch_size: samples per step (split across devices; a multiple of their number).
        radial_balance: fraction of each minibatch drawn evenly over 16 equal-width radial
            shells of the training positions (0: minibatches are epochs of the data; > 0:
            draws with replacement by `dp_cbe.radial_balance_probabilities`, and the
            validation loss is weighted alike; None: automatic).
        n_steps: the step ceiling (with ``early_stop``) or the step count (without); None:
            automatic (`ceiling` is the resolved value).
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

    Automatic settings: ``phi_mixture``, ``phi_mixture_mass``, ``radial_balance``,
    ``n_steps``, ``ln_n_gradient`` and ``residual_loss`` are None by default and `fit` chooses them from the
    gradient set (`FitConfig.resolved`; the model's ``hyperparameters.json`` records the
    values used):

    ============================  =========================  ==============================
    gradient set                  estimated (a flow's)       exact (``GradientSet.exact``)
    ============================  =========================  ==============================
    ``phi_mixture``               0                          16
    ``phi_mixture_mass``          0.01                       1.0
    ``radial_balance``            0.5                        1.0
    ``n_steps`` (the ceiling)     6,000                      12,000
    ``ln_n_gradient``             ``network``                ``profile`` with groups of ≥ 4
                                                             velocities, else ``network``
    ``residual_loss``             ``l2`` (conditional),      ``asinh``
                                  ``asinh`` (the others)
    ============================  =========================  ==============================

    Exact gradients can be fitted to the edge of the volume, which takes a Φ that can follow
    a steep outer fall (the mixture), edge-weighted minibatches and, for a cusp, more than
    6,000 steps; with groups of 8 velocities and a tenth of the positions uniform in the
    volume this recovers a cored sphere, a cusp and an anisotropic model to ≤ 0.013 in ln ρ
    and ≤ 1.02 % in acceleration in every radial bin of the volume, each converged within
    10,000 steps (benchmarks/results/cbe.md). With a flow's gradients the same freedom
    fits the flow's errors at the edge (demo-om's outermost bin +0.30 → +0.58, the demo's
    centre −0.07 → −0.12), so estimated sets keep the plain network.
    """

    phi_width: _Count = 64
    phi_depth: _Count = 2
    phi_l_max: _NonNegInt = 0
    n_width: _Count = 64
    n_depth: _Count = 2
    n_l_max: _NonNegInt = 0
    s_width: _Count = 64
    s_depth: _Count = 2
    l_max: _NonNegInt = 0
    n_fourier: _NonNegInt = 0
    r_soft: _Positive = 1.0
    log_r: bool = True
    log_r_soft: _Positive = 0.01
    phi_mixture: _NonNegInt | None = None
    phi_mixture_mass: _Positive | None = None
    aux_scale: Literal["spread", "extent"] = "spread"
    ln_n_gradient: Literal["network", "profile"] | None = None
    weighting: Literal["none", "scale", "shell"] = "scale"
    alpha: _Positive = 1.0
    beta: _Positive = 1.0
    lam: _NonNeg = 1.0
    density_every: _Count = 8
    lam_s: _NonNeg = 0.0
    lam_nobs: _NonNeg = 0.0
    l2: _NonNeg = 0.0
    log_loss: bool = False
    residual_loss: Literal["asinh", "l2"] | None = None
    batch_size: _Count = 1024
    radial_balance: _Fraction | None = None
    n_steps: _Count | None = None
    learning_rate: _Positive = 5e-3
    warmup_steps: _NonNegInt = 100
    final_lr_fraction: _Fraction = 0.0
    schedule: Literal["plateau", "cosine"] = "plateau"
    early_stop: bool = True
    patience: _Count = 3
    lr_decay: _OpenFraction = 0.3
    min_lr_fraction: _OpenFraction = 0.01
    val_tol: _Positive = 0.01
    probe_tol: _Positive = 0.01
    weight_decay: _NonNeg = 0.0
    grad_clip: _NonNeg = 1.0
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.25
    eval_every: _Count = 250
    val_batches: _Count = 8
    checkpoint_every: _Count = 500
    n_devices: _Count | None = None
    frame: Literal["none", "boost", "rotation", "boost+rotation"] = "none"  # dp_cbe._frame.FRAMES

    def __post_init__(self) -> None:
        if self.checkpoint_every % self.eval_every:
            raise ValueError("FitConfig.checkpoint_every must be a multiple of eval_every")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitConfig:
        """Build from a dict; unknown keys and impossible values raise `ValueError`."""
        return cls(**d)

    @classmethod
    def from_toml(cls, path: str | Path) -> FitConfig:
        """Load from a TOML file (top-level keys, or a ``[fit]`` table)."""
        with open(path, "rb") as fh:
            d = tomllib.load(fh)
        if set(d) == {"fit"} and isinstance(d["fit"], dict):
            d = d["fit"]
        return cls.from_dict(d)

    def resolved(self, *, exact: bool, group_size: int, method: str | None = None) -> FitConfig:
        """This config with its automatic (None) settings chosen for a gradient set that is
        exact or estimated and comes in groups of ``group_size`` velocities per position,
        fitted by ``method`` (the table in the class docstring; None: not the conditional
        method). Explicit settings are kept.

        Example:
            >>> import dp_cbe
            >>> cfg = dp_cbe.FitConfig(radial_balance=0.25)
            >>> r = cfg.resolved(exact=True, group_size=8)
            >>> r.phi_mixture, r.radial_balance, r.ln_n_gradient
            (16, 0.25, 'profile')
            >>> cfg.resolved(exact=False, group_size=8).ln_n_gradient
            'network'
            >>> cfg.resolved(exact=False, group_size=1, method="conditional").residual_loss
            'l2'
        """
        if method is not None and method not in METHODS:
            raise ValueError(f"unknown method {method!r}; expected one of {METHODS} or None")
        auto: dict[str, Any] = {
            "phi_mixture": 16 if exact else 0,
            "phi_mixture_mass": 1.0 if exact else 0.01,
            "radial_balance": 1.0 if exact else 0.5,
            "n_steps": 12000 if exact else 6000,
            "ln_n_gradient": "profile" if exact and group_size >= 4 else "network",
            "residual_loss": "l2" if method == "conditional" and not exact else "asinh",
        }
        return dataclasses.replace(
            self, **{k: v for k, v in auto.items() if getattr(self, k) is None}
        )

    @property
    def ceiling(self) -> int:
        """``n_steps`` of a resolved config (`resolved`; a `ValueError` before)."""
        if self.n_steps is None:
            raise ValueError("FitConfig.n_steps is automatic: resolve the config first")
        return self.n_steps

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain (JSON-serialisable) dict."""
        return dataclasses.asdict(self)

    def loss_settings(self) -> LossSettings:
        """The loss hyperparameters of a resolved config (`resolved`) as a hashable tuple."""
        if self.residual_loss is None:
            raise ValueError("FitConfig.residual_loss is automatic: resolve the config first")
        return LossSettings(
            alpha=float(self.alpha),
            beta=float(self.beta),
            lam=float(self.lam),
            lam_s=float(self.lam_s),
            lam_nobs=float(self.lam_nobs),
            l2=float(self.l2),
            log_loss=bool(self.log_loss),
            residual_loss=self.residual_loss,
        )
