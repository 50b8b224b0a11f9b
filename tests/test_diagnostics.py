"""Flow diagnostics against a truth: exact gradients give zero error, and the split of an
error into its v-mean (absorbable into ∇ln n) and v-dependent parts is right."""

from __future__ import annotations

import dataclasses

import dp_mock
import numpy as np
import pytest

from deep_potential._diagnostics import gradient_diagnostics


def _truth() -> dp_mock.Truth:
    cfg = dataclasses.replace(dp_mock.preset("demo"), dust=False, m_max=20.0)
    return dp_mock.Truth(cfg)


def test_exact_gradients_have_no_error_and_recover_the_acceleration():
    truth = _truth()
    x = np.random.default_rng(0).uniform(-4, 4, (500, 3))
    d = gradient_diagnostics(truth.grad_log_p_v_given_x, truth, x, n_pos=32, n_vel=16)
    m = d["median"]
    # Exact closed forms: only float64 round-off (and the lstsq solve, cond ~ 1e3) remains.
    assert m["grad_x_rel"] < 1e-10 and m["grad_x_vdep_rel"] < 1e-10
    assert m["local_acc_rel"] < 1e-8 and abs(m["local_acc_ratio"] - 1.0) < 1e-8
    # ∇ln n of the truth by central differences (h = 1e-4 kpc): error ~ h² |∂³ ln n| ≪ 1e-6.
    assert m["local_grad_ln_n_err"] < 1e-6


def test_a_v_independent_error_is_absorbed_a_v_dependent_one_is_not():
    truth = _truth()
    x = np.random.default_rng(1).uniform(-4, 4, (500, 3))

    def shifted(xx, vv):  # ∇ₓ ln p + c: a pure v-mean error, absorbed by ∇ln n − c
        gx, gv = truth.grad_log_p_v_given_x(xx, vv)
        return gx + np.array([0.01, 0.0, 0.0]), gv

    def tilted(xx, vv):  # ∇ₓ ln p + ε v/σ²: varies with v, only a wrong ∇Φ can meet it
        gx, gv = truth.grad_log_p_v_given_x(xx, vv)
        return gx + 1e-5 * vv, gv

    a = gradient_diagnostics(shifted, truth, x, n_pos=32, n_vel=32)["median"]
    b = gradient_diagnostics(tilted, truth, x, n_pos=32, n_vel=32)["median"]
    assert a["grad_x_vdep_rel"] < 1e-10 and a["grad_x_mean_rel"] > 0.05
    assert a["local_acc_rel"] < 1e-8  # the fit puts the shift into ∇ln n
    assert b["grad_x_vdep_rel"] > 0.05 and b["local_acc_rel"] > 0.01


def test_signed_force_ratio_sees_a_too_weak_pull():
    truth = _truth()
    x = np.random.default_rng(2).uniform(-4, 4, (500, 3))

    def steep(xx, vv):  # ∇ᵥ ln p doubled: v·∇ₓ ln p = g·∇ᵥ ln p then holds with g/2
        gx, gv = truth.grad_log_p_v_given_x(xx, vv)
        return gx, 2.0 * gv

    m = gradient_diagnostics(steep, truth, x, n_pos=32, n_vel=16)["median"]
    # Exact up to the lstsq round-off of the test above.
    assert abs(m["local_acc_ratio"] - 0.5) < 1e-8 and abs(m["local_acc_rel"] - 0.5) < 1e-8
    # The split names the culprit: with the model's ∇ᵥ (exact ∇ₓ) the ratio is the 0.5, with
    # its ∇ₓ (exact ∇ᵥ) it is right.
    assert abs(m["local_acc_ratio_flow_dv"] - 0.5) < 1e-8
    assert abs(m["local_acc_ratio_flow_dx"] - 1.0) < 1e-8


def test_force_ratio_split_blames_a_tilted_x_gradient_on_dx():
    truth = _truth()
    x = np.random.default_rng(3).uniform(-4, 4, (500, 3))

    def tilted(xx, vv):  # a v-dependent error in ∇ₓ ln p only
        gx, gv = truth.grad_log_p_v_given_x(xx, vv)
        return gx + 1e-5 * vv, gv

    m = gradient_diagnostics(tilted, truth, x, n_pos=32, n_vel=16)["median"]
    assert abs(m["local_acc_ratio_flow_dv"] - 1.0) < 1e-8
    assert abs(m["local_acc_ratio_flow_dx"] - m["local_acc_ratio"]) < 1e-8
    assert abs(m["local_acc_ratio_flow_dx"] - 1.0) > 1e-3


