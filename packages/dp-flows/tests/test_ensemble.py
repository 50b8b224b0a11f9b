"""Flow ensembles: the robust mean and its standard error, and samples of the mixture."""

from __future__ import annotations

import dp_flows
import jax
import numpy as np
import pytest
from conftest import cond_gauss_sample


def test_robust_mean_drops_an_outlying_member_and_reports_the_standard_error():
    rng = np.random.default_rng(0)
    good = 1.0 + 0.1 * rng.standard_normal((7, 500))
    bad = np.full((1, 500), 50.0)  # one member gone astray everywhere
    mean, se = dp_flows.robust_mean(np.concatenate([good, bad]))
    # 7 kept members of σ = 0.1: the mean of each column is within a few 0.1/√7 of 1, and
    # the standard error estimates 0.1/√7 ≈ 0.038 (its own scatter with 6 dof is ~30 %).
    assert np.max(np.abs(mean - 1.0)) < 5 * 0.1 / np.sqrt(7)
    assert abs(np.median(se) - 0.1 / np.sqrt(7)) < 0.3 * 0.1 / np.sqrt(7)
    one, zero = dp_flows.robust_mean(good[:1])
    np.testing.assert_array_equal(one, good[0])
    assert not zero.any()


def test_sample_ensemble_draws_each_point_from_its_member(cond_flow):
    x, _ = cond_gauss_sample(np.random.default_rng(3), 300)
    which = np.random.default_rng(4).integers(2, size=300)
    key = jax.random.key(5)
    members = [cond_flow, cond_flow.with_solver(fixed_steps=8)]  # two different samplers
    v = dp_flows.sample_ensemble(key, members, 300, condition=x, which=which, progress=False)
    # Member k draws its points, in order, with fold_in(key, k): exactly `sample`'s draw.
    for k, member in enumerate(members):
        sel = which == k
        own = dp_flows.sample(jax.random.fold_in(key, k), member, int(sel.sum()), x[sel])
        np.testing.assert_array_equal(v[sel], own)
    # Without `which`, each point's member is drawn at random from the key: reproducible.
    a = dp_flows.sample_ensemble(key, members, 300, condition=x, progress=False)
    b = dp_flows.sample_ensemble(key, members, 300, condition=x, progress=False)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="which must index the 2 members"):
        dp_flows.sample_ensemble(key, members, 3, condition=x[:3], which=[0, 2, 1])
    with pytest.raises(ValueError, match="at least one flow"):
        dp_flows.sample_ensemble(key, [], 3)
