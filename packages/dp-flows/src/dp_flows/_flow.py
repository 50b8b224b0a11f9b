"""The `Flow` module and its inference: sampling, exact log-density and its gradients."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray
from tqdm.auto import tqdm

from . import _fixed
from ._fields import AbstractVectorField
from ._whiten import ConditionalAffine, unwhiten, whiten

_LOG_2PI = math.log(2.0 * math.pi)

#: Softening of the log-radius condition feature, in standardised units of the condition.
LOG_R_SOFTENING = 0.05


def condition_features(c: Any, c_mean: Any, c_std: Any, log_r: bool) -> Any:
    """The conditioning input the networks see: (c − c_mean)/c_std, then optionally ln radius.

    With ``log_r`` one more column is appended: ½ ln(Σᵢ (cᵢ/c_stdᵢ)² + 0.05²), the log of the
    distance from the data frame's origin (for a galaxy, its centre) in standardised units.
    Steep profiles (a density cusp, a dispersion that falls to zero at the centre) are close
    to linear in it, where a small network of the Cartesian condition needs many units.
    NumPy arrays in give a float64 NumPy array out (training); JAX arrays a JAX array.
    """
    xp = np if isinstance(c, np.ndarray) else jnp  # NumPy in, NumPy (float64) out
    cs = (c - c_mean) / c_std
    if not log_r:
        return cs
    scaled = c / c_std
    lr = 0.5 * xp.log(xp.sum(scaled * scaled, axis=-1, keepdims=True) + LOG_R_SOFTENING**2)
    return xp.concatenate([cs, lr.astype(cs.dtype)], axis=-1)


class Flow(eqx.Module):
    """A continuous normalizing flow N(0, I) at t=0 → standardised data at t=1.

    Standardisation is an affine layer inside: z = (x − x_mean) / x_std (and likewise for the
    condition), so every public function works in the data's own units. A conditional flow
    may also carry a ``whitener`` (`ConditionalAffine`): the field then transports N(0, I) to
    u = L(c)⁻¹ (z − μ(c)), and ln p includes −ln |det L(c)| (see `dp_flows._whiten`).
    With ``cond_log_r`` the networks also see the log-radius of the condition
    (`condition_features`).
    """

    field: AbstractVectorField
    x_mean: Float[Array, " d"]
    x_std: Float[Array, " d"]
    c_mean: Float[Array, " c"] | None
    c_std: Float[Array, " c"] | None
    whitener: ConditionalAffine | None = None
    rtol: float = eqx.field(static=True, default=1e-4)
    atol: float = eqx.field(static=True, default=1e-5)
    max_steps: int = eqx.field(static=True, default=4096)
    fixed_steps: int = eqx.field(static=True, default=0)
    fixed_solver: str = eqx.field(static=True, default="rk4")
    cond_log_r: bool = eqx.field(static=True, default=False)

    @property
    def data_dim(self) -> int:
        return self.field.data_dim

    @property
    def cond_dim(self) -> int:
        """Dimension of the condition a caller passes (the networks may see more features)."""
        return self.field.cond_dim - int(self.cond_log_r)

    def with_solver(self, **changes: float | int) -> Flow:
        """A copy with other ``rtol``, ``atol``, ``max_steps``, ``fixed_steps`` or ``fixed_solver``.

        ``fixed_steps > 0`` selects the batched fixed-step solve (``fixed_solver``: ``"rk4"``,
        ``"midpoint"`` or ``"euler"``); 0 the adaptive diffrax Tsit5 solve.
        """
        return dataclasses.replace(self, **changes)

    def _std_c(self, c: Array | None) -> Array | None:
        if self.c_mean is None or self.c_std is None or c is None:
            return None
        return condition_features(c, self.c_mean, self.c_std, self.cond_log_r)


def _solve(flow: Flow, z: Array, c: Array | None, t0: float, t1: float, logdet: bool):
    """Integrate one sample from t0 to t1; returns (z(t1), ∫tr ∂u/∂z dt, hit_max, failed, steps)."""
    field = flow.field

    def rhs(t, y, args):
        zz = y[0]
        if not logdet:
            return (field(t, zz, args), jnp.zeros((), zz.dtype))
        # A batch of one through the field's own divergence (the same code as the fixed path).
        cc = None if args is None else args[None]
        u, div = field.velocity_and_divergence(jnp.reshape(t, (1,)).astype(zz.dtype), zz[None], cc)
        return (u[0], div[0])

    controller = diffrax.PIDController(rtol=flow.rtol, atol=flow.atol)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(rhs),
        diffrax.Tsit5(),
        t0,
        t1,
        None,
        (z, jnp.zeros((), z.dtype)),
        args=c,
        stepsize_controller=controller,
        max_steps=flow.max_steps,
        # Enough checkpoints that backpropagating through a typical solve (tens of steps)
        # recomputes little; longer solves fall back to treeverse recomputation.
        # (Forward mode — jacfwd over the ≤ 6 inputs — measured 2x slower than this.)
        adjoint=diffrax.RecursiveCheckpointAdjoint(checkpoints=min(flow.max_steps, 128)),
        throw=False,
    )
    hit_max = sol.result == diffrax.RESULTS.max_steps_reached
    failed = sol.result != diffrax.RESULTS.successful
    ys = sol.ys
    assert ys is not None  # saveat defaults to t1: always saved
    return ys[0][-1], ys[1][-1], hit_max, failed, sol.stats["num_steps"]


def _whiten_in(flow: Flow, z: Array, cs: Array | None) -> tuple[Array, Array]:
    """z → u = L⁻¹(z − μ) and ln |det L| (identity and 0 without a whitener)."""
    if flow.whitener is None or cs is None:
        return z, jnp.zeros(z.shape[:-1], z.dtype)
    return whiten(flow.whitener, z, cs)


def _whiten_out(flow: Flow, u: Array, cs: Array | None) -> Array:
    """u → z = μ + L u (identity without a whitener)."""
    if flow.whitener is None or cs is None:
        return u
    return unwhiten(flow.whitener, u, cs)


def _log_prob_one(flow: Flow, x: Array, c: Array | None):
    dt = flow.x_mean.dtype
    z1 = (jnp.asarray(x, dt) - flow.x_mean) / flow.x_std
    cs = flow._std_c(None if c is None else jnp.asarray(c, dt))
    z1, logdet = _whiten_in(flow, z1, cs)
    z0, int_trace, hit_max, failed, steps = _solve(flow, z1, cs, 1.0, 0.0, True)
    # Integrating 1 → 0 gives ℓ = −∫₀¹ tr(∂u/∂z) dt, so ln p₁(z₁) = ln N(z₀) + ℓ.
    lp = -0.5 * jnp.sum(z0**2) - 0.5 * z0.shape[0] * _LOG_2PI + int_trace
    lp = lp - jnp.sum(jnp.log(flow.x_std)) - logdet
    return lp, (hit_max, failed, steps)


def _log_prob_fixed(flow: Flow, x: Array, c: Array | None):
    """The batched fixed-step version of `_log_prob_one` (same conventions, whole batch)."""
    dt = flow.x_mean.dtype
    z1 = (jnp.asarray(x, dt) - flow.x_mean) / flow.x_std
    cs = flow._std_c(None if c is None else jnp.asarray(c, dt))
    z1, logdet = _whiten_in(flow, z1, cs)
    z0, int_trace = _fixed.integrate(
        flow.field, z1, cs, 1.0, 0.0, flow.fixed_steps, flow.fixed_solver, True
    )
    lp = -0.5 * jnp.sum(z0**2, axis=-1) - 0.5 * z0.shape[-1] * _LOG_2PI + int_trace
    lp = lp - jnp.sum(jnp.log(flow.x_std)) - logdet
    return lp, _fixed_aux(flow, lp)


def _fixed_aux(flow: Flow, value: Array):
    bad = ~jnp.isfinite(value)
    if bad.ndim > 1:
        bad = bad.any(axis=tuple(range(1, bad.ndim)))
    return jnp.zeros_like(bad), bad, jnp.full(bad.shape, flow.fixed_steps)


@eqx.filter_jit
def _log_prob_batch(flow: Flow, x: Array, c: Array | None):
    if flow.fixed_steps:
        return _log_prob_fixed(flow, x, c)
    return jax.vmap(lambda xi, ci: _log_prob_one(flow, xi, ci))(x, c)


@eqx.filter_jit
def _grad_batch(flow: Flow, x: Array, c: Array | None):
    if flow.fixed_steps:
        # Samples are independent, so the gradient of the batch sum is every sample's gradient.
        def total(xx, cc):
            lp, aux = _log_prob_fixed(flow, xx, cc)
            return jnp.sum(lp), aux

        g, aux = jax.grad(total, argnums=(0, 1) if c is not None else 0, has_aux=True)(x, c)
        return (g if c is not None else (g, None)), aux
    argnums = (1, 2) if c is not None else 1
    g = jax.vmap(jax.grad(_log_prob_one, argnums=argnums, has_aux=True), in_axes=(None, 0, 0))
    lp_grads, aux = g(flow, x, c)
    if c is None:
        return (lp_grads, None), aux
    return lp_grads, aux


@eqx.filter_jit
def _sample_batch(flow: Flow, z0: Array, c: Array | None):
    if flow.fixed_steps:
        cs = flow._std_c(c)
        z1, _ = _fixed.integrate(
            flow.field, z0, cs, 0.0, 1.0, flow.fixed_steps, flow.fixed_solver, False
        )
        z1 = _whiten_out(flow, z1, cs)
        return z1 * flow.x_std + flow.x_mean, _fixed_aux(flow, z1)

    def one(z, ci):
        cs = flow._std_c(ci)
        z1, _, hit_max, failed, steps = _solve(flow, z, cs, 0.0, 1.0, False)
        z1 = _whiten_out(flow, z1, cs)
        return z1 * flow.x_std + flow.x_mean, (hit_max, failed, steps)

    return jax.vmap(one)(z0, c)


def _check(aux, n_real: int, flow: Flow, what: str) -> None:
    hit_max, failed = np.asarray(aux[0])[:n_real], np.asarray(aux[1])[:n_real]
    if hit_max.any():
        raise RuntimeError(
            f"{what}: the ODE solve hit max_steps={flow.max_steps} for {int(hit_max.sum())} of "
            f"{n_real} samples; raise max_steps (flow.with_solver(max_steps=...) or "
            f"FlowConfig.max_steps) or loosen rtol={flow.rtol}/atol={flow.atol}"
        )
    if failed.any():
        raise RuntimeError(f"{what}: the ODE solve failed for {int(failed.sum())} samples")


def _map_batches(
    fn: Callable,
    flow: Flow,
    arrays: list,
    n: int,
    batch_size: int,
    progress: bool | None,
    what: str,
    devices: list | None = None,
) -> list[np.ndarray]:
    """Run ``fn(flow, *batch)`` over fixed-size, padded batches (one compile for all).

    Each batch is split over ``devices`` (default: all of ``jax.devices()``) when its size
    is a multiple of their number.
    """
    batch_size = max(1, min(batch_size, n))
    devs = list(devices or jax.devices())
    if len(devs) > 1 and batch_size % len(devs) == 0:
        place = NamedSharding(Mesh(np.asarray(devs), ("batch",)), PartitionSpec("batch"))
    else:
        place = devs[0]
    dt = np.dtype(flow.x_mean.dtype)
    arrays = [None if a is None else np.asarray(a, dtype=dt) for a in arrays]
    outs: list[list[np.ndarray]] = []
    n_batches = -(-n // batch_size)
    show = progress if progress is not None else n_batches > 4
    for i in tqdm(range(n_batches), desc=what, disable=not show, leave=False):
        lo, hi = i * batch_size, min(n, (i + 1) * batch_size)
        batch: list[Any] = []
        for a in arrays:
            if a is None:
                batch.append(None)
                continue
            b = a[lo:hi]
            if hi - lo < batch_size:  # pad with copies of the first row: same shape, no recompile
                b = np.concatenate([b, np.repeat(b[:1], batch_size - (hi - lo), axis=0)])
            batch.append(jax.device_put(b, place))
        res, aux = fn(flow, *batch)
        _check(aux, hi - lo, flow, what)
        leaves = [None if r is None else np.asarray(r)[: hi - lo] for r in jax.tree.leaves(res)]
        outs.append(leaves)  # pyright: ignore[reportArgumentType]  # no None leaves here
    return [np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]


def _validate(flow: Flow, x: ArrayLike, condition: ArrayLike | None, name: str = "x"):
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != flow.data_dim:
        raise ValueError(f"{name} must have shape (n, {flow.data_dim}), got {x.shape}")
    if flow.cond_dim:
        if condition is None:
            raise ValueError("this flow is conditional: pass condition of shape (n, c)")
        condition = np.asarray(condition)
        if condition.shape != (x.shape[0], flow.cond_dim):
            raise ValueError(
                f"condition must have shape ({x.shape[0]}, {flow.cond_dim}), got {condition.shape}"
            )
    elif condition is not None:
        raise ValueError("this flow is unconditional: condition must be None")
    return x, condition


def log_prob(
    flow: Flow,
    x: Float[ArrayLike, "n d"],
    condition: Float[ArrayLike, "n c"] | None = None,
    *,
    batch_size: int = 8192,
    progress: bool | None = None,
    devices: list | None = None,
) -> Float[np.ndarray, " n"]:
    """Exact ln p(x[|condition]) in the data's units, by integrating the divergence.

    Example (``flow`` from `fit_flow`'s example, which runs this same call)::

        lp = log_prob(flow, v, condition=x)   # ln p(v|x), shape (n,)
    """
    x, condition = _validate(flow, x, condition)
    return _map_batches(
        _log_prob_batch, flow, [x, condition], len(x), batch_size, progress, "log_prob", devices
    )[0]


def grad_log_prob(
    flow: Flow,
    x: Float[ArrayLike, "n d"],
    condition: Float[ArrayLike, "n c"] | None = None,
    *,
    batch_size: int = 4096,
    progress: bool | None = None,
    devices: list | None = None,
) -> tuple[Float[np.ndarray, "n d"], Float[np.ndarray, "n c"] | None]:
    """∇ₓ ln p and ∇_c ln p (None for unconditional flows), by autodiff through the solve.

    Batches are split over ``devices`` (default all; on CPU set
    ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` to use two cores as two devices).
    """
    x, condition = _validate(flow, x, condition)
    res = _map_batches(
        _grad_batch, flow, [x, condition], len(x), batch_size, progress, "grad_log_prob", devices
    )
    return res[0], (res[1] if condition is not None else None)


def sample(
    key: PRNGKeyArray,
    flow: Flow,
    n: int,
    condition: Float[ArrayLike, "n c"] | None = None,
    *,
    batch_size: int = 8192,
    progress: bool | None = None,
    devices: list | None = None,
) -> Float[np.ndarray, "n d"]:
    """Draw n samples (one per condition row for conditional flows), in the data's units."""
    z0 = np.asarray(jax.random.normal(key, (n, flow.data_dim)))
    _validate(flow, z0, condition, name="samples")
    return _map_batches(
        _sample_batch, flow, [z0, condition], n, batch_size, progress, "sample", devices
    )[0]


def sample_within(
    key: PRNGKeyArray,
    flow: Flow,
    n: int,
    r_max: float | None = None,
    *,
    batch_size: int = 8192,
    progress: bool | None = None,
    devices: list | None = None,
    max_rounds: int = 50,
) -> Float[np.ndarray, "n d"]:
    """Draw n samples of an unconditional flow restricted to the ball |x| < r_max.

    Samples outside the ball are redrawn: round i draws ``max(n − kept, 1024)`` samples with
    ``jax.random.fold_in(key, i)`` and keeps those inside, until n are kept. With
    ``r_max=None`` nothing is dropped (one round).

    Args:
        key: JAX PRNG key; the result is a function of it.
        flow: an unconditional flow (e.g. a spatial density n(x), x in kpc).
        n: number of samples (≥ 1).
        r_max: radius of the ball, in the data's units; None: no restriction.
        batch_size, progress, devices: as in `sample`.
        max_rounds: give up after this many rounds.

    Raises:
        ValueError: a conditional flow, or n < 1.
        RuntimeError: the flow puts almost no mass inside the ball (``max_rounds`` reached).

    Example (a tiny spatial flow; real ones train for many epochs):
        >>> import jax, numpy as np
        >>> from dp_flows import FlowConfig, fit_flow, sample_within
        >>> x = np.random.default_rng(0).normal(size=(256, 3))
        >>> cfg = FlowConfig(width=8, depth=1, batch_size=64, n_epochs=2, ot=False)
        >>> flow = fit_flow(x, config=cfg, seed=0, progress=False)
        >>> s = sample_within(jax.random.key(0), flow, 100, r_max=1.0, progress=False)
        >>> s.shape, bool((np.linalg.norm(s, axis=1) < 1.0).all())
        ((100, 3), True)
    """
    if flow.cond_dim:
        raise ValueError("sample_within draws from an unconditional flow; this one is conditional")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out, have = [], 0
    for i in range(max_rounds):
        x = sample(
            jax.random.fold_in(key, i),
            flow,
            max(n - have, 1024),
            batch_size=batch_size,
            progress=progress,
            devices=devices,
        )
        if r_max is not None:
            x = x[np.linalg.norm(x, axis=1) < r_max]
        out.append(x)
        have += len(x)
        if have >= n:
            return np.concatenate(out)[:n]
    raise RuntimeError(
        f"the flow puts almost no mass inside |x| < r_max={r_max}: {have} of {n} samples "
        f"after {max_rounds} rounds"
    )


def sample_steps(
    key: PRNGKeyArray, flow: Flow, n: int, condition: ArrayLike | None = None
) -> Float[np.ndarray, " n"]:
    """Number of adaptive solver steps each of n samples takes (a straightness diagnostic)."""
    dt = np.dtype(flow.x_mean.dtype)
    z0 = np.asarray(jax.random.normal(key, (n, flow.data_dim)), dt)
    c = None if condition is None else jnp.asarray(condition, dt)
    _, aux = _sample_batch(flow, jnp.asarray(z0), c)
    return np.asarray(aux[2])
