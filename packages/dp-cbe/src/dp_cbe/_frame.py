"""Optional learned frame: a DF stationary in a rigidly moving frame (boost u₀, rotation Ω).

The data frame is taken to be inertial. The DF is assumed stationary not in it but in a frame
carried by the time-independent rigid velocity field u(x) = u₀ + Ω × x: the frame's points
move along the flow of u (a screw motion: rotation at Ω about a fixed axis plus a constant
drift along it; Ω = 0 gives a uniform boost u₀). Φ is carried along the same way.

Derivation. The flow of u moves positions with velocity u(x) and turns every velocity vector
at Ω (its phase-space lift), so its generator acting on a phase-space function g is
L g = u(x)·∇_x g + (Ω × v)·∇_v g. "f is stationary in the moving frame" means f is carried
along by the lift: ∂f/∂t = −L f. The data-frame (inertial) CBE gives
∂ ln f/∂t = ∇Φ·∇_v ln f − v·∇_x ln f, so the residual of stationarity in the moving frame is

    r = ∇Φ·∇_v ln f − v·∇_x ln f + L ln f
      = (∇Φ + Ω × v)·∇_v ln f − w·∇_x ln f,          w ≡ v − u(x) = v − u₀ − Ω × x.

Check against the moving frame's own equations (u₀ = 0): there x' = x and w' = w at t = 0, the
DF is g(x, w) = f(x, w + Ω × x), so ∇_w g = ∇_v f and ∇_x' ln g = ∇_x ln f − Ω × ∇_v ln f
(because ∂(Ω × x)_i/∂x_k = ε_ijk Ω_j, whose transpose applied to a gives a × Ω). The stationary
CBE there, with the Coriolis and centrifugal forces,

    (∇Φ + 2Ω × w + Ω × (Ω × x))·∇_w ln g − w·∇_x' ln g,

expands (w·(Ω × a) = −a·(Ω × w), and w + Ω × x = v) to the same r. With a boost alone
(Ω = 0) r = ∇Φ·∇_v ln f − (v − u₀)·∇_x ln f: the DF seen from the moving frame is
f'(x, w) = f(x, w + u₀), whose gradients are the data frame's. A rigid motion whose centre
moves uniformly while the frame rotates about that centre differs from the flow of u by a
uniform acceleration Ω × u₀, which Φ absorbs as a linear term (no change in ρ = ∇²Φ/4πG).

For the other variants ln f = ln f_obs − ln S (S is the observer's, fixed in the data frame)
and ln f = ln p(v|x) + ln n(x) (∇_v ln n = 0; n transforms like f): the same r with the
streaming velocity w everywhere v multiplies a spatial gradient.

A data frame that itself rotates at Ω_lab with respect to an inertial one (the data are then
stationary in a frame rotating at −Ω_lab relative to them) adds a centrifugal force that r,
which treats the data frame as inertial, cannot tell from gravity: the fitted Φ is the true one
plus ½|Ω_lab × x|², which raises ρ by 2Ω_lab²/4πG (a uniform offset, ≈ 4e-4 internal units at 5 km/s/kpc).

Internal units: u₀ in 100 km/s, Ω in 100 km/s/kpc.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._units import VELOCITY_UNIT

FRAMES: tuple[str, ...] = ("none", "boost", "rotation", "boost+rotation")


class Frame(eqx.Module):
    """Learned frame parameters (internal units); a part that is not fitted is None (zero)."""

    u0: Float[Array, 3] | None
    omega: Float[Array, 3] | None


def init_frame(kind: str) -> Frame | None:
    """Zero-initialised parameters for a `FitConfig.frame` value (None for ``none``)."""
    if kind not in FRAMES:
        raise ValueError(f"unknown frame {kind!r}; expected one of {FRAMES}")
    if kind == "none":
        return None
    zero = jnp.zeros(3, jnp.float32)
    return Frame(u0=zero if "boost" in kind else None,
                 omega=zero if "rotation" in kind else None)  # fmt: skip


def frame_vectors(frame: Frame | None) -> tuple[Array | None, Array | None]:
    """(u₀, Ω) in internal units, each None when not fitted."""
    if frame is None:
        return None, None
    return frame.u0, frame.omega


def frame_physical(frame: Frame | None, kind: str = "none") -> dict[str, Any]:
    """The fitted frame in physical units: ``kind``, ``u0`` (3,) km/s and ``omega`` (3,)
    km/s/kpc (zeros for a part that is not fitted)."""

    def physical(a: Array | None) -> np.ndarray:
        return np.zeros(3) if a is None else np.asarray(a, np.float64) * VELOCITY_UNIT

    u0, omega = frame_vectors(frame)
    return {"kind": kind, "u0": physical(u0), "omega": physical(omega)}
