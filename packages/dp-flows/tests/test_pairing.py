"""OT pairing of a block against scipy's exact assignment (the oracle)."""

from __future__ import annotations

import numpy as np
from dp_flows import _pairing
from scipy.optimize import linear_sum_assignment


def test_block_pairing_is_the_exact_assignment():
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal((64, 3)), rng.standard_normal((64, 3)) + 1.0
    perm = _pairing.ot_permutation(z0, z1)
    assert sorted(perm) == list(range(64))  # a permutation
    cost = ((z0[:, None] - z1[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    # Both are exact optima: equal total cost to float rounding.
    np.testing.assert_allclose(cost[np.arange(64), perm].sum(), cost[rows, cols].sum(), rtol=1e-10)


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