def test_ensemble_bias_and_spread_separate_a_shared_error_from_member_noise():
    truth = _truth()
    x = np.random.default_rng(2).uniform(-4, 4, (500, 3))

    def member(k: int):
        def fn(xx, vv):  # a bias shared by all members plus member-specific noise
            gx, gv = truth.grad_log_p_v_given_x(xx, vv)
            noise = np.random.default_rng(k).standard_normal(gx.shape) * 1e-3
            return gx + 2e-6 * vv + noise, gv

        return fn

    from deep_potential._diagnostics import ensemble_bias_variance

    one = ensemble_bias_variance([member(0), member(0)], truth, x, n_pos=16, n_vel=16)
    many = ensemble_bias_variance([member(k) for k in range(4)], truth, x, n_pos=16, n_vel=16)
    # Identical members: no spread, all of the error is bias.
    assert one["median"]["spread_rel"] == 0.0 and one["median"]["bias_vdep_rel"] > 0.0
    # Independent member noise shows up as spread; the shared 2e-6 v tilt stays in the bias.
    assert many["median"]["spread_rel"] > 0.0
    assert many["median"]["bias_vdep_rel"] > 0.5 * one["median"]["bias_vdep_rel"]


def test_support_of_an_anisotropic_truth_is_q_positive_not_e_negative():
    from deep_potential._metrics import in_support

    cfg = dataclasses.replace(dp_mock.preset("demo-om"), dust=False, m_max=20.0)
    truth = dp_mock.Truth(cfg)
    x = np.array([[4.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
    psi = -truth.potential(x)[0]
    # Both bound (E < 0); the second is all tangential, so L²/2r_a² pushes its Q below 0.
    v = np.array([[0.9 * np.sqrt(2 * psi), 0.0, 0.0], [0.0, 0.95 * np.sqrt(2 * psi), 0.0]])
    assert (0.5 * (v**2).sum(axis=1) - psi < 0).all()
    assert in_support(truth, x, v).tolist() == [True, False]


def test_method_residuals_signed_acceleration_ratio():
    """``acc_ratio`` is the model's pull along the true one: a potential 10 % too weak
    everywhere reads 0.9 at every point (and ``acc_rel_err`` 0.1, which cannot tell weak
    from turned); a turned pull of the same size reads ~1."""
    from deep_potential._metrics import method_residuals

    plummer = dp_mock.PlummerSphere()  # as a truth: density and acceleration in closed form

    class Scaled:
        def __init__(self, f, turn=False):
            self.f, self.turn = f, turn

        def density(self, x):
            return self.f * plummer.density(x)

        def acceleration(self, x):
            a = plummer.acceleration(x)
            if self.turn:  # same size as a 10 % loss, perpendicular to the truth
                perp = np.cross(a, [0.0, 0.0, 1.0])
                perp *= (
                    0.1
                    * np.linalg.norm(a, axis=1, keepdims=True)
                    / np.linalg.norm(perp, axis=1, keepdims=True)
                )
                return a + perp
            return self.f * a

    x = np.random.default_rng(0).normal(size=(64, 3)) * 3.0
    weak = method_residuals("vanilla", Scaled(0.9), plummer, x)
    np.testing.assert_allclose(weak["acc_ratio"], 0.9, rtol=1e-12)
    np.testing.assert_allclose(weak["acc_rel_err"], 0.1, rtol=1e-12)
    turned = method_residuals("vanilla", Scaled(1.0, turn=True), plummer, x)
    np.testing.assert_allclose(turned["acc_ratio"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(turned["acc_rel_err"], 0.1, rtol=1e-9)


def test_velocity_shape_measures_the_kurtosis_and_flags_gaussian_shells():
    """The Plummer sphere's isotropic DF has κ = 18/7 at every radius (far from Gaussian);
    Gaussian velocities (κ = 3) are flagged in every shell; errors are honest."""
    from deep_potential._diagnostics import velocity_shape

    truth = _truth()
    rng = np.random.default_rng(1)
    x = rng.uniform(-6, 6, (40000, 3))
    x = x[np.linalg.norm(x, axis=1) < 6]
    v = truth.sample_velocities(5, x)
    s = velocity_shape(x, v, n_shells=6)
    k_r, e_r = np.asarray(s["kappa_r"]), np.asarray(s["kappa_r_err"])
    assert np.all(np.abs(k_r - 18 / 7) < 4 * e_r + 0.01), (k_r, e_r)
    assert np.all(
        np.abs(np.asarray(s["kappa_t"]) - 18 / 7) < 4 * np.asarray(s["kappa_t_err"]) + 0.01
    )
    assert 0.01 < e_r.max() < 0.1  # ~6000 stars per shell
    assert not any(s["near_gaussian"]) and s["near_gaussian_kpc"] == []
    # Gaussian velocities with a bulk motion (removed per shell): κ = 3 everywhere, one range
    g = velocity_shape(x, 150.0 * rng.standard_normal(x.shape) + [30.0, 0.0, 0.0], n_shells=6)
    assert np.all(np.abs(np.asarray(g["kappa_r"]) - 3) < 0.2) and all(g["near_gaussian"])
    assert len(g["near_gaussian_kpc"]) == 1
    np.testing.assert_allclose(g["near_gaussian_kpc"][0], [g["r_edges"][0], g["r_edges"][-1]])
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        velocity_shape(x, v[:-1])
