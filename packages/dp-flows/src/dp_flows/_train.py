"""Conditional flow matching: `fit_flow` with weights, minibatch OT, sharding and resume."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike, Float
from tqdm.auto import tqdm

from . import _checkpoint, _pairing
from ._config import FlowConfig
from ._fields import AbstractVectorField, ResNetField
from ._flow import Flow, condition_features
from ._whiten import ConditionalAffine, fit_affine, whiten


def cfm_loss(
    field: AbstractVectorField,
    z0: Array,
    z1: Array,
    c: Array | None,
    w: Array,
    t: Array,
    eps: Array | None = None,
    penalty: float = 0.0,
):
    """Weighted conditional-flow-matching loss mean_i w_i ‖u(t_i, z_t) − (z1 − z0)‖².

    With ``eps`` (a random direction in condition space per sample) and ``penalty`` > 0, adds
    penalty · mean_i w_i ‖∂u/∂c · eps_i‖² (the field's sensitivity to its condition).
    """
    zt = (1.0 - t)[:, None] * z0 + t[:, None] * z1
    if eps is None or penalty == 0.0:
        u = field.batched(t, zt, c)
        return jnp.mean(w * jnp.sum((u - (z1 - z0)) ** 2, axis=-1))
    u, du = jax.jvp(lambda cc: field.batched(t, zt, cc), (c,), (eps,))
    fm = jnp.sum((u - (z1 - z0)) ** 2, axis=-1)
    return jnp.mean(w * (fm + penalty * jnp.sum(du**2, axis=-1)))


def make_optimizer(config: FlowConfig, total_steps: int) -> optax.GradientTransformation:
    """AdamW with linear warm-up and cosine decay (to ``final_lr_fraction`` of the peak)."""
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    schedule = optax.warmup_cosine_decay_schedule(
        0.0 if warmup else config.learning_rate,
        config.learning_rate,
        warmup,
        max(total_steps, warmup + 1),
        end_value=config.learning_rate * config.final_lr_fraction,
    )
    adamw = optax.adamw(schedule, weight_decay=config.weight_decay)
    if config.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip), adamw)
    return adamw


def make_step(
    optimizer: optax.GradientTransformation, ema_decay: float = 0.0, penalty: float = 0.0
):
    """One jitted training step.

    ``(field, opt_state, ema, i, z0, z1, c, w, t, eps) → (field, opt_state, ema, loss)``; ``ema`` is
    the moving average of the weights (the new field when ``ema_decay`` is 0), ``i`` the
    global step number (a scalar array: no recompiles).
    """

    @eqx.filter_jit
    def step(field, opt_state, ema, i, z0, z1, c, w, t, eps=None):
        loss, grads = eqx.filter_value_and_grad(cfm_loss)(field, z0, z1, c, w, t, eps, penalty)
        params = eqx.filter(field, eqx.is_array)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        field = eqx.apply_updates(field, updates)
        if ema_decay > 0:
            n = jnp.asarray(i, jnp.float32)
            d = jnp.minimum(ema_decay, (1.0 + n) / (10.0 + n))
            new = eqx.filter(field, eqx.is_array)
            old, static = eqx.partition(ema, eqx.is_array)
            avg = jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), old, new)
            ema = eqx.combine(avg, static)
        else:
            ema = field
        return field, opt_state, ema, loss

    return step


_eval_loss = eqx.filter_jit(cfm_loss)


def _standardise(a: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.average(a, axis=0, weights=w)
    std = np.sqrt(np.average((a - mean) ** 2, axis=0, weights=w))
    return mean, np.where(std > 0, std, 1.0)


_MAX_ABS = 1e30
"""Largest |value| accepted: its square (standardisation) stays finite in float64 and the
standardised float32 training inputs stay representable."""


def _check_rows(name: str, a: np.ndarray) -> None:
    """Refuse NaN/inf rows and values float32 training cannot represent, naming the count."""
    rows = a.reshape(len(a), -1)
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} rows with NaN/inf values (of {len(a)})")
    huge = (np.abs(rows) > _MAX_ABS).any(axis=1)
    if huge.any():
        raise ValueError(
            f"{name} has {int(huge.sum())} of {len(a)} rows with |value| > {_MAX_ABS:g}, beyond "
            "what float32 training can represent; drop them or rescale the units"
        )


def _validate_inputs(data, condition, weights):
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"data must have shape (N, d), got {data.shape}")
    if len(data) == 0:
        raise ValueError("data has 0 rows: nothing to fit")
    _check_rows("data", data)
    if condition is not None:
        condition = np.asarray(condition, dtype=np.float64)
        if condition.ndim != 2 or len(condition) != len(data):
            raise ValueError(f"condition must have shape ({len(data)}, c), got {condition.shape}")
        _check_rows("condition", condition)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(data),):
            raise ValueError(f"weights must have shape ({len(data)},), got {weights.shape}")
        bad = ~np.isfinite(weights) | (weights < 0)
        if bad.any():
            raise ValueError(f"weights has {int(bad.sum())} negative or non-finite entries")
        if not weights.any():
            raise ValueError("weights are all zero")
    return data, condition, weights


WHITEN_SIZES: dict[str, tuple[int, int]] = {
    "scalar": (16, 1),
    "diagonal": (32, 2),
    "cholesky": (32, 2),
}
"""(width, depth) of each mode's whitening MLP when ``whiten_width``/``whiten_depth`` are unset.

A scalar σ(x) is one smooth field: on the isotropic demo sphere a larger network only added
noise to ∇ ln det L (median error 12–15 % at 16×1, 22 % at 32×2). A covariance factor has six
outputs whose Cholesky entries vary with direction: on the anisotropic Osipkov–Merritt mock a
16×1 network leaves the radial dispersion 4 % low at 1–3 kpc, 32×2 within 1 %.
"""


class _Candidate(NamedTuple):
    """One whitening to fit: its mode, log-radius input and MLP size."""

    mode: str
    log_r: bool
    width: int
    depth: int


def _select_whitening(
    fit: Callable[[_Candidate], tuple[Any, dict, np.ndarray]],
    candidates: list[_Candidate],
    z: np.ndarray,
    w: np.ndarray,
    val_idx: np.ndarray,
    dt: np.dtype,
) -> tuple[_Candidate, Any, dict, np.ndarray]:
    """The ``"auto"`` whitening: the simplest candidate the held-out stars do not reject.

    ``candidates`` ((mode, log-radius feature, width, depth)) are ordered from the simplest;
    each is fitted with the same seed and split, and replaces the current choice only if its
    per-star validation log-likelihood is better by more than three standard errors of the
    paired (weighted) differences. Extra freedom the data do not ask for is noise in
    ∇ₓ ln p: on the isotropic demo sphere the Cholesky factor's six outputs measured a worse
    local force (0.26) than the scalar σ(x) (0.19), and the log-radius feature adds a kink at
    a core; an anisotropic system earns the full factor, a cusp the log-radius, by many
    errors. Each mode's network size is `WHITEN_SIZES` (or the config's).
    """
    wv = w[val_idx] / np.sum(w[val_idx])
    n_eff = 1.0 / float(np.sum(wv * wv))
    zv = jnp.asarray(z[val_idx], dt)

    def per_star_nll(aff, c):
        u, logdet = whiten(aff, zv, jnp.asarray(c[val_idx], dt))
        return np.asarray(0.5 * jnp.sum(u * u, axis=-1) + logdet, np.float64)

    table = []
    best = None
    for cand in candidates:
        aff, stats, c_feat = fit(cand)
        nll = per_star_nll(aff, c_feat)
        entry = {
            "mode": cand.mode, "log_r": cand.log_r, "width": cand.width, "depth": cand.depth,
            "val_nll": float(np.sum(wv * nll)),
        }  # fmt: skip
        if best is not None:
            diff = best[3] - nll  # > 0: the candidate fits the held-out stars better
            mean = float(np.sum(wv * diff))
            se = float(np.sqrt(np.sum(wv * (diff - mean) ** 2) / n_eff))
            entry["z_vs_chosen"] = mean / se if se > 0 else 0.0
            if entry["z_vs_chosen"] <= 3.0:
                table.append(entry)
                continue
        best = (cand, aff, stats, nll, c_feat)
        table.append(entry)
    assert best is not None  # the first candidate is always taken
    cand, aff, stats, _nll, c_feat = best
    stats = dict(stats)
    stats["selection"] = {
        "candidates": table, "mode": cand.mode, "log_r": cand.log_r,
        "width": cand.width, "depth": cand.depth,
    }  # fmt: skip
    return cand, aff, stats, c_feat


@dataclasses.dataclass(frozen=True)
class _Problem:
    """A fit's data after the train/validation split and standardisation (float64 NumPy).

    Attributes:
        z: (N, d) standardised data, (x − x_mean) / x_std.
        w: (N,) weights clipped at ``weight_clip``, scaled to mean 1 over the training split.
        x_mean, x_std: (d,) the data's weighted mean and standard deviation (data units).
        c_mean, c_std: (c,) the same for the condition (None for unconditional flows).
        train_idx, val_idx: sorted row indices of the two splits.
        batch: minibatch size, a multiple of the device count (and of ``ot_block`` with OT).
        steps_per_epoch: minibatches per epoch (the remainder of the split is dropped).
        use_ot: whether minibatches are minibatch-OT paired.
    """

    z: np.ndarray
    w: np.ndarray
    x_mean: np.ndarray
    x_std: np.ndarray
    c_mean: np.ndarray | None
    c_std: np.ndarray | None
    train_idx: np.ndarray
    val_idx: np.ndarray
    batch: int
    steps_per_epoch: int
    use_ot: bool


def _prepare(
    data: np.ndarray,
    condition: np.ndarray | None,
    weights: np.ndarray | None,
    config: FlowConfig,
    seed: int,
    n_devices: int,
) -> _Problem:
    """Split (seeded), size the minibatches and standardise the validated inputs."""
    n = len(data)
    w = np.ones(n) if weights is None else np.minimum(weights, config.weight_clip)
    use_ot = (condition is None) if config.ot is None else config.ot
    quantum = math.lcm(n_devices, config.ot_block if use_ot else 1)

    rng = np.random.default_rng([int(seed), 0xF10])
    perm = rng.permutation(n)
    n_val = max(1, round(config.val_fraction * n))
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    batch = min(config.batch_size, len(train_idx)) // quantum * quantum
    if batch < 1:
        raise ValueError(f"too few training samples ({len(train_idx)}) for batches of {quantum}")

    x_mean, x_std = _standardise(data, w)
    c_mean = c_std = None
    if condition is not None:
        c_mean, c_std = _standardise(condition, w)
    return _Problem(
        z=(data - x_mean) / x_std,
        w=w / np.mean(w[train_idx]),
        x_mean=x_mean,
        x_std=x_std,
        c_mean=c_mean,
        c_std=c_std,
        train_idx=train_idx,
        val_idx=val_idx,
        batch=batch,
        steps_per_epoch=len(train_idx) // batch,
        use_ot=use_ot,
    )


def _whiten_data(
    problem: _Problem, condition: np.ndarray | None, config: FlowConfig, seed: int
) -> tuple[np.ndarray, np.ndarray | None, ConditionalAffine | None, dict | None, bool]:
    """The conditional whitening (``config.whiten``, ``"auto"``: `_select_whitening`).

    Deterministic from the seed, so a resumed run refits (and reselects) identically.

    Returns:
        ``(z, cz, whitener, stats, log_r)``: the training targets (whitened when a whitener is
        fitted, else ``problem.z``), the condition features the networks see (None for
        unconditional flows), the whitener and its fit statistics (None without), and
        whether the features include the log-radius.
    """
    z = problem.z
    if config.whiten != "none" and config.whiten != "auto" and condition is None:
        raise ValueError("FlowConfig.whiten needs a conditional flow (pass condition=...)")
    if condition is None:
        return z, None, None, None, False
    c_mean, c_std = problem.c_mean, problem.c_std
    assert c_mean is not None and c_std is not None  # set by _prepare for conditional flows
    modes = ["scalar", "cholesky"] if config.whiten == "auto" else [config.whiten]
    log_r = config.cond_log_r
    if log_r == "auto" and modes == ["none"]:
        log_r = False
    if modes == ["none"]:
        return z, condition_features(condition, c_mean, c_std, bool(log_r)), None, None, bool(log_r)
    log_rs = [False, True] if log_r == "auto" else [bool(log_r)]
    w, train_idx, val_idx = problem.w, problem.train_idx, problem.val_idx

    def fit(cand: _Candidate) -> tuple[Any, dict, np.ndarray]:
        c_feat = condition_features(condition, c_mean, c_std, cand.log_r)
        aff, stats = fit_affine(
            z, c_feat, w, train_idx, val_idx, mode=cand.mode, width=cand.width,
            depth=cand.depth, degree=config.whiten_degree, n_steps=config.whiten_steps,
            batch_size=config.whiten_batch_size, seed=seed, dtype=config.dtype,
        )  # fmt: skip
        return aff, stats, c_feat

    dt = np.dtype(config.dtype)
    candidates = [_Candidate(m, lr, *_whiten_size(config, m)) for m in modes for lr in log_rs]
    if len(candidates) > 1:
        chosen, whitener, stats, cz = _select_whitening(fit, candidates, z, w, val_idx, dt)
    else:
        chosen = candidates[0]
        whitener, stats, cz = fit(chosen)
    z = np.asarray(whiten(whitener, jnp.asarray(z, dt), jnp.asarray(cz, dt))[0], np.float64)
    return z, cz, whitener, stats, chosen.log_r


def _whiten_size(config: FlowConfig, mode: str) -> tuple[int, int]:
    """(width, depth) of a ``mode`` whitening network: the config's, else `WHITEN_SIZES`."""
    width, depth = WHITEN_SIZES[mode]
    return config.whiten_width or width, config.whiten_depth or depth


