"""OT pairing: a block's exact assignment (brute force, scipy and dp-ot as oracles) and the
minibatches of an epoch, computed per block or read by index from dp-ot's stored pairings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from dp_flows import _pairing
from scipy.optimize import linear_sum_assignment


def _cost(z0: np.ndarray, z1: np.ndarray) -> np.ndarray:
    return ((z0[:, None] - z1[None]) ** 2).sum(-1)


def test_block_pairing_is_the_brute_force_optimum():
    # 7! = 5040 permutations enumerated: an oracle independent of any assignment solver.
    # Continuous random points: the optimum is unique (almost surely), so the permutation
    # itself must match, not only its cost.
    rng = np.random.default_rng(0)
    for _ in range(5):
        z0, z1 = rng.standard_normal((7, 3)), rng.standard_normal((7, 3)) + 0.5
        cost = _cost(z0, z1)
        best = min(itertools.permutations(range(7)), key=lambda p: cost[range(7), p].sum())
        np.testing.assert_array_equal(_pairing.ot_permutation(z0, z1), best)


def test_block_pairing_is_the_exact_assignment():
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal((64, 3)), rng.standard_normal((64, 3)) + 1.0
    perm = _pairing.ot_permutation(z0, z1)
    assert sorted(perm) == list(range(64))  # a permutation
    cost = _cost(z0, z1)
    rows, cols = linear_sum_assignment(cost)
    # An exact optimum: scipy's optimal total cost, to float rounding of a 64-term sum.
    np.testing.assert_allclose(cost[np.arange(64), perm].sum(), cost[rows, cols].sum(), rtol=1e-12)


def test_block_pairing_equals_dp_ots_solver():
    dp_ot = pytest.importorskip("dp_ot", reason="dp-ot is the optional [ot] extra")
    rng = np.random.default_rng(1)
    for n in (16, 128, 256):
        z0, z1 = rng.standard_normal((n, 3)), 2.0 * rng.standard_normal((n, 3))
        rows, cols = dp_ot.linear_sum_assignment(_cost(z0, z1))
        np.testing.assert_array_equal(rows, np.arange(n))
        # Unique optimum (continuous data): two exact solvers give the same permutation.
        np.testing.assert_array_equal(_pairing.ot_permutation(z0, z1), cols)


def test_epoch_batches_are_deterministic_and_cover_distinct_rows():
    z1 = np.random.default_rng(1).standard_normal((1000, 2))
    a = list(_pairing.ot_batches(_pairing.epoch_rng(3, 7), z1, 256, 128))
    b = list(_pairing.ot_batches(_pairing.epoch_rng(3, 7), z1, 256, 128))
    assert len(a) == 3  # 1000 // 256 batches, remainder dropped
    for (ra, za), (rb, zb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(za, zb)
    rows = np.concatenate([r for r, _ in a])
    assert len(np.unique(rows)) == len(rows)  # each star at most once per epoch


@pytest.mark.parametrize("weighted", [False, True])
def test_dp_ot_source_yields_the_stored_pairs_by_index(tmp_path, weighted):
    pytest.importorskip("dp_ot", reason="dp-ot is the optional [ot] extra")
    rng = np.random.default_rng(2)
    z1 = rng.standard_normal((600, 3))
    w = rng.uniform(0.5, 2.0, 600) if weighted else None
    src = _pairing.DpOtSource(z1, tmp_path / "p", weights=w, seed=4, n_epochs=2, block=128)
    for epoch in (0, 1, 3):  # epoch 3: stored epoch 1 in a reshuffled block order
        got = list(src.batches(epoch, 256))
        want = list(src.pairings.minibatches(epoch, z1, blocks_per_batch=2))
        assert len(got) == len(want) == 2  # 600 // 128 = 4 blocks, 2 per batch
        for (rows, z0), (x0, x1) in zip(got, want, strict=True):
            assert rows.dtype == np.int64 and rows.shape == (256,)
            # Exactly dp-ot's pairs: the same noise, and the indexed rows are its x1 rows.
            np.testing.assert_array_equal(z0, x0)
            np.testing.assert_array_equal(z1[rows], x1)


def test_dp_ot_source_keeps_duplicate_rows_apart(tmp_path):
    # Two stars at the same point (e.g. with different conditions) are different rows: each
    # appears once per unweighted epoch, by its own index (a lookup by value cannot tell them
    # apart).
    pytest.importorskip("dp_ot", reason="dp-ot is the optional [ot] extra")
    z1 = np.repeat(np.random.default_rng(3).standard_normal((256, 2)), 2, axis=0)
    src = _pairing.DpOtSource(z1, tmp_path / "p", weights=None, seed=0, n_epochs=1, block=128)
    rows = np.concatenate([r for r, _ in src.batches(0, 128)])
    assert len(rows) == 512 and len(np.unique(rows)) == 512  # every star exactly once
