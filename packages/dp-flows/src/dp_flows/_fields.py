"""Vector fields u_θ(t, z[, c]) of the flows: a SiLU ResNet with a sinusoidal time embedding.

Every function here broadcasts over leading axes, so the same code is the per-sample
``__call__`` (the adaptive solver's, under ``vmap``) and the batched ``batched`` path used in
training, where a batch goes through the network as matrix-matrix products.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from equinox import AbstractVar
from jaxtyping import Array, Float, PRNGKeyArray


def time_embedding(t: Float[Array, "*batch"], dim: int) -> Float[Array, "*batch {dim}"]:
    """Sinusoidal embedding of t ∈ [0, 1]: sin and cos at ``dim/2`` frequencies in [1, 1024].

    The frequencies are spaced geometrically between 1 and 1024 (angular, per unit of t).
    """
    freqs = jnp.geomspace(1.0, 1024.0, dim // 2, dtype=t.dtype)
    arg = t[..., None] * freqs
    return jnp.concatenate([jnp.sin(arg), jnp.cos(arg)], axis=-1)


def spherical_harmonic_features(x: Float[Array, "*batch 3"], lmax: int) -> Float[Array, "*batch k"]:
    """Real spherical harmonics Y_lm(x/|x|) for 1 ≤ l ≤ lmax, k = (lmax+1)² − 1 features.

    Written in Cartesian form (Legendre polynomial in ẑ times Re/Im (x̂ + iŷ)^m), so it is
    smooth everywhere except at the origin, where a tiny softening keeps it finite.
    """
    r = jnp.sqrt(jnp.sum(x * x, axis=-1) + 1e-12)
    nx, ny, nz = x[..., 0] / r, x[..., 1] / r, x[..., 2] / r
    # (x̂ + iŷ)^m = sin^m θ e^{imφ}
    re = [jnp.ones_like(nx)]
    im = [jnp.zeros_like(nx)]
    for _ in range(lmax):
        re.append(re[-1] * nx - im[-1] * ny)
        im.append(re[-2] * ny + im[-1] * nx)
    feats: dict[tuple[int, int], list[Array]] = {}
    for m in range(lmax + 1):
        # Q_l^m(z): P_l^m(cos θ) / sin^m θ, by the standard upward recursion in l.
        q_mm = (-1.0) ** m * math.prod(range(1, 2 * m, 2)) * jnp.ones_like(nz)
        q = {m: q_mm, m + 1: (2 * m + 1) * nz * q_mm}
        for ell in range(m + 2, lmax + 1):
            q[ell] = ((2 * ell - 1) * nz * q[ell - 1] - (ell + m - 1) * q[ell - 2]) / (ell - m)
        for ell in range(max(m, 1), lmax + 1):
            norm = math.sqrt(
                (2 * ell + 1) / (4 * math.pi) * math.factorial(ell - m) / math.factorial(ell + m)
            )
            if m == 0:
                feats[ell, m] = [norm * q[ell]]
            else:
                c = math.sqrt(2.0) * norm * q[ell]
                feats[ell, m] = [c * re[m], c * im[m]]
    # Order by degree: the 2l+1 harmonics of degree l are contiguous.
    return jnp.stack([f for key in sorted(feats) for f in feats[key]], axis=-1)


def _linear(layer: eqx.nn.Linear, h: Array) -> Array:
    # h (..., in) @ W.T (in, out): a matvec for one sample, a matmul for a batch.
    assert layer.bias is not None  # every Linear here has use_bias=True
    return h @ layer.weight.T + layer.bias


class AbstractVectorField(eqx.Module):
    """A time-dependent vector field u(t, z[, c]) on R^d, optionally conditioned on c ∈ R^c.

    Subclasses implement ``__call__`` on ONE sample. ``batched`` (a batch at once) and
    ``velocity_and_divergence`` (u and tr ∂u/∂z for a batch) have generic implementations —
    ``vmap`` and d forward-mode tangents of one linearisation — that a subclass overrides when
    it has something faster. Every solver in dp-flows calls only these three methods.
    """

    data_dim: AbstractVar[int]
    cond_dim: AbstractVar[int]

    @abc.abstractmethod
    def __call__(
        self, t: Float[Array, ""], z: Float[Array, " d"], c: Float[Array, " c"] | None = None
    ) -> Float[Array, " d"]:
        """Velocity at time t of one sample z, condition c (None for unconditional fields)."""

    def batched(
        self, t: Float[Array, " n"], z: Float[Array, "n d"], c: Float[Array, "n c"] | None = None
    ) -> Float[Array, "n d"]:
        """The field on a batch (default: ``vmap`` of ``__call__``)."""
        if c is None:
            return jax.vmap(lambda ti, zi: self(ti, zi))(t, z)
        return jax.vmap(self)(t, z, c)

    def velocity_and_divergence(
        self, t: Float[Array, " n"], z: Float[Array, "n d"], c: Float[Array, "n c"] | None = None
    ) -> tuple[Float[Array, "n d"], Float[Array, " n"]]:
        """u(t, z, c) and its exact divergence tr ∂u/∂z for a batch.

        Default: one linearisation of ``batched`` pushed along the d basis vectors (samples
        are independent, so the batched Jacobian-vector products give every sample's columns).
        """
        u, jvp = jax.linearize(lambda q: self.batched(t, q, c), z)
        d = z.shape[-1]
        basis = jnp.broadcast_to(jnp.eye(d, dtype=z.dtype)[:, None, :], (d, *z.shape))
        columns = jax.vmap(jvp)(basis)  # (d, n, d): J e_i for every sample
        return u, jnp.einsum("ini->n", columns)


class ResNetField(AbstractVectorField):
    """ResNet vector field u_θ(t, z, c) with SiLU residual blocks ``h + L₂(SiLU(L₁(h)))``.

    Input: [z, time embedding, c, optional spherical harmonics of the position]; the position
    is c[:3] for conditional fields and z for unconditional 3-D ones.
    """

    layer_in: eqx.nn.Linear
    blocks: tuple[tuple[eqx.nn.Linear, eqx.nn.Linear], ...]
    layer_out: eqx.nn.Linear
    data_dim: int = eqx.field(static=True)
    cond_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    time_embedding_dim: int = eqx.field(static=True)
    sh_lmax: int = eqx.field(static=True)

    def __init__(
        self,
        data_dim: int,
        cond_dim: int = 0,
        *,
        width: int = 128,
        depth: int = 4,
        time_embedding_dim: int = 32,
        sh_lmax: int = 0,
        dtype: str = "float32",
        key: PRNGKeyArray,
    ) -> None:
        if sh_lmax > 0 and (cond_dim if cond_dim else data_dim) < 3:
            raise ValueError("spherical-harmonic features need a 3-D position (data or condition)")
        self.data_dim, self.cond_dim = int(data_dim), int(cond_dim)
        self.width, self.depth = int(width), int(depth)
        self.time_embedding_dim, self.sh_lmax = int(time_embedding_dim), int(sh_lmax)
        n_in = data_dim + time_embedding_dim + cond_dim + ((sh_lmax + 1) ** 2 - 1)
        dt = jnp.dtype(dtype)
        keys = jax.random.split(key, 2 * depth + 2)
        self.layer_in = eqx.nn.Linear(n_in, width, key=keys[0], dtype=dt)
        self.blocks = tuple(
            (
                eqx.nn.Linear(width, width, key=keys[1 + 2 * i], dtype=dt),
                eqx.nn.Linear(width, width, key=keys[2 + 2 * i], dtype=dt),
            )
            for i in range(depth)
        )
        self.layer_out = eqx.nn.Linear(width, data_dim, key=keys[-1], dtype=dt)

    def _inputs(self, t: Array, z: Array, c: Array | None) -> Array:
        """The first layer's input: z, the time embedding, the condition, harmonic features."""
        dt = self.layer_in.weight.dtype
        t, z = jnp.asarray(t, dt), jnp.asarray(z, dt)
        parts = [z, time_embedding(jnp.broadcast_to(t, z.shape[:-1]), self.time_embedding_dim)]
        if self.cond_dim:
            if c is None:
                raise ValueError("this vector field is conditional: pass a condition c")
            c = jnp.asarray(c, dt)
            parts.append(c)
        if self.sh_lmax:
            pos = c[..., :3] if c is not None and self.cond_dim else z[..., :3]
            parts.append(spherical_harmonic_features(pos, self.sh_lmax))
        return jnp.concatenate(parts, axis=-1)

    def _apply(self, t: Array, z: Array, c: Array | None) -> Array:
        h = _linear(self.layer_in, self._inputs(t, z, c))
        for l1, l2 in self.blocks:
            h = h + _linear(l2, jax.nn.silu(_linear(l1, h)))
        return _linear(self.layer_out, jax.nn.silu(h))

    def __call__(
        self, t: Float[Array, ""], z: Float[Array, " d"], c: Float[Array, " c"] | None = None
    ) -> Float[Array, " d"]:
        """Velocity at time t for one sample z (standardised units), condition c."""
        return self._apply(t, z, c)

    def batched(
        self, t: Float[Array, " n"], z: Float[Array, "n d"], c: Float[Array, "n c"] | None = None
    ) -> Float[Array, "n d"]:
        """The same field on a batch, as matrix-matrix products (the training path)."""
        return self._apply(t, z, c)

    def velocity_and_divergence(
        self, t: Float[Array, " n"], z: Float[Array, "n d"], c: Float[Array, "n c"] | None = None
    ) -> tuple[Float[Array, "n d"], Float[Array, " n"]]:
        """u(t, z, c) and tr ∂u/∂z for a batch, the Jacobian carried forward explicitly.

        Every layer maps the (n, d, width) Jacobian with one batched matmul; reverse-mode
        differentiation of this is ~2.5x cheaper than of d JVPs of a linearisation (measured
        in ``benchmarks/results/flows.md``). Unconditional fields with spherical-harmonic
        features of z (whose first-layer Jacobian is not constant) use the generic JVP path.
        """
        if self.sh_lmax and not self.cond_dim:
            return super().velocity_and_divergence(t, z, c)
        w_in = self.layer_in.weight
        h = _linear(self.layer_in, self._inputs(t, z, c))
        # jac[..., i, :] = ∂h/∂z_i; the first layer's is the same for every sample.
        jac = jnp.broadcast_to(
            w_in[:, : self.data_dim].T, (*z.shape[:-1], self.data_dim, self.width)
        )
        for l1, l2 in self.blocks:
            a = _linear(l1, h)
            sig = jax.nn.sigmoid(a)
            h = h + _linear(l2, a * sig)
            dsilu = sig * (1.0 + a * (1.0 - sig))
            jac = jac + ((jac @ l1.weight.T) * dsilu[..., None, :]) @ l2.weight.T
        sig = jax.nn.sigmoid(h)
        u = _linear(self.layer_out, h * sig)
        dsilu = sig * (1.0 + h * (1.0 - sig))
        jac_out = (jac * dsilu[..., None, :]) @ self.layer_out.weight.T  # (..., d_in, d_out)
        return u, jnp.trace(jac_out, axis1=-2, axis2=-1)

    def hyperparameters(self) -> dict[str, int]:
        """Everything needed to rebuild this module's skeleton."""
        return {
            "data_dim": self.data_dim,
            "cond_dim": self.cond_dim,
            "width": self.width,
            "depth": self.depth,
            "time_embedding_dim": self.time_embedding_dim,
            "sh_lmax": self.sh_lmax,
        }