def _put(shard: NamedSharding, dt: np.dtype, *arrays: np.ndarray | None) -> list[Any]:
    """Arrays in the training dtype, split over the devices along the batch axis."""
    return [None if a is None else jax.device_put(a.astype(dt), shard) for a in arrays]


def _times(u: np.ndarray, power: float) -> np.ndarray:
    """Flow-matching times t = u^(1/power) from uniform u (√u exactly for the default 2)."""
    return np.sqrt(u) if power == 2.0 else u ** (1.0 / power)


def _validation_pairs(
    z: np.ndarray,
    cz: np.ndarray | None,
    problem: _Problem,
    seed: int,
    block: int,
    time_power: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """The fixed validation minibatch ``(z0, z1, c, w, t)``, OT-paired the way training is."""
    vrng = np.random.default_rng([int(seed), 0xA1])
    val_idx = problem.val_idx
    zv, cv, wv = z[val_idx], None if cz is None else cz[val_idx], problem.w[val_idx]
    z0v = vrng.standard_normal(zv.shape)
    tv = _times(vrng.uniform(size=len(zv)), time_power)
    if problem.use_ot:
        for lo in range(0, len(zv) - block + 1, block):
            sl = slice(lo, lo + block)
            p = _pairing.ot_permutation(z0v[sl], zv[sl])
            zv[sl], wv[sl] = zv[sl][p], wv[sl][p]
            if cv is not None:
                cv[sl] = cv[sl][p]
    return z0v, zv, cv, wv, tv


def _epochs(config: FlowConfig) -> int:
    """The resolved number of epochs (`fit_flow` sets ``n_epochs`` before training)."""
    if config.n_epochs is None:
        raise AssertionError("n_epochs is resolved by fit_flow (FlowConfig.epochs_for)")
    return config.n_epochs


@contextlib.contextmanager
def _pairing_source(
    zt: np.ndarray,
    wt: np.ndarray | None,
    problem: _Problem,
    config: FlowConfig,
    seed: int,
    out_dir: str | Path | None,
) -> Iterator[_pairing.DpOtSource | None]:
    """dp-ot's precomputed pairings of the training split (None: OT off or no dp-ot).

    They are kept in ``out_dir/pairings``, or without ``out_dir`` in a temporary folder
    removed on exit. ``wt``: the training weights, None for unweighted data.
    """
    if not (problem.use_ot and _pairing.has_dp_ot()):
        yield None
        return
    with contextlib.ExitStack() as stack:
        if out_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="dp-flows-pairings-")
            base = Path(stack.enter_context(tmp))
        else:
            base = Path(out_dir)
        try:
            source = _pairing.DpOtSource(
                zt,
                base / "pairings",
                weights=wt,
                seed=seed,
                n_epochs=min(config.ot_epochs, _epochs(config)),
                block=config.ot_block,
            )
        except FileExistsError:
            raise ValueError(
                f"{base / 'pairings'} holds OT pairings of a different run (other data, seed "
                "or ot settings); use a fresh out_dir (--out), or delete that folder"
            ) from None
        yield source


