"""Plummer sphere: sampler vs analytic distributions, closed forms vs each other and vs FD."""

import math

import numpy as np
import pytest
from dp_mock import PlummerSphere
from scipy import integrate, stats

P = PlummerSphere()
N_SAMPLE = 200_000


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    return P.sample(3, N_SAMPLE)


def test_shapes_and_support(sample):
    x, v = sample
    assert x.shape == (N_SAMPLE, 3) and v.shape == (N_SAMPLE, 3)
    assert x.dtype == np.float64 and v.dtype == np.float64
    r = np.linalg.norm(x, axis=1)
    assert r.max() < P.r_max
    # Every star is bound: |v| < v_esc.
    assert np.all(np.sum(v**2, axis=1) < -2 * P.potential(x))


def test_radius_ks(sample):
    x, _ = sample
    r = np.linalg.norm(x, axis=1)

    def cdf(r):
        return (r**3 / (r**2 + P.b**2) ** 1.5) / P.mass_fraction_max

    # A correct sampler fails a KS test at p < 1e-3 one time in a thousand.
    assert stats.kstest(r, cdf).pvalue > 1e-3


def test_q_ks_and_isotropy(sample):
    x, v = sample
    q = np.linalg.norm(v, axis=1) / np.sqrt(-2 * P.potential(x))

    def cdf(q):
        q = np.atleast_1d(q)
        # ∫_0^q s²(1−s²)^(7/2) ds / (7π/512) = regularised incomplete beta I_{q²}(3/2, 9/2).
        return stats.beta.cdf(q**2, 1.5, 4.5)

    assert stats.kstest(q, cdf).pvalue > 1e-3
    # Isotropy: cos of the velocity polar angle is uniform on [−1, 1].
    cos_t = v[:, 2] / np.linalg.norm(v, axis=1)
    assert stats.kstest(cos_t, stats.uniform(-1, 2).cdf).pvalue > 1e-3
    # Position and velocity directions are independent: <x̂·v̂> = 0 within 5σ (σ = 1/√(3N)).
    cos_xv = np.sum(x * v, axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(v, axis=1)
    assert abs(cos_xv.mean()) < 5 / math.sqrt(3 * N_SAMPLE)


def test_velocity_moments(sample):
    """<v²|x> = (1/3)... for f ∝ (−E)^(7/2): <q²> = B(5/2, 9/2)/B(3/2, 9/2) = 1/4, so
    <v²> = <v_esc²>/4 = <−Φ>/2, and each component has <v_i²> = <v²>/3, <v_i> = 0."""
    x, v = sample
    v2 = np.sum(v**2, axis=1)
    ratio = v2 / (-P.potential(x))
    # Mean of ratio is 1/2; its std is ~0.2, so the 5σ MC tolerance is 5 * 0.2 / √N ≈ 0.0022.
    assert abs(ratio.mean() - 0.5) < 5 * ratio.std() / math.sqrt(N_SAMPLE)
    sig = np.sqrt(v2.mean() / 3)
    for i in range(3):
        assert abs(v[:, i].mean()) < 5 * sig / math.sqrt(N_SAMPLE)
        assert abs(np.mean(v[:, i] ** 2) / (v2.mean() / 3) - 1) < 0.02  # ~5σ for N = 2e5


def test_virial_untruncated():
    """Untruncated Plummer: 2K + W = 0 with W = −(3π/32) GM²/b per unit mass squared...
    per tracer: <v²> = −<Φ>/2 and <x·∇Φ> = <v²> (virial theorem for a self-gravitating system)."""
    p = PlummerSphere(r_max=np.inf)
    x, v = p.sample(11, N_SAMPLE)
    v2 = np.sum(v**2, axis=1)
    x_grad = -np.sum(x * p.acceleration(x), axis=1)  # x·∇Φ
    # Virial ratio 2K / |W| with W = <x·∇Φ>·(-1)... for a steady system <v²> = <x·∇Φ>.
    ratio = v2.mean() / x_grad.mean()
    # Both means have ~1 % MC error at N = 2e5 (heavy Plummer tails); 3 % is ≥ 3σ.
    assert abs(ratio - 1) < 0.03
    # Known Plummer value: <x·∇Φ> = |W|/M = (3π/32) GM/b.
    assert abs(x_grad.mean() / (3 * math.pi / 32 * p.gm / p.b) - 1) < 0.03


def test_df_normalisation():
    """∫ f d³x d³v = 1 over r < r_max: radial quadrature of n, and of p(v|x) over v."""
    n_int, _ = integrate.quad(
        lambda r: 4 * math.pi * r**2 * P.number_density(np.array([[r, 0.0, 0.0]]))[0],
        0,
        P.r_max,
        epsabs=0,
        epsrel=1e-11,
    )
    assert abs(n_int - 1) < 1e-9  # quadrature of a smooth function: near machine precision
    x = np.array([[3.0, -2.0, 1.0]])
    v_esc = math.sqrt(-2 * P.potential(x)[0])

    def integrand(s):
        return 4 * math.pi * s**2 * math.exp(P.log_p_v_given_x(x, np.array([[s, 0, 0]]))[0])

    p_int, _ = integrate.quad(integrand, 0, v_esc, epsabs=0, epsrel=1e-11)
    assert abs(p_int - 1) < 1e-8
    v = np.array([[100.0, 200.0, -50.0]])
    assert np.isclose(
        P.log_df(x, v)[0],
        math.log(P.number_density(x)[0]) + P.log_p_v_given_x(x, v)[0],
        rtol=0,
        atol=1e-12,
    )
    # Outside r_max and for unbound stars the DF vanishes.
    assert P.number_density(np.array([[9.0, 0, 0]]))[0] == 0
    assert P.log_p_v_given_x(x, np.array([[2 * v_esc, 0, 0]]))[0] == -np.inf


def test_density_is_poisson_source():
    """ρ = ∇²Φ / (4πG), with the Laplacian by central differences (h = 1e-2 kpc: error ~h²)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-8, 8, size=(50, 3))
    h = 1e-2
    lap = -6 * P.potential(x)
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        lap += P.potential(x + e) + P.potential(x - e)
    lap /= h**2
    np.testing.assert_allclose(lap / (4 * math.pi * P.G), P.density(x), rtol=1e-5)


def _finite_diff(fun, x, v, wrt, h):
    grad = np.zeros_like(x)
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        if wrt == "x":
            grad[:, i] = (fun(x + e, v) - fun(x - e, v)) / (2 * h)
        else:
            grad[:, i] = (fun(x, v + e) - fun(x, v - e)) / (2 * h)
    return grad


def test_gradients_vs_finite_differences(sample):
    x, v = (a[:200] for a in sample)
    # Central differences: truncation ~h² f''' and round-off ~ε|f|/h; h = 1e-4 kpc and 1e-2 km/s
    # leave both below 1e-6 relative to the gradients' scale.
    cases = [
        (P.log_df, P.grad_log_f),
        (P.log_p_v_given_x, P.grad_log_p_v_given_x),
    ]
    for fun, grad in cases:
        d_dx, d_dv = grad(x, v)
        assert d_dx.shape == x.shape and d_dv.shape == v.shape
        fd_x = _finite_diff(fun, x, v, "x", 1e-4)
        fd_v = _finite_diff(fun, x, v, "v", 1e-2)
        np.testing.assert_allclose(d_dx, fd_x, rtol=1e-5, atol=1e-6 * np.abs(fd_x).max())
        np.testing.assert_allclose(d_dv, fd_v, rtol=1e-5, atol=1e-6 * np.abs(fd_v).max())
    # acceleration = −∇Φ
    fd_phi = _finite_diff(lambda x, v: P.potential(x), x, v, "x", 1e-3)
    np.testing.assert_allclose(P.acceleration(x), -fd_phi, rtol=1e-7)


def test_cbe_residual_zero(sample):
    """r = ∇Φ·∇_v ln f − v·∇_x ln f = 0 with ∇Φ = −acceleration, to round-off."""
    x, v = sample
    grad_phi = -P.acceleration(x)
    d_dx, d_dv = P.grad_log_f(x, v)
    r = np.sum(grad_phi * d_dv, axis=1) - np.sum(v * d_dx, axis=1)
    # Round-off bound: a few ε times the sum of the magnitudes of the six products summed.
    scale = np.sum(np.abs(grad_phi * d_dv), axis=1) + np.sum(np.abs(v * d_dx), axis=1)
    assert np.all(np.abs(r) <= 1e-14 * scale)
    # Conditional form: ∇Φ·∇_v ln p − v·(∇_x ln p + ∇ ln n), ∇ ln n = 5 a/ψ.
    px, pv = P.grad_log_p_v_given_x(x, v)
    grad_ln_n = 5 * P.acceleration(x) / (-P.potential(x))[:, None]
    r2 = np.sum(grad_phi * pv, axis=1) - np.sum(v * (px + grad_ln_n), axis=1)
    scale2 = scale + np.sum(np.abs(v * grad_ln_n), axis=1) * 2
    assert np.all(np.abs(r2) <= 1e-14 * scale2)


def test_seed_reproducible_and_bad_input():
    a = P.sample(5, 1000)
    b = P.sample(5, 1000)
    c = P.sample(6, 1000)
    assert all(np.array_equal(i, j) for i, j in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    # A prefix of a larger draw is the smaller draw (counter-based streams).
    big = P.sample(5, 2000)
    assert np.array_equal(big[0][:1000], a[0]) and np.array_equal(big[1][:1000], a[1])
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        P.potential(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="b must be positive"):
        PlummerSphere(b=-1.0)
    with pytest.raises(ValueError, match="unbound"):
        P.grad_log_f(np.zeros((1, 3)), np.array([[1e5, 0, 0]]))
