"""Trained flows recover analytic densities and their gradients."""

from __future__ import annotations

import dp_flows
import jax
import numpy as np
from conftest import (
    COV,
    MU,
    cond_gauss_grads,
    cond_gauss_logp,
    cond_gauss_sample,
    gauss_grad,
    gauss_logp,
)


def test_conditional_gaussian_log_prob_and_gradients(cond_flow):
    x, v = cond_gauss_sample(np.random.default_rng(10), 1000)
    lp = dp_flows.log_prob(cond_flow, v, condition=x)
    err = lp - cond_gauss_logp(x, v)
    print("cond lp err median/abs", np.median(err), np.median(np.abs(err)))
    gv, gx = dp_flows.grad_log_prob(cond_flow, v, condition=x)
    tv, tx = cond_gauss_grads(x, v)
    rel_v = np.linalg.norm(gv - tv, axis=1) / np.linalg.norm(tv, axis=1)
    rel_x = np.linalg.norm(gx - tx, axis=1) / np.linalg.norm(tx, axis=1)
    print("cond grad rel err v/x", np.median(rel_v), np.median(rel_x))
    assert abs(np.median(err)) < 0.1
    assert np.median(np.abs(err)) < 0.15
    assert np.median(rel_v) < 0.15
    assert np.median(rel_x) < 0.3


def test_gaussian_log_prob_gradient_and_samples(spatial_flow):
    x = MU + np.random.default_rng(11).standard_normal((1000, 3)) @ np.linalg.cholesky(COV).T
    lp = dp_flows.log_prob(spatial_flow, x)
    err = lp - gauss_logp(x)
    g, none = dp_flows.grad_log_prob(spatial_flow, x)
    assert none is None
    rel = np.linalg.norm(g - gauss_grad(x), axis=1) / np.linalg.norm(gauss_grad(x), axis=1)
    print("uncond lp err", np.median(err), np.median(np.abs(err)), "grad", np.median(rel))
    s = dp_flows.sample(jax.random.key(0), spatial_flow, 4000)
    print("mean", s.mean(0), "cov", np.cov(s.T))
    assert np.median(np.abs(err)) < 0.1
    assert np.median(rel) < 0.15
    np.testing.assert_allclose(s.mean(0), MU, atol=0.15)
    np.testing.assert_allclose(np.cov(s.T), COV, atol=0.35)
