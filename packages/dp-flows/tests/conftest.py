"""Shared fixtures: small analytic targets and flows trained on them once per session."""

from __future__ import annotations

import dp_flows
import numpy as np
import pytest

# Conditional Gaussian: v | x ~ N(A x + b, diag(s(x)²)), s(x) = s0 exp(k·x) (mean AND scale
# depend on x). Positions x ~ N(0, 4 I) in 3-D (kpc-like), velocities O(10) (km/s-like).
A = np.array([[1.0, 0.5, 0.0], [0.0, -1.0, 0.3], [0.2, 0.0, 0.5]])
B = np.array([3.0, -2.0, 1.0])
S0, K = 5.0, np.array([0.08, -0.05, 0.0])


def cond_gauss_sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = 2.0 * rng.standard_normal((n, 3))
    v = x @ A.T + B + cond_scale(x)[:, None] * rng.standard_normal((n, 3))
    return x, v


def cond_scale(x: np.ndarray) -> np.ndarray:
    return S0 * np.exp(x @ K)


def cond_gauss_logp(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    s = cond_scale(x)
    r = (v - x @ A.T - B) / s[:, None]
    return -0.5 * np.sum(r**2, axis=1) - 1.5 * np.log(2 * np.pi) - 3 * np.log(s)


def cond_gauss_grads(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(∇_v ln p, ∇_x ln p) of the conditional Gaussian."""
    s = cond_scale(x)[:, None]
    r = v - x @ A.T - B
    d_dv = -r / s**2
    # ln p = −|r|²/(2s²) − 3 ln s;  ∂/∂x: (Aᵀ r)/s² + (|r|²/s² − 3) k
    d_dx = (r / s**2) @ A + (np.sum(r**2, axis=1, keepdims=True) / s**2 - 3.0) * K
    return d_dv, d_dx


SMALL = dict(
    width=64,
    depth=2,
    time_embedding_dim=16,
    batch_size=512,
    learning_rate=3e-3,
    warmup_steps=20,
    checkpoint_every=1000,
)


@pytest.fixture(scope="session")
def cond_flow() -> dp_flows.Flow:
    rng = np.random.default_rng(1)
    x, v = cond_gauss_sample(rng, 16384)
    config = dp_flows.FlowConfig(n_epochs=40, **SMALL)
    return dp_flows.fit_flow(v, condition=x, config=config, seed=0, progress=False)


# Unconditional correlated Gaussian (the spatial flow's test target).
MU = np.array([1.0, -2.0, 0.5])
L = np.array([[2.0, 0.0, 0.0], [0.8, 1.0, 0.0], [-0.5, 0.3, 1.5]])
COV = L @ L.T


def gauss_logp(x: np.ndarray) -> np.ndarray:
    r = np.linalg.solve(COV, (x - MU).T).T
    _, logdet = np.linalg.slogdet(COV)
    return -0.5 * np.sum((x - MU) * r, axis=1) - 1.5 * np.log(2 * np.pi) - 0.5 * logdet


def gauss_grad(x: np.ndarray) -> np.ndarray:
    return -np.linalg.solve(COV, (x - MU).T).T


@pytest.fixture(scope="session")
def spatial_flow() -> dp_flows.Flow:
    rng = np.random.default_rng(2)
    x = MU + rng.standard_normal((16384, 3)) @ L.T
    config = dp_flows.FlowConfig(n_epochs=30, **SMALL)  # OT on (unconditional default)
    return dp_flows.fit_flow(x, config=config, seed=0, progress=False)
