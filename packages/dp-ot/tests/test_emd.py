"""emd / emd2 against POT's ot.emd / ot.emd2 (the oracle)."""

from __future__ import annotations

import dp_ot
import numpy as np
import ot
import pytest


def _problems(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for t in range(count):
        n, m = (int(v) for v in rng.integers(1, 40, size=2))
        a, b = rng.random(n), rng.random(m)
        a[rng.random(n) < 0.15] = 0.0  # zero weights
        a[0] += 0.01
        b[0] += 0.01
        a, b = a / a.sum(), b / b.sum()
        M = rng.random((n, m)) * 10 if t % 2 else rng.integers(0, 4, (n, m)).astype(float)
        yield a, b, M


def _check_duals(a, b, M, log) -> None:
    u, v = log["u"], log["v"]
    # feasible duals whose objective equals the cost certify optimality (strong duality)
    assert np.all(u[:, None] + v[None, :] <= M + 1e-9)
    assert abs(a @ u + b @ v - log["cost"]) <= 1e-9 * (1 + abs(log["cost"]))


def test_emd_matches_pot() -> None:
    for a, b, M in _problems(0, 150):
        G, log = dp_ot.emd(a, b, M, log=True)
        G_ref, log_ref = ot.emd(a, b, M, log=True)
        assert set(log) >= {"cost", "u", "v", "warning", "result_code"}
        assert log["result_code"] == log_ref["result_code"] == 1 and log["warning"] is None
        # marginals: flows are sums/differences of the inputs, exact up to a few ulps
        assert np.allclose(G.sum(1), a, rtol=0, atol=1e-15)
        assert np.allclose(G.sum(0), b, rtol=0, atol=1e-15)
        assert G.min() >= 0
        cost = float((G * M).sum())
        ref = float((G_ref * M).sum())
        assert abs(cost - ref) <= 1e-9 * abs(ref) + 1e-15  # both exact: equal optima
        assert abs(log["cost"] - log_ref["cost"]) <= 1e-9 * abs(ref) + 1e-15
        _check_duals(a, b, M, log)
        # centred duals: balance the weighted sums exactly as POT's center_ot_dual
        assert abs(b @ log["v"] - a @ log["u"]) <= 1e-9 * (1 + abs(ref))


def test_emd2_matches_pot_and_uniform_fast_path() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 17, 64):
        x, y = rng.normal(size=(2, n, 3))
        M = ((x[:, None] - y[None]) ** 2).sum(-1)
        ref = ot.emd2([], [], M)
        cost, log = dp_ot.emd2([], [], M, log=True, return_matrix=True)
        assert abs(cost - ref) <= 1e-12 * ref + 1e-15  # permutation plan, same optimum
        assert np.allclose(log["G"].sum(0), 1 / n, rtol=0, atol=1e-15)
        assert np.count_nonzero(log["G"]) == n
        _check_duals(np.full(n, 1 / n), np.full(n, 1 / n), M, log)
    a, b, M = next(_problems(9, 1))
    B = np.stack([b, b[::-1]], axis=1)
    got, want = dp_ot.emd2(a, B, M), ot.emd2(a, B, M)
    assert len(got) == 2 and np.allclose(got, want, rtol=1e-9, atol=0)


def _gauss_hist(n: int, mean: float, std: float) -> np.ndarray:
    x = np.arange(n, dtype=np.float64)
    h = np.exp(-((x - mean) ** 2) / (2 * std**2))
    return h / h.sum()


def _large_cases():
    """POT's 1-D Gaussian example at 500 bins and a random dense 500 x 500 problem."""
    n = 500
    x = np.arange(n, dtype=np.float64)[:, None]
    M = ot.dist(x, x)
    yield "gauss1d", _gauss_hist(n, 100, 25), _gauss_hist(n, 300, 50), M / M.max()
    rng = np.random.default_rng(11)
    a, b = rng.random(n), rng.random(n)
    yield "random", a / a.sum(), b / b.sum(), rng.random((n, n))
    a[rng.random(n) < 0.3] = 0.0  # and with zero weights on one side
    yield "random-zeros", a / a.sum(), b / b.sum(), rng.random((n, n))


@pytest.mark.parametrize("case", list(_large_cases()), ids=lambda c: c[0])
def test_emd_large_general_histograms_match_pot(case) -> None:
    _, a, b, M = case
    G, log = dp_ot.emd(a, b, M, log=True)
    ref = ot.emd2(a, b, M)
    assert log["result_code"] == 1 and log["warning"] is None
    # both are exact LP optima; the totals differ only by the rounding of a 250k-term sum
    assert abs(log["cost"] - ref) <= 1e-9 * abs(ref)
    assert abs(float((G * M).sum()) - log["cost"]) <= 1e-12 * abs(ref)
    # a feasible plan: nonnegative, marginals up to rounding of <= 1000 flow updates per entry
    assert G.min() >= 0
    assert np.allclose(G.sum(1), a, rtol=0, atol=1e-14)
    assert np.allclose(G.sum(0), b, rtol=0, atol=1e-14)
    # a basic solution: at most n + m - 1 nonzero entries
    assert np.count_nonzero(G) <= len(a) + len(b) - 1
    _check_duals(a, b, M, log)
    assert abs(dp_ot.emd2(a, b, M) - ref) <= 1e-9 * abs(ref)


def test_emd_errors_and_warnings() -> None:
    M = np.ones((2, 3))
    with pytest.raises(ValueError, match="Dimension mismatch"):
        dp_ot.emd([0.5, 0.5], [0.5, 0.5], M)
    # where POT raises AssertionError, dp-ot's error is both an AssertionError and a ValueError
    with pytest.raises(AssertionError):
        dp_ot.emd([0.5, 0.5], [0.5, 0.5], M)
    with pytest.raises(ValueError, match="same sum"):
        dp_ot.emd([0.5, 0.5], [0.5, 0.5, 0.5], M)
    with pytest.raises(AssertionError):
        ot.emd([0.5, 0.5], [0.5, 0.5], M)  # POT's behaviour, which the class above mirrors
    with pytest.raises(ValueError, match="nonnegative"):
        dp_ot.emd([1.5, -0.5], [], M)
    with pytest.raises(ValueError, match="NaN or infinite"):
        dp_ot.emd([], [], np.array([[np.nan, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="2-D"):
        dp_ot.emd([], [], np.ones(3))
    a, b, M = next(_problems(4, 1))
    if len(a) + len(b) > 4:
        with pytest.warns(UserWarning, match="numItermax reached"):
            _, log = dp_ot.emd(a, b, M, numItermax=1, log=True)
        assert log["result_code"] == 3