def _epoch_batches(
    epoch: int,
    seed: int,
    zt: np.ndarray,
    ct: np.ndarray | None,
    wt: np.ndarray,
    source: _pairing.DpOtSource | None,
    problem: _Problem,
    config: FlowConfig,
) -> Iterator[tuple[np.ndarray | None, ...]]:
    """One epoch's minibatches ``(z0, z1, c, w, t, eps)`` of the training split, NumPy.

    Every draw (pairs, times, condition jitter, penalty directions) comes from the epoch's
    own generator, in the same order whether or not the run was resumed.
    """
    batch = problem.batch
    erng = _pairing.epoch_rng(seed, epoch)
    if source is not None:
        pairs = source.batches(epoch, batch)
    elif problem.use_ot:
        pairs = _pairing.ot_batches(erng, zt, batch, config.ot_block)
    else:
        pairs = _pairing.independent_batches(erng, len(zt), batch, zt.shape[1])
    for rows, z0 in pairs:
        t = _times(erng.uniform(size=batch), config.time_power)
        cb = None if ct is None else ct[rows]
        if cb is not None and config.cond_jitter > 0:
            cb = cb + config.cond_jitter * erng.standard_normal(cb.shape)
        eps = None
        if cb is not None and config.cond_penalty > 0:
            eps = erng.standard_normal(cb.shape)
        yield z0, zt[rows], cb, wt[rows], t, eps


