"""CBE residuals and losses for the three variants (docs/design.md §4), in internal units.

r ≡ ∂ln f/∂t = ∇Φ·∇_v ln f − v·∇_x ln f          (vanilla; gradients of ln f)
r = ∇Φ·∇_v ln f_obs − v·∇_x ln f_obs + v·∇ln S      (selection; gradients of ln f_obs)
r = ∇Φ·∇_v ln p − v·(∇_x ln p + ∇ln n)              (conditional; gradients of ln p(v|x))

With a learned frame (`FitConfig.frame`; see `_frame`) ∇Φ becomes ∇Φ + Ω × v and every v that
multiplies a spatial gradient becomes w = v − u₀ − Ω × x.

L = α⁻¹ asinh(α|r|/s) + λ β⁻¹ asinh(β max(−∇²Φ, 0)) [+ λ_S (ln S)²] [+ λ_nobs (ln n − ln n_obs)²],
averaged over samples (or ln of that average), plus l2 · mean squared weights per network;
``residual_loss = "l2"`` makes the first term ½ (r/s)² (`residual_penalty`).
s is a per-sample residual scale from the data alone (`residual_scales`; 1 when unweighted).

Conditional, with groups of K ≥ 4 velocities per position (`profiled_terms`): ∇ln n is not a
network's gradient but, at each position, the least-squares solution of its K residuals; Φ is
trained on what is left, and the ln n network (for `PotentialSolution.ln_n`) beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar

from ._fields import ScalarField, grad_and_laplacian, weight_l2
from ._frame import Frame, frame_vectors

# The one table of the methods (docs/design.md §4) and the log-density whose gradients each
# takes (the ``density`` of a gradients.h5): every other list of methods or densities — in
# dp-cbe, in the pipeline, on its command lines — is read from here.
DENSITY_OF_METHOD: Mapping[str, str] = MappingProxyType(
    {"vanilla": "f", "selection": "f_obs", "conditional": "p_v_given_x"}
)
METHODS: tuple[str, ...] = tuple(DENSITY_OF_METHOD)


class Batch(NamedTuple):
    """A minibatch in internal units: x (b,3) kpc, v (b,3) 100 km/s, gradients, ln n_obs (b,),
    the residual scales s (b,) (None: 1, the unweighted residual) and the samples' weights in
    the batch mean (b,) (None: equal)."""

    x: Float[Array, "b 3"]
    v: Float[Array, "b 3"]
    dlnf_dx: Float[Array, "b 3"]
    dlnf_dv: Float[Array, "b 3"]
    ln_n_obs: Float[Array, " b"]
    scale: Float[Array, " b"] | None = None
    weight: Float[Array, " b"] | None = None


class LossSettings(NamedTuple):
    """Loss hyperparameters (hashable, so usable as a static jit argument)."""

    alpha: float = 1.0
    beta: float = 1.0
    lam: float = 1.0
    lam_s: float = 0.0
    lam_nobs: float = 0.0
    l2: float = 0.0
    log_loss: bool = False
    residual_loss: str = "asinh"


def residual_penalty(r: Array, scale: Array | float, settings: LossSettings) -> Array:
    """The CBE term of one residual: α⁻¹ asinh(α|r|/s) (``asinh``: |r|/s for small residuals,
    logarithmic for outliers) or ½ (r/s)² (``l2``)."""
    if settings.residual_loss == "l2":
        return 0.5 * (r / scale) ** 2
    return jnp.arcsinh(settings.alpha * jnp.abs(r) / scale) / settings.alpha


class CBEModel(eqx.Module):
    """The trainable fields of one variant: Φ and (ln S | ln n | nothing), and the optional
    frame parameters (u₀, Ω) in which the DF is stationary (None: the data frame)."""

    phi: ScalarField
    aux: ScalarField | None
    method: str = eqx.field(static=True)
    frame: Frame | None = None


def residual(
    dphi: Float[Array, 3],
    v: Float[Array, 3],
    dlnf_dx: Float[Array, 3],
    dlnf_dv: Float[Array, 3],
    daux: Float[Array, 3] | None,
    method: str,
    *,
    x: Float[Array, 3] | None = None,
    u0: Float[Array, 3] | None = None,
    omega: Float[Array, 3] | None = None,
) -> Scalar:
    """CBE residual r for one sample (internal units; see module docstring for the signs).

    With a frame boost ``u0`` and/or rotation ``omega`` (internal units; ``omega`` needs the
    position ``x``) it is the residual of stationarity in that moving frame (`_frame`)."""
    w = v if u0 is None else v - u0
    acc = dphi
    if omega is not None:
        assert x is not None
        w = w - jnp.cross(omega, x)
        acc = acc + jnp.cross(omega, v)
    r = jnp.dot(acc, dlnf_dv) - jnp.dot(w, dlnf_dx)
    if method == "selection":
        assert daux is not None
        r = r + jnp.dot(w, daux)
    elif method == "conditional":
        assert daux is not None
        r = r - jnp.dot(w, daux)
    return r


def sample_terms(
    phi: Callable[[Float[Array, 3]], Scalar],
    aux: Callable[[Float[Array, 3]], Scalar] | None,
    method: str,
    settings: LossSettings,
    x: Float[Array, 3],
    v: Float[Array, 3],
    dlnf_dx: Float[Array, 3],
    dlnf_dv: Float[Array, 3],
    ln_n_obs: Scalar,
    scale: Scalar | float = 1.0,
    frame: Frame | None = None,
    with_density: bool = True,
) -> tuple[Scalar, Scalar, Scalar]:
    """Per-sample (CBE term, negative-density term, auxiliary-field term); the residual is
    divided by ``scale`` (see `residual_scales`); ``frame``: the moving frame (None: data's).
    ``with_density=False`` skips ∇²Φ (most of a sample's cost) and returns 0 for the
    negative-density term (`negative_density_terms` gives it at other points)."""
    if with_density:
        _, dphi, lap = grad_and_laplacian(phi, x)
    else:
        dphi = jax.grad(phi)(x)
        lap = jnp.zeros((), x.dtype)
    daux = None
    extra = jnp.zeros((), x.dtype)
    if method != "vanilla":
        if aux is None:
            raise ValueError(f"method {method!r} needs an auxiliary field (ln S or ln n)")
        a, daux = jax.value_and_grad(aux)(x)
        if method == "selection" and settings.lam_s != 0.0:
            extra = settings.lam_s * a**2
        if method == "conditional" and settings.lam_nobs != 0.0:
            extra = settings.lam_nobs * (a - ln_n_obs) ** 2
    u0, omega = frame_vectors(frame)
    r = residual(dphi, v, dlnf_dx, dlnf_dv, daux, method, x=x, u0=u0, omega=omega)
    cbe = residual_penalty(r, scale, settings)
    return cbe, _negative_density(lap, settings), extra


def _negative_density(lap: Array, settings: LossSettings) -> Array:
    """The penalty λ asinh(β max(−∇²Φ, 0))/β on a negative density (elementwise)."""
    return settings.lam * jnp.arcsinh(settings.beta * jnp.maximum(-lap, 0.0)) / settings.beta


def negative_density_terms(
    phi: Callable[[Float[Array, 3]], Scalar], x: Float[Array, "m 3"], settings: LossSettings
) -> Float[Array, " m"]:
    """The negative-density penalty at each of the points ``x`` (their exact ∇²Φ)."""
    lap = jax.vmap(lambda q: grad_and_laplacian(phi, q)[2])(x)
    return _negative_density(lap, settings)


def profiled_terms(
    phi: Callable[[Float[Array, 3]], Scalar],
    aux: Callable[[Float[Array, 3]], Scalar] | None,
    settings: LossSettings,
    batch: Batch,
    group: int,
    frame: Frame | None = None,
) -> Float[Array, "b 3"]:
    """Per-sample terms of the conditional variant with ∇ln n eliminated at each position.

    The batch holds groups of ``group`` consecutive samples at one position x (velocities
    v₁…v_K). The residual r_k = t_k − w_k·a, with t_k = ∇Φ·∇_v ln p_k − w_k·∇_x ln p_k and
    a = ∇ln n(x), is linear in a, so for the current Φ the a that minimises Σ_k (r_k/s_k)² is
    found in closed form (a 3×3 solve per position) and Φ is trained on the residuals left
    over. Φ then never waits for, nor absorbs the errors of, a network for ln n — which must
    follow the observed density's steep fall at a magnitude limit. The ln n network (``aux``,
    when given) is trained on the ordinary residual with Φ held fixed (its gradient stopped),
    as the third term, so that `PotentialSolution.ln_n` still exists; it never moves Φ (nor
    the frame).

    Returns:
        (b, 3): the CBE term on the profiled residual, the negative-density term (the
        position's, on each of its rows) and the ln n network's own residual term (+ λ_nobs).
    """
    b = batch.x.shape[0]
    n_pos = b // group
    x_pos = batch.x.reshape(n_pos, group, 3)[:, 0]
    _, dphi, lap = jax.vmap(lambda q: grad_and_laplacian(phi, q))(x_pos)
    u0, omega = frame_vectors(frame)
    rows = jnp.repeat(dphi, group, axis=0)

    def free(dp: Array, x: Array, v: Array, dx: Array, dv: Array) -> tuple[Array, Array]:
        """The residual without the ∇ln n term, and the velocity w that multiplies it."""
        t = residual(dp, v, dx, dv, None, "vanilla", x=x, u0=u0, omega=omega)
        w = v if u0 is None else v - u0
        if omega is not None:
            w = w - jnp.cross(omega, x)
        return t, w

    t, w = jax.vmap(free)(rows, batch.x, batch.v, batch.dlnf_dx, batch.dlnf_dv)
    scale = jnp.ones((b,), t.dtype) if batch.scale is None else batch.scale
    wt = 1.0 / scale**2  # least-squares weights of the residuals r/s
    tg, wg, sg = t.reshape(n_pos, group), w.reshape(n_pos, group, 3), wt.reshape(n_pos, group)
    gram = jnp.einsum("pki,pk,pkj->pij", wg, sg, wg)
    # A relative ridge keeps the 3×3 solve finite when a group's velocities are (nearly)
    # coplanar; 1e-6 of the mean eigenvalue moves a well-posed a by ~1e-6.
    ridge = 1e-6 * jnp.trace(gram, axis1=1, axis2=2)[:, None, None] / 3.0 + 1e-30
    rhs = jnp.einsum("pki,pk,pk->pi", wg, sg, tg)
    a = jnp.linalg.solve(gram + ridge * jnp.eye(3), rhs[..., None])[..., 0]
    r = (tg - jnp.einsum("pki,pi->pk", wg, a)).reshape(b)
    cbe = residual_penalty(r, scale, settings)
    neg = jnp.repeat(_negative_density(lap, settings), group)
    extra = jnp.zeros_like(cbe)
    if aux is not None:  # the ordinary residual with everything but ln n held fixed
        ln_n, dln_n = jax.vmap(jax.value_and_grad(aux))(batch.x)
        r_aux = jax.lax.stop_gradient(t) - jnp.sum(jax.lax.stop_gradient(w) * dln_n, axis=1)
        extra = residual_penalty(r_aux, scale, settings)
        if settings.lam_nobs != 0.0:
            extra = extra + settings.lam_nobs * (ln_n - batch.ln_n_obs) ** 2
    return jnp.stack([cbe, neg, extra], axis=1)


def data_loss(
    phi: Callable[[Float[Array, 3]], Scalar],
    aux: Callable[[Float[Array, 3]], Scalar] | None,
    method: str,
    settings: LossSettings,
    batch: Batch,
    frame: Frame | None = None,
    group: int = 1,
    density_every: int = 1,
) -> tuple[Scalar, Float[Array, 3]]:
    """⟨L⟩ over a batch (no weight penalty) and the means of its three terms.

    Works with any callables for Φ (internal potential) and the auxiliary field, so the
    analytic truth can be plugged in: the loss of the truth is 0. ``frame``: the frame in
    which the DF is stationary (`dp_cbe._frame.Frame`, internal units; None: the data frame).
    ``group`` > 1 (conditional only): the batch holds groups of that many velocities per
    position and ∇ln n is eliminated per position (`profiled_terms`). ``density_every`` = k
    > 1 (ungrouped batches): the negative-density term, whose ∇²Φ is ~3/4 of a sample's
    cost, is averaged over every k-th sample of the batch only (an unbiased estimate of the
    same mean); grouped batches already evaluate it once per position.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if density_every < 1:
        raise ValueError(f"density_every must be >= 1, got {density_every}")
    subsample = group == 1 and density_every > 1

    def one(x: Array, v: Array, dx: Array, dv: Array, nobs: Array, s: Array) -> Array:
        return jnp.stack(
            sample_terms(phi, aux, method, settings, x, v, dx, dv, nobs, s, frame, not subsample)
        )

    def mean(t: Array, w: Array | None) -> Array:
        if w is None:
            return jnp.mean(t, axis=0)
        return jnp.sum(t * w.reshape(w.shape + (1,) * (t.ndim - 1)), axis=0) / jnp.sum(w)

    scale = jnp.ones_like(batch.ln_n_obs) if batch.scale is None else batch.scale
    if group > 1:
        if method != "conditional":
            raise ValueError(f"grouped samples (group={group}) are for 'conditional' only")
        terms = profiled_terms(phi, aux, settings, batch, group, frame)
    else:
        terms = jax.vmap(one)(batch.x, batch.v, batch.dlnf_dx, batch.dlnf_dv, batch.ln_n_obs, scale)
    parts = mean(terms, batch.weight)
    if subsample:
        k = density_every
        neg = negative_density_terms(phi, batch.x[::k], settings)
        parts = parts.at[1].set(mean(neg, None if batch.weight is None else batch.weight[::k]))
    return jnp.sum(parts), parts


def model_loss(
    model: CBEModel, settings: LossSettings, batch: Batch, group: int = 1, density_every: int = 1
) -> tuple[Scalar, Array]:
    """Training objective: ⟨L⟩ (or ln⟨L⟩) + l2 · mean squared weights of each network
    (``density_every``: see `data_loss`).

    Returns the objective and aux = [⟨L⟩, ⟨cbe⟩, ⟨neg⟩, ⟨extra⟩].
    """
    mean_l, parts = data_loss(
        model.phi, model.aux, model.method, settings, batch, model.frame, group, density_every
    )
    obj = jnp.log(mean_l) if settings.log_loss else mean_l
    if settings.l2 != 0.0:
        obj = obj + settings.l2 * weight_l2(model.phi)
        if model.aux is not None:
            obj = obj + settings.l2 * weight_l2(model.aux)
    return obj, jnp.concatenate([mean_l[None], parts])
