"""Dust: the random field's statistics, and extinction against analytic and converged values."""

import math

import numba
import numpy as np
import pytest
from dp_mock import DustField, gaussian_random_field


@pytest.fixture(scope="module")
def paper_dust() -> DustField:
    return DustField(gaussian_random_field(7, 128))


def _radial_power(field: np.ndarray, extent: float):
    n = field.shape[0]
    dx = 2 * extent / n
    pk = np.abs(np.fft.rfftn(field - field.mean())) ** 2
    kx = 2 * math.pi * np.fft.fftfreq(n, d=dx)
    kz = 2 * math.pi * np.fft.rfftfreq(n, d=dx)
    k = np.sqrt(kx[:, None, None] ** 2 + kx[None, :, None] ** 2 + kz[None, None, :] ** 2)
    return k, pk, math.pi / dx


def test_field_mean_variance_and_slope():
    field = gaussian_random_field(1, 64, extent=8.0, power_index=-3.0, mean=-0.5, std=1.0)
    assert field.shape == (64, 64, 64)
    # Rescaled to the exact sample moments: equal up to round-off.
    assert abs(field.mean() + 0.5) < 1e-12 and abs(field.std() - 1.0) < 1e-12
    k, pk, k_nyq = _radial_power(field, 8.0)
    # Nothing beyond the Nyquist sphere (relative to the mean power: round-off only).
    assert pk[k > k_nyq * 1.0001].max() < 1e-20 * pk[k > 0].mean()
    # Regress ln P of every mode on ln k: each mode's power is P(k) × (χ²₂ / 2), whose log has
    # a constant mean (−γ), so the slope is unbiased; with ~10⁵ modes its scatter is ~0.01.
    sel = (k > 2 * k[k > 0].min()) & (k < 0.9 * k_nyq)
    slope = np.polyfit(np.log(k[sel]), np.log(pk[sel]), 1)[0]
    assert abs(slope + 3.0) < 0.05
    # Gaussian one-point statistics: skewness ~ 0 (large-scale modes dominate: loose bound).
    assert abs(np.mean((field + 0.5) ** 3)) < 0.2
    # Same seed, same field; another seed, another field.
    assert np.array_equal(field, gaussian_random_field(1, 64))
    assert not np.array_equal(field, gaussian_random_field(2, 64))


def test_trilinear_reproduces_nodes_and_linear_fields():
    n, extent = 32, 8.0
    dx = 2 * extent / n
    nodes = -extent + dx * np.arange(n)
    z = nodes[None, None, :] * np.ones((n, n, n))
    rho = 2.0 + 0.2 * z
    dust = DustField(np.log(rho), extent=extent)
    rng = np.random.default_rng(0)
    pts = rng.uniform(-7.4, 7.4, size=(500, 3))
    # Interior points of a linear field: trilinear is exact (round-off of exp/log ~1e-15).
    np.testing.assert_allclose(dust.density(pts), 2.0 + 0.2 * pts[:, 2], rtol=1e-12)


def test_extinction_uniform_and_linear():
    n, extent = 32, 8.0
    dust = DustField(np.full((n, n, n), math.log(1.7)), extent=extent)
    rng = np.random.default_rng(1)
    u = rng.normal(size=(1000, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    x = u * rng.uniform(0, 7.4, size=(1000, 1))
    d = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(dust.extinction(x), 1.7 * d, rtol=1e-12)  # exact integration
    dx = 2 * extent / n
    z = (-extent + dx * np.arange(n))[None, None, :] * np.ones((n, n, n))
    lin = DustField(np.log(2.0 + 0.2 * z), extent=extent)
    # A = ∫₀^d (2 + 0.2 t u_z) dt = d (2 + 0.1 z).
    expected = d * (2.0 + 0.1 * x[:, 2])
    np.testing.assert_allclose(lin.extinction(x), expected, rtol=1e-12)
    # The midpoint marcher integrates linear functions exactly too, at any step.
    np.testing.assert_allclose(lin.extinction(x, step=0.3), expected, rtol=1e-12)
    assert dust.extinction(np.zeros((1, 3)))[0] == 0.0


def test_extinction_convergence(paper_dust):
    """The midpoint rule converges to the exact cell-wise integral at second order in the step;
    the exact value agrees with a converged reference (step = dx/64) to far below 0.01 mag."""
    rng = np.random.default_rng(2)
    u = rng.normal(size=(3000, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    x = u * rng.uniform(4, 8, size=(3000, 1))
    exact = paper_dust.extinction(x)
    assert np.median(exact) > 3  # the paper's dust: several magnitudes along a typical ray
    dx = paper_dust.dx
    errors = [np.abs(paper_dust.extinction(x, step=dx * s) - exact).max() for s in (1, 0.5, 0.25)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 1.5), orders  # second order, with noise from the kinks
    reference = paper_dust.extinction(x, step=dx / 64)
    assert np.abs(reference - exact).max() < 1e-3  # target is 0.01 mag


def test_extinction_budget_early_stop(paper_dust):
    rng = np.random.default_rng(3)
    x = rng.uniform(-5, 5, size=(5000, 3))
    full = paper_dust.extinction(x)
    budget = rng.uniform(0, 10, size=5000)
    part = paper_dust.extinction(x, budget=budget)
    below = full < budget
    # Rays that stay under budget are integrated completely; the others report >= budget.
    np.testing.assert_array_equal(part[below], full[below])
    assert np.all(part[~below] >= budget[~below])
    assert np.all(part[~below] <= full[~below] + 1e-12)
    with pytest.raises(ValueError, match="budget must have shape"):
        paper_dust.extinction(x, budget=budget[:10])


def test_thread_count_independent(paper_dust):
    rng = np.random.default_rng(4)
    x = rng.uniform(-8, 8, size=(20000, 3))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = paper_dust.extinction(x)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = paper_dust.extinction(x)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, many)


def test_bad_grid():
    with pytest.raises(ValueError, match="cubic"):
        DustField(np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        DustField(np.full((4, 4, 4), np.nan))
    with pytest.raises(ValueError, match="even integer"):
        gaussian_random_field(0, 7)


def test_points_outside_box(paper_dust):
    with pytest.raises(ValueError, match="1 points lie outside the dust box"):
        paper_dust.extinction(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 8.5]]))
    # The box boundary itself is inside (the padded grid covers it without wrapping).
    edge = paper_dust.extinction(np.array([[8.0, 8.0, 8.0], [-8.0, 0.0, 0.0]]))
    ref = paper_dust.extinction(
        np.array([[8.0, 8.0, 8.0], [-8.0, 0.0, 0.0]]), step=paper_dust.dx / 64
    )
    assert np.all(np.abs(edge - ref) < 1e-3)  # midpoint at dx/64: error ~1e-4 mag