def _train(
    field: AbstractVectorField,
    problem: _Problem,
    z: np.ndarray,
    cz: np.ndarray | None,
    *,
    weighted: bool,
    config: FlowConfig,
    seed: int,
    devices: list,
    out_dir: str | Path | None,
    meta: dict,
    progress: bool,
) -> tuple[AbstractVectorField, float, list[dict]]:
    """Flow matching from ``field``, resuming ``out_dir/checkpoint`` if it holds this run.

    Returns:
        The best-validation EMA field (on the host's default device), its validation loss
        and the per-epoch history.
    """
    n_epochs = _epochs(config)
    optimizer = make_optimizer(config, problem.steps_per_epoch * n_epochs)
    opt_state = optimizer.init(eqx.filter(field, eqx.is_array))
    state = _checkpoint.TrainState(field, opt_state, field, field)
    ckpt_dir = None if out_dir is None else Path(out_dir) / "checkpoint"
    start_epoch, best_val, history = 0, math.inf, []
    if ckpt_dir is not None and _checkpoint.exists(ckpt_dir):  # damaged: None, a fresh start
        resumed = _checkpoint.load(ckpt_dir, state, meta)
        if resumed is not None:
            state, start_epoch, best_val, history = resumed

    mesh = Mesh(np.asarray(devices), ("batch",))
    put = functools.partial(
        _put, NamedSharding(mesh, PartitionSpec("batch")), np.dtype(config.dtype)
    )
    state = jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
    step = make_step(optimizer, config.ema_decay, config.cond_penalty)
    val_data = put(*_validation_pairs(z, cz, problem, seed, config.ot_block, config.time_power))

    train_idx = problem.train_idx
    zt, ct, wt = z[train_idx], None if cz is None else cz[train_idx], problem.w[train_idx]
    with _pairing_source(zt, wt if weighted else None, problem, config, seed, out_dir) as source:
        if source is not None:
            wt = np.ones_like(wt)  # dp-ot already draws the stars in proportion to the weights
        bar = tqdm(
            range(start_epoch, n_epochs),
            disable=not progress,
            desc="fit_flow",
            initial=start_epoch,
            total=n_epochs,
        )
        field, opt_state, best, ema = state.field, state.opt_state, state.best, state.ema
        for epoch in bar:
            batches = _epoch_batches(epoch, seed, zt, ct, wt, source, problem, config)
            losses = []
            for j, arrays in enumerate(batches):
                i = np.int32(epoch * problem.steps_per_epoch + j)
                field, opt_state, ema, loss = step(field, opt_state, ema, i, *put(*arrays))
                losses.append(loss)
            train_loss = float(jnp.mean(jnp.stack(losses)))
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"non-finite training loss in epoch {epoch}; lower learning_rate, raise "
                    "grad clipping, or check data/weights (the last checkpoint is kept)"
                )
            record = {"epoch": epoch, "train_loss": train_loss}
            if (epoch + 1) % config.eval_every == 0 or epoch + 1 == n_epochs:
                val_loss = float(_eval_loss(ema, *val_data))
                record["val_loss"] = val_loss
                if val_loss < best_val:
                    best_val, best = val_loss, ema
            history.append(record)
            bar.set_postfix(
                train=f"{train_loss:.4f}",
                val=f"{record.get('val_loss', math.nan):.4f}",
                best=f"{best_val:.4f}",
            )
            done = epoch + 1 == n_epochs
            if ckpt_dir is not None and ((epoch + 1) % config.checkpoint_every == 0 or done):
                state = _checkpoint.TrainState(field, opt_state, best, ema)
                _checkpoint.save(ckpt_dir, state, epoch + 1, best_val, history, meta)
    return jax.device_get(best), best_val, history


