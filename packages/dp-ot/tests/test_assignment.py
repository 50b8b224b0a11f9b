"""Assignment entry points against scipy.optimize.linear_sum_assignment (the oracle)."""

from __future__ import annotations

import dp_ot
import numpy as np
import pytest
import scipy.optimize
from dp_ot import _core


def _instances(seed: int, count: int):
    """Random cost matrices: ties, integers, rectangular both ways, sizes 0-3, large values."""
    rng = np.random.default_rng(seed)
    for t in range(count):
        n, m = (int(v) for v in rng.integers(0, 9, size=2))
        if t % 5 == 0:
            n, m = (int(v) for v in rng.integers(0, 4, size=2))  # sizes 0/1/2/3
        kind = t % 4
        if kind == 0:
            c = rng.normal(size=(n, m))
        elif kind == 1:
            c = rng.integers(0, 3, size=(n, m))  # many ties, integer dtype
        elif kind == 2:
            c = rng.integers(-(10**12), 10**12, size=(n, m)).astype(np.float64)
        else:
            c = rng.uniform(0, 1e6, size=(n, m)) * (rng.uniform(size=(n, m)) < 0.7)
        yield c


def _check_same_optimum(c: np.ndarray, maximize: bool) -> None:
    r_ref, c_ref = scipy.optimize.linear_sum_assignment(c, maximize=maximize)
    r, k = dp_ot.linear_sum_assignment(c, maximize=maximize)
    assert r.shape == r_ref.shape and k.shape == c_ref.shape
    assert np.array_equal(r, np.sort(r))  # rows sorted, as scipy
    assert len(set(r.tolist())) == len(r) and len(set(k.tolist())) == len(k)  # a matching
    ref, got = c[r_ref, c_ref].sum(), c[r, k].sum()
    # Both are exact optima; the totals can differ only by rounding of a sum of <= 8 terms.
    scale = np.abs(c).max(initial=0.0) * max(len(r), 1)
    assert abs(got - ref) <= 1e-12 * scale


@pytest.mark.parametrize("maximize", [False, True])
def test_matches_scipy_random(maximize: bool) -> None:
    for c in _instances(seed=1 + maximize, count=1500):
        _check_same_optimum(c, maximize)


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("n", [64, 256])
def test_dense_blocks_match_scipy(simd: bool, n: int) -> None:
    """Square Euclidean blocks (the fast path) on both SIMD levels, plus heavy ties."""
    try:
        _core.set_simd_enabled(simd)
        rng = np.random.default_rng(n)
        for t in range(6):
            x0, x1 = rng.normal(size=(2, n, 3))
            c = ((x1[:, None] - x0[None]) ** 2).sum(-1)
            if t % 2:
                c = np.round(c * 2)  # integer-valued ties: totals must be exactly equal
            _check_same_optimum(c, False)
    finally:
        _core.set_simd_enabled(True)


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("data", ["scaled", "plummer"])
def test_unstandardized_blocks_match_scipy(simd: bool, data: str) -> None:
    """Clouds of other scale and offset, or heavy-tailed: the solver's auction start (most rows
    are then nobody's nearest column) must give scipy's pairs too."""
    try:
        _core.set_simd_enabled(simd)
        rng = np.random.default_rng(7)
        for _ in range(4):
            x0 = rng.normal(size=(256, 3))
            if data == "scaled":
                x1 = 2.0 * rng.normal(size=(256, 3)) + 1.0
            else:  # unit Plummer sphere: radius from the inverse of its mass profile
                d = rng.normal(size=(256, 3))
                r = 1.0 / np.sqrt(rng.uniform(size=256) ** (-2.0 / 3.0) - 1.0)
                x1 = d / np.linalg.norm(d, axis=1, keepdims=True) * r[:, None]
            c = ((x1[:, None] - x0[None]) ** 2).sum(-1)
            r_ref, c_ref = scipy.optimize.linear_sum_assignment(c)
            r_got, c_got = dp_ot.linear_sum_assignment(c)
            assert np.array_equal(r_got, r_ref) and np.array_equal(c_got, c_ref)
    finally:
        _core.set_simd_enabled(True)


