"""Flow ensembles: the robust mean and its standard error, and ensemble gradient sets."""

from __future__ import annotations

import dp_flows
import numpy as np
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


def test_ensemble_gradient_set_of_identical_members_equals_the_single_flow(cond_flow):
    x, _ = cond_gauss_sample(np.random.default_rng(3), 300)
    g = dp_flows.make_gradients(
        "conditional", conditional=[cond_flow, cond_flow], n=300, positions=x, progress=False
    )
    dv, dx = dp_flows.grad_log_prob(cond_flow, g["v"], g["x"])
    # Identical members: the robust mean is each member's value to float64 round-off.
    np.testing.assert_allclose(g["dlnf_dx"], dx, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g["dlnf_dv"], dv, rtol=1e-6, atol=1e-9)
    assert not g["dlnf_dx_std"].any() and not g["dlnf_dv_std"].any()
    assert g["members"]["dlnf_dx"].shape == (2, 300, 3)
    member = dp_flows.member_gradients(g, 1)
    np.testing.assert_array_equal(member["dlnf_dv"], g["members"]["dlnf_dv"][1])