def _assemble_flow(
    field: AbstractVectorField,
    problem: _Problem,
    whitener: ConditionalAffine | None,
    log_r: bool,
    config: FlowConfig,
) -> Flow:
    """The trained field with its standardisation, whitening and solver settings."""
    dt = np.dtype(config.dtype)
    return Flow(
        field=field,
        x_mean=jnp.asarray(problem.x_mean, dt),
        x_std=jnp.asarray(problem.x_std, dt),
        c_mean=None if problem.c_mean is None else jnp.asarray(problem.c_mean, dt),
        c_std=None if problem.c_std is None else jnp.asarray(problem.c_std, dt),
        whitener=whitener,
        cond_log_r=log_r,
        rtol=config.rtol,
        atol=config.atol,
        max_steps=config.max_steps,
        fixed_steps=config.fixed_steps,
        fixed_solver=config.fixed_solver,
    )


def fit_flow(
    data: Float[ArrayLike, "N d"],
    *,
    condition: Float[ArrayLike, "N c"] | None = None,
    weights: Float[ArrayLike, " N"] | None = None,
    config: FlowConfig | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: bool = True,
    devices: list | None = None,
) -> Flow:
    """Train a (conditional) flow by flow matching; returns the best-validation flow.

    Args:
        data: (N, d) samples of the modelled variable (e.g. v in km/s, or x in kpc).
        condition: (N, c) conditioning variable (e.g. x in kpc) for p(data | condition).
        weights: (N,) per-sample weights (e.g. 1/S), clipped at ``config.weight_clip``.
        config: hyperparameters (`FlowConfig`); defaults if None.
        seed: the one integer all randomness derives from.
        out_dir: if given, the flow is saved there and training checkpoints to
            ``out_dir/checkpoint`` and resumes from it (the same run continues identically).
            A checkpoint of another run (other data, condition or weights, config or seed)
            raises ValueError: use a fresh out_dir.
        progress: show a progress bar with the losses.
        devices: devices to shard the batch over (default: all of ``jax.devices()``).

    Example:
        A tiny p(v|x) (real ones use the defaults and many epochs):

        >>> import numpy as np
        >>> from dp_flows import FlowConfig, fit_flow, log_prob
        >>> rng = np.random.default_rng(0)
        >>> x, v = rng.normal(size=(256, 3)), rng.normal(size=(256, 3))
        >>> cfg = FlowConfig(width=8, depth=1, batch_size=64, n_epochs=2, whiten="scalar",
        ...                  cond_log_r=False)
        >>> flow = fit_flow(v, condition=x, config=cfg, seed=1, progress=False)
        >>> log_prob(flow, v[:4], condition=x[:4], progress=False).shape
        (4,)
    """
    config = config or FlowConfig()
    data, condition, weights = _validate_inputs(data, condition, weights)
    devices = list(devices or jax.devices())
    problem = _prepare(data, condition, weights, config, seed, len(devices))
    # n_epochs = None: from the data's size; the flow records the number it trained
    config = config.replace(
        n_epochs=config.epochs_for(problem.steps_per_epoch, conditional=condition is not None)
    )
    z, cz, whitener, whiten_stats, log_r = _whiten_data(problem, condition, config, seed)

    n, d = data.shape
    field = ResNetField(
        d,
        0 if cz is None else cz.shape[1],
        width=config.width,
        depth=config.depth,
        time_embedding_dim=config.time_embedding_dim,
        sh_lmax=config.sh_lmax,
        dtype=config.dtype,
        key=jax.random.key(seed),
    )
    meta = {"config": config.to_dict(), "seed": int(seed), "n": n, "d": d, "batch": problem.batch}
    if out_dir is not None:  # a checkpoint resumes only the same data, not just the same N
        meta["data"] = _checkpoint.data_hash(data, condition, weights)
    best, best_val, history = _train(
        field, problem, z, cz, weighted=weights is not None, config=config, seed=seed,
        devices=devices, out_dir=out_dir, meta=meta, progress=progress,
    )  # fmt: skip
    flow = _assemble_flow(best, problem, whitener, log_r, config)
    if out_dir is not None:
        from ._io import save_flow, write_json

        save_flow(flow, out_dir)
        write_json(
            Path(out_dir) / "history.json",
            {
                "history": history,
                "best_val": best_val,
                "whitening": whiten_stats,
                "config": config.to_dict(),
            },
        )
    return flow