@pytest.mark.parametrize("data", ["standardized", "scaled", "plummer"])
def test_simd_levels_bit_identical(data: str) -> None:
    """The raw dense solver (no tie certificate: pairs and both duals) gives the same bytes
    with the AVX2 (FMA-port subtractions, register merges) and the SSE2 kernels, on the JV
    (standardized) and the auction (scaled, Plummer) starts."""
    rng = np.random.default_rng(11)
    blocks = []
    for _ in range(3):
        x0 = rng.normal(size=(256, 3))
        if data == "standardized":
            x1 = rng.normal(size=(256, 3))
        elif data == "scaled":
            x1 = 2.0 * rng.normal(size=(256, 3)) + 1.0
        else:
            d = rng.normal(size=(256, 3))
            r = 1.0 / np.sqrt(rng.uniform(size=256) ** (-2.0 / 3.0) - 1.0)
            x1 = d / np.linalg.norm(d, axis=1, keepdims=True) * r[:, None]
        blocks.append(((x1[:, None] - x0[None]) ** 2).sum(-1))
    try:
        results = {}
        for simd in (True, False):
            _core.set_simd_enabled(simd)
            results[simd] = [_core.square_duals(c) for c in blocks]
    finally:
        _core.set_simd_enabled(True)
    for fast, base in zip(results[True], results[False], strict=True):
        for a, b in zip(fast, base, strict=True):
            assert a.tobytes() == b.tobytes()


def test_infeasible_and_inf_entries() -> None:
    inf = np.inf
    ok = np.array([[inf, 1.0, 2.0], [3.0, inf, 4.0]])
    _check_same_optimum(ok, False)
    for bad, maximize in [
        (np.array([[inf, inf], [1.0, 2.0]]), False),
        (np.array([[1.0, inf], [2.0, inf]]), False),
        (np.array([[inf, 1.0], [inf, 2.0], [inf, inf]]), False),
    ]:
        with pytest.raises(ValueError, match="cost matrix is infeasible"):
            scipy.optimize.linear_sum_assignment(bad, maximize=maximize)
        with pytest.raises(ValueError, match="cost matrix is infeasible"):
            dp_ot.linear_sum_assignment(bad, maximize=maximize)


@pytest.mark.parametrize(
    ("value", "maximize", "error", "match"),
    [
        (np.array([[np.nan, 1.0], [1.0, 2.0]]), False, ValueError, "invalid numeric entries"),
        (np.array([[-np.inf, 1.0], [1.0, 2.0]]), False, ValueError, "invalid numeric entries"),
        (np.array([[np.inf, 1.0], [1.0, 2.0]]), True, ValueError, "invalid numeric entries"),
        (np.ones(3), False, ValueError, r"expected a matrix \(2-D array\), got a 1 array"),
        (np.ones((2, 2, 2)), False, ValueError, "got a 3 array"),
        (np.array([["a", "b"]]), False, TypeError, "Cannot cast"),
        (np.array([[1 + 1j]]), False, TypeError, "Cannot cast"),
    ],
)
def test_invalid_inputs_raise_like_scipy(value, maximize, error, match) -> None:
    with pytest.raises(error):
        scipy.optimize.linear_sum_assignment(value, maximize=maximize)
    with pytest.raises(error, match=match):
        dp_ot.linear_sum_assignment(value, maximize=maximize)


def test_lists_bools_and_empty() -> None:
    for c in ([[1, 2], [3, 1]], np.eye(3, dtype=bool), np.zeros((0, 4)), np.zeros((4, 0))):
        _check_same_optimum(np.asarray(c), False)


def test_batch_threads_identical_and_optimal() -> None:
    rng = np.random.default_rng(5)
    x0, x1 = rng.normal(size=(2, 24, 48, 3))
    costs = ((x1[:, :, None] - x0[:, None]) ** 2).sum(-1)
    costs[::3] = np.round(costs[::3])  # tied problems too
    one = dp_ot.batch_linear_sum_assignment(costs, threads=1)
    two = dp_ot.batch_linear_sum_assignment(costs, threads=2)
    assert one.shape == (24, 48) and one.dtype == np.int64
    assert np.array_equal(one, two)  # identical for any thread count
    for b in range(24):
        r, c = scipy.optimize.linear_sum_assignment(costs[b])
        assert np.array_equal(one[b], c)  # scipy's pairs, ties included (every 3rd is tied)
        ref = costs[b][r, c].sum()
        # exact optima; totals differ only by summation rounding (48 terms of size <= ~30)
        assert abs(costs[b][np.arange(48), one[b]].sum() - ref) <= 1e-12 * 48 * 30


def test_batch_errors() -> None:
    with pytest.raises(ValueError, match=r"\(B, n, n\)"):
        dp_ot.batch_linear_sum_assignment(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="threads"):
        dp_ot.batch_linear_sum_assignment(np.zeros((2, 3, 3)), threads=0)
    bad = np.zeros((3, 2, 2))
    bad[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match="problem 2"):
        dp_ot.batch_linear_sum_assignment(bad)
