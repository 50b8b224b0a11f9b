"""`fit`: train Φ (and ln n or ln S) on a `GradientSet` — AdamW, stopping rule, data parallel."""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from . import _ckpt
from ._config import FitConfig
from ._fields import grad_and_laplacian
from ._io import GradientSet, atomic_write, read_gradients
from ._losses import DENSITY_OF_METHOD, METHODS, Batch, CBEModel, data_loss, model_loss
from ._solution import MODEL_SCHEMA, PotentialSolution, build_model, save_model
from ._stopping import ConvergenceWarning, StoppingRule, probe_positions
from ._units import dlnf_dv_to_internal, velocity_to_internal
from ._weights import radial_balance_probabilities, weighting_scales

_METHOD_OF_DENSITY = {d: m for m, d in DENSITY_OF_METHOD.items()}


def resolve_method(method: str | None, density: str) -> str:
    """The method for gradients of ``density``; an explicit mismatching method is an error."""
    if method is None:
        return _METHOD_OF_DENSITY[density]
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if DENSITY_OF_METHOD[method] != density:
        raise ValueError(
            f"method {method!r} needs gradients of {DENSITY_OF_METHOD[method]!r}, but the "
            f"gradients are of {density!r}; use method {_METHOD_OF_DENSITY[density]!r}"
        )
    return method


def _hyperparameters(method: str, cfg: FitConfig, x: np.ndarray, v: np.ndarray) -> dict[str, Any]:
    mean = [float(m) for m in x.mean(axis=0)]
    scale = float(x.std())
    r = np.linalg.norm(x - np.asarray(mean), axis=1)
    # The std of a uniform ball of the data's 99.5 % radius: equal to `scale` for data that
    # fill their volume evenly, larger for centrally concentrated data (a cusp).
    extent = max(scale, float(np.quantile(r, 0.995)) / math.sqrt(5.0))
    common: dict[str, Any] = {
        "in_mean": mean, "in_scale": scale, "r_soft": cfg.r_soft, "n_fourier": cfg.n_fourier,
        "period": float(4.0 * np.abs(x).max()), "log_r": cfg.log_r, "log_r_soft": cfg.log_r_soft,
    }  # fmt: skip
    # Φ varies by ~ the velocity dispersion squared over the tracers' extent (virial).
    phi: dict[str, Any] = dict(
        common, width=cfg.phi_width, depth=cfg.phi_depth, l_max=cfg.phi_l_max,
        out_scale=float(np.mean(np.sum(v * v, axis=1)) / 3.0),
    )  # fmt: skip
    n_mix, mix_mass = cfg.phi_mixture, cfg.phi_mixture_mass
    assert n_mix is not None and mix_mass is not None, "FitConfig.resolved() first"
    if n_mix > 0:
        lo, hi = np.quantile(r, [0.01, 0.995])
        # A fraction of the virial mass guess ⟨v²⟩ r_median / G; training moves it.
        virial = float(np.mean(np.sum(v * v, axis=1)) * np.median(r))
        phi["mixture"] = {"n": n_mix, "r_min": float(max(lo, 1e-3 * hi)),
                          "r_max": float(2.0 * hi), "mass": mix_mass * virial}  # fmt: skip
    aux = None
    if method == "selection":
        aux = dict(common, width=cfg.s_width, depth=cfg.s_depth, l_max=cfg.l_max, out_scale=1.0)
    elif method == "conditional":
        aux = dict(common, width=cfg.n_width, depth=cfg.n_depth, l_max=cfg.n_l_max, out_scale=1.0)
    if aux is not None and cfg.aux_scale == "extent":
        aux["in_scale"] = extent
    return {"schema": MODEL_SCHEMA, "method": method, "phi": phi, "aux": aux, "frame": cfg.frame,
            "units": "internal: kpc, 100 km/s, G=1", "config": cfg.to_dict()}  # fmt: skip


def profile_group(method: str, cfg: FitConfig, group_size: int) -> int:
    """The group size over which the loss eliminates ∇ln n (`FitConfig.ln_n_gradient`);
    1: none (the ln n network's gradient is used)."""
    if method != "conditional" or cfg.ln_n_gradient == "network":
        return 1
    if group_size < 4:
        raise ValueError(
            f"ln_n_gradient = 'profile' needs a gradient set with groups of >= 4 velocities "
            f"per position (its group_size is {group_size}); draw one with several velocities "
            "per position (deep-potential gradients --velocities-per-position), or use "
            "ln_n_gradient = 'network'"
        )
    return group_size


def _fingerprint(method: str, cfg: FitConfig, seed: int, gs: GradientSet) -> str:
    """The fit's identity: method, config, seed and every byte of the data. A checkpoint
    written under another fingerprint is not resumed (`_ckpt.resume` says so)."""
    d = cfg.to_dict()
    h = hashlib.sha256(json.dumps([method, d, seed, len(gs), gs.group_size]).encode())
    # Every byte of the data (SHA-256: 0.6 s for 2^22 samples on a 2-core development machine).
    for a in (gs.x, gs.v, gs.dlnf_dx, gs.dlnf_dv, gs.ln_n_obs):
        h.update(b"-" if a is None else np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def fit(
    gradients: GradientSet | str | Path,
    method: str | None = None,
    *,
    config: FitConfig | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: bool = True,
    callback: Callable[[int, CBEModel], None] | None = None,
) -> PotentialSolution:
    """Fit Φ (and ln n or ln S) so that the stationary CBE holds on the given gradients.

    Training stops when the stopping rule holds (see `FitConfig`: validation-loss plateau and
    a stable Φ on fixed probe positions) or at the ``n_steps`` ceiling.

    Args:
        gradients: a `GradientSet` or the path of a ``gradients.h5``.
        method: ``vanilla`` | ``selection`` | ``conditional``; None picks it from the
            gradients' ``density`` (f | f_obs | p_v_given_x).
        config: hyperparameters (default `FitConfig()`); its automatic (None) settings are
            chosen from the gradient set (`FitConfig.resolved`).
        seed: the only source of randomness (initialisation, split, minibatch order).
        out_dir: if given, checkpoints go to ``out_dir/checkpoint`` (and a run resumes from
            them), and the best model is saved there.
        progress: show a tqdm progress bar with the losses.
        callback: called after every evaluation (each ``eval_every`` steps, after any
            checkpoint of that step) with the step count and the current `CBEModel` (internal
            units; wrap it as ``PotentialSolution(model, {})`` to evaluate in physical units).
            Its run time does not change the fit; an exception it raises stops the fit, which
            then resumes from the last checkpoint.

    Returns:
        The model with the lowest validation loss, as a `PotentialSolution`. Its ``history``
        holds per-evaluation ``step``, ``train_loss``, ``val_loss``, ``learning_rate``,
        ``probe_change``, and ``best_step``, ``best_val``, ``steps`` (taken), ``converged``
        (bool) and ``stop_reason`` (``converged`` | ``n_steps``).

    Raises:
        FloatingPointError: the loss became non-finite (the message says what to change).

    Warns:
        ConvergenceWarning: the fit reached ``n_steps`` without meeting the stopping rule.

    Example (needs a gradients.h5 and minutes of training, hence not run as a doctest)::

        sol = dp_cbe.fit("gradients.h5", out_dir="model")
        sol.acceleration(np.zeros((1, 3)))
    """
    gs = gradients if isinstance(gradients, GradientSet) else read_gradients(gradients)
    cfg = FitConfig() if config is None else config
    method = resolve_method(method, gs.density)
    cfg = cfg.resolved(exact=gs.exact, group_size=gs.group_size, method=method)  # automatic
    balance = cfg.radial_balance
    assert balance is not None  # resolved
    settings = cfg.loss_settings()
    if settings.lam_nobs > 0 and gs.ln_n_obs is None:
        raise ValueError("lam_nobs > 0 needs ln_n_obs in the gradient set")

    devices = jax.devices()[: cfg.n_devices] if cfg.n_devices else jax.devices()
    n_dev = len(devices)
    if cfg.batch_size % n_dev:
        raise ValueError(f"batch_size {cfg.batch_size} is not a multiple of {n_dev} devices")
    mesh = Mesh(np.array(devices), ("batch",))
    rep = NamedSharding(mesh, PartitionSpec())
    shard = NamedSharding(mesh, PartitionSpec("batch"))

    # Internal units, float32; 75/25 split from the seed.
    cols = [gs.x, velocity_to_internal(gs.v), gs.dlnf_dx, dlnf_dv_to_internal(gs.dlnf_dv),
            gs.ln_n_obs if gs.ln_n_obs is not None else np.zeros(len(gs))]  # fmt: skip
    cols.append(weighting_scales(cols[0], cols[1], cols[2], cols[3], cfg.weighting))
    cols = [np.asarray(c, np.float32) for c in cols]
    # The unit of splitting and sampling is a position's group of velocities (1 row without).
    gk = gs.group_size
    group = profile_group(method, cfg, gk)
    if cfg.batch_size % (gk * n_dev):
        raise ValueError(
            f"batch_size {cfg.batch_size} is not a multiple of group_size {gk} × {n_dev} devices"
        )
    n_groups = len(gs) // gk
    perm = np.random.default_rng([seed, 0]).permutation(n_groups)
    n_val_g = round(cfg.val_fraction * n_groups)
    tr = (perm[n_val_g:, None] * gk + np.arange(gk)).ravel()
    va = (perm[:n_val_g, None] * gk + np.arange(gk)).ravel()
    n_tr, n_val = len(tr), len(va)
    val_bs = min(cfg.batch_size, n_val) // (gk * n_dev) * (gk * n_dev)
    if n_tr < cfg.batch_size or val_bs == 0:
        raise ValueError(
            f"{len(gs)} samples give {n_tr} training / {n_val} validation samples; need at "
            f"least batch_size={cfg.batch_size} for training and {gk * n_dev} for validation"
        )
    n_vb = min(cfg.val_batches, n_val // val_bs)
    hyper = _hyperparameters(method, cfg, cols[0][tr], cols[1][tr])
    hyper["seed"] = int(seed)  # with the set and `config`, what reproduces this model
    center = np.asarray(hyper["phi"]["in_mean"])
    # Minibatch sampling probabilities (radial balance); the validation mean is weighted alike.
    p_all = radial_balance_probabilities(cols[0], center, balance)
    p_tr = p_all[tr[::gk]]
    cdf = np.cumsum(p_tr / p_tr.sum())
    cols.append(np.asarray(p_all * len(gs), np.float32))
    train = Batch(*(jax.device_put(c[tr], rep) for c in cols[:-1]), weight=None)
    val = Batch(*(jax.device_put(c[va[: n_vb * val_bs]].reshape(n_vb, val_bs, *c.shape[1:]),
                                 rep) for c in cols))  # fmt: skip

    model = build_model(hyper, key=jax.random.PRNGKey(seed))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    # AdamW without its learning rate: each step's rate comes from the stopping rule's schedule.
    chain = [optax.clip_by_global_norm(cfg.grad_clip)] if cfg.grad_clip > 0 else []
    opt = optax.chain(*chain, optax.scale_by_adam(), optax.add_decayed_weights(cfg.weight_decay))
    opt_state = opt.init(params)
    probe_x, probe_shell = probe_positions(cols[0][tr], center)
    probe_x = jnp.asarray(probe_x, jnp.float32)

    state = {"step": 0, "best_val": math.inf, "best_step": -1, "converged": False,
             "stop_reason": None, "rule": None,
             "history": {"step": [], "train_loss": [], "val_loss": [], "learning_rate": [],
                         "probe_change": []}}  # fmt: skip
    best = params
    ckpt = Path(out_dir) / "checkpoint" if out_dir is not None else None
    fp = _fingerprint(method, cfg, seed, gs)
    resumed = None if ckpt is None else _ckpt.resume(ckpt, (params, opt_state, best), fp)
    if resumed is not None:  # None: no checkpoint, or a damaged one moved aside (a fresh start)
        (params, opt_state, best), state = resumed
    rule = StoppingRule(cfg, state["rule"])
    state["rule"] = rule.state
    params, opt_state, best = jax.device_put((params, opt_state, best), rep)

    def objective(p: Any, batch: Batch) -> tuple[jax.Array, jax.Array]:
        return model_loss(eqx.combine(p, static), settings, batch, group, cfg.density_every)

    @eqx.filter_jit
    def run_chunk(
        p: Any, o: Any, train: Batch, idx: jax.Array, lrs: jax.Array
    ) -> tuple[Any, Any, jax.Array]:
        def body(
            carry: tuple[Any, Any], step: tuple[jax.Array, jax.Array]
        ) -> tuple[tuple[Any, Any], jax.Array]:
            p, o = carry
            ib, lr = step
            batch = jax.lax.with_sharding_constraint(
                Batch(*(None if a is None else a[ib] for a in train)),  # pyright: ignore[reportArgumentType]  # absent columns stay None
                shard,
            )
            (_, aux), g = jax.value_and_grad(objective, has_aux=True)(p, batch)
            updates, o = opt.update(g, o, p)
            updates = jax.tree_util.tree_map(lambda u: -lr * u, updates)
            return (eqx.apply_updates(p, updates), o), aux

        (p, o), auxs = jax.lax.scan(body, (p, o), (idx, lrs))
        return p, o, auxs

    @eqx.filter_jit
    def probe(p: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        phi = eqx.combine(p, static).phi
        _, g, lap = jax.vmap(lambda q: grad_and_laplacian(phi, q))(x)
        return g, lap

    @eqx.filter_jit
    def val_loss(p: Any, val: Batch) -> jax.Array:
        m = eqx.combine(p, static)

        def one(batch: Batch) -> jax.Array:
            batch = jax.lax.with_sharding_constraint(batch, shard)
            return data_loss(m.phi, m.aux, method, settings, batch, m.frame, group)[0]

        return jnp.mean(jax.lax.map(one, val))

    bs_g, n_tr_g = cfg.batch_size // gk, n_tr // gk
    spe = n_tr_g // bs_g

    def indices(s0: int, n: int) -> np.ndarray:
        """Training-row indices of steps s0…s0+n−1: whole groups, drawn by group."""
        out = np.empty((n, bs_g), np.int64)
        for i, s in enumerate(range(s0, s0 + n)):
            if balance > 0:
                u = np.random.default_rng([seed, 2, s]).uniform(size=bs_g)
                out[i] = np.minimum(np.searchsorted(cdf, u), n_tr_g - 1)
                continue
            e, pos = divmod(s, spe)
            order = np.random.default_rng([seed, 1, e]).permutation(n_tr_g)
            out[i] = order[pos * bs_g : (pos + 1) * bs_g]
        return (out[:, :, None] * gk + np.arange(gk)).reshape(n, cfg.batch_size).astype(np.int32)

    bar = tqdm(total=cfg.ceiling, initial=state["step"], disable=not progress,
               desc=f"dp-cbe {method}", dynamic_ncols=True)  # fmt: skip
    try:
        while state["step"] < cfg.ceiling and state["stop_reason"] is None:
            s0 = state["step"]
            k = min(cfg.eval_every, cfg.ceiling - s0)
            lrs = rule.learning_rates(np.arange(s0, s0 + k)).astype(np.float32)
            params, opt_state, auxs = run_chunk(
                params, opt_state, train, jnp.asarray(indices(s0, k)), jnp.asarray(lrs)
            )
            vl = float(val_loss(params, val))
            tl = float(np.mean(np.asarray(auxs)[:, 0]))
            if not (np.isfinite(np.asarray(auxs)).all() and np.isfinite(vl)):
                raise FloatingPointError(
                    f"dp-cbe {method}: non-finite loss between steps {s0} and {s0 + k} "
                    f"(train {tl}, validation {vl}). Lower learning_rate (now "
                    f"{cfg.learning_rate}) or grad_clip, check the gradients file for extreme "
                    "values (drop samples near the edge of the density model's support), or "
                    "set log_loss=False."
                )
            state["step"] = s0 + k
            h = state["history"]
            h["step"].append(state["step"])
            h["train_loss"].append(tl)
            h["val_loss"].append(vl)
            h["learning_rate"].append(float(lrs[-1]))
            if vl < state["best_val"]:
                state["best_val"], state["best_step"], best = vl, state["step"], params
            probe_g, probe_lap = probe(params, probe_x)
            converged, change = rule.update(
                state["step"], vl, (np.asarray(probe_g), np.asarray(probe_lap)), probe_shell
            )
            h["probe_change"].append(change if math.isfinite(change) else None)
            state["converged"] = converged
            if converged and cfg.early_stop:
                state["stop_reason"] = "converged"
            elif state["step"] >= cfg.ceiling:
                state["stop_reason"] = "n_steps"
            bar.update(k)
            bar.set_postfix(loss=f"{tl:.4g}", val=f"{vl:.4g}", best=f"{state['best_val']:.4g}",
                            change=f"{change:.3g}")  # fmt: skip
            done = state["stop_reason"] is not None
            if ckpt is not None and (done or state["step"] % cfg.checkpoint_every == 0):
                _checkpoint(ckpt, (params, opt_state, best), dict(state, fingerprint=fp))
            if callback is not None:
                callback(state["step"], eqx.combine(params, static))
    finally:
        bar.close()

    final = eqx.combine(jax.device_get(best), static)
    improving = still_improving(state["best_step"], state["step"], cfg)
    history = dict(state["history"], best_step=state["best_step"], best_val=state["best_val"],
                   steps=state["step"], converged=bool(state["converged"]),
                   stop_reason=state["stop_reason"], still_improving=improving)  # fmt: skip
    if not state["converged"]:
        warnings.warn(unconverged_message(method, history, cfg), ConvergenceWarning, stacklevel=3)
    solution = PotentialSolution(final, hyper, history)
    if out_dir is not None:
        save_model(final, hyper, out_dir, history=history)
    return solution


def still_improving(best_step: int, steps: int, cfg: FitConfig) -> bool:
    """Whether the validation loss was still falling when a fit stopped: its best came in the
    last ``patience`` evaluations. If not, the returned best-validation model predates the stop
    by far, and more steps would only fit the training samples' noise further."""
    return bool(best_step > steps - cfg.patience * cfg.eval_every)


def unconverged_message(method: str, history: dict[str, Any], cfg: FitConfig) -> str:
    """The `ConvergenceWarning` of a fit that reached its step ceiling unconverged: what the
    history says more steps would (still falling) or would not (minimum long past) change."""
    last = (history["probe_change"] or [None])[-1]
    head = (f"dp-cbe {method}: NOT CONVERGED after {history['steps']} steps (n_steps = "
            f"{cfg.ceiling}; last relative probe change {last}, probe_tol {cfg.probe_tol}): ")  # fmt: skip
    if history["still_improving"]:
        return head + (
            "the validation loss was still falling; the model may be inaccurate, first where "
            "orbits are slow (large radii). Refit with a larger n_steps (in a fresh out_dir), "
            "or a lower learning_rate if the losses oscillate."
        )
    return head + (
        f"the validation loss reached its minimum at step {history['best_step']} and did not "
        "improve after (the networks fit the training samples' noise); the model is that "
        "step's. More steps will not change it: more gradient samples will, and refits with "
        "other seeds show its spread."
    )


def _checkpoint(ckpt: Path, trees: tuple[Any, Any, Any], state: dict[str, Any]) -> None:
    """Write the trees under a step-named file, then the JSON pointing at it (crash-safe)."""
    ckpt.mkdir(parents=True, exist_ok=True)
    name = f"state-{state['step']:08d}.eqx"
    atomic_write(ckpt / name, lambda p: eqx.tree_serialise_leaves(p, trees))
    text = json.dumps(dict(state, file=name))
    atomic_write(ckpt / "state.json", lambda p: p.write_text(text))
    for old in ckpt.glob("state-*.eqx"):
        if old.name != name:
            old.unlink(missing_ok=True)
