"""The stopping rule and the data-only residual scales."""

from __future__ import annotations

import json
import math
from pathlib import Path

import _cbe_hernquist as hernquist
import _cbe_oracle as oracle
import dp_cbe
import numpy as np
import pytest
from dp_cbe._stopping import StoppingRule, probe_change, probe_positions
from dp_cbe._train import still_improving, unconverged_message

# A small vanilla fit of exact Plummer gradients: an easy problem the rule must call converged.
EASY = dict(phi_width=32, phi_depth=1, batch_size=256, n_steps=4000, eval_every=50,
            checkpoint_every=50, val_batches=2, warmup_steps=20, learning_rate=5e-3)  # fmt: skip


def test_stops_early_on_an_easy_problem(tmp_path: Path) -> None:
    gs = dp_cbe.GradientSet(**oracle.gradients("vanilla", 2, 2**13))
    sol = dp_cbe.fit(gs, config=dp_cbe.FitConfig(**EASY), out_dir=tmp_path, progress=False)
    h = sol.history
    assert h["converged"] is True and h["stop_reason"] == "converged", h
    assert h["steps"] < EASY["n_steps"] and h["steps"] == h["step"][-1]
    # the last `patience` probe changes were all below probe_tol (that is the rule)
    cfg = dp_cbe.FitConfig(**EASY)
    assert all(c < cfg.probe_tol for c in h["probe_change"][-cfg.patience :])
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["converged"] is True and saved["stop_reason"] == "converged"
    assert saved["steps"] == h["steps"]


def test_ceiling_warns_and_records_not_converged(tmp_path: Path) -> None:
    gs = dp_cbe.GradientSet(**oracle.gradients("vanilla", 2, 2**11))
    cfg = dp_cbe.FitConfig(**dict(EASY, n_steps=100))  # far too few steps for the rule
    with pytest.warns(dp_cbe.ConvergenceWarning, match="NOT CONVERGED after 100 steps"):
        sol = dp_cbe.fit(gs, config=cfg, out_dir=tmp_path, progress=False)
    assert sol.history["converged"] is False and sol.history["stop_reason"] == "n_steps"
    assert sol.history["steps"] == 100
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["converged"] is False and saved["stop_reason"] == "n_steps"
    assert saved["still_improving"] is True  # 100 steps: the loss was still falling


def test_unconverged_message_says_whether_more_steps_can_help() -> None:
    """Still falling at the ceiling: raise n_steps. Minimum long past: the model is the
    minimum's, and more steps will not change it."""
    cfg = dp_cbe.FitConfig(n_steps=6000, eval_every=250, patience=3)
    assert still_improving(5500, 6000, cfg) and not still_improving(5250, 6000, cfg)
    h = {"steps": 6000, "probe_change": [None, 0.5, 0.02], "best_step": 5750,
         "still_improving": True}  # fmt: skip
    assert "Refit with a larger n_steps" in unconverged_message("conditional", h, cfg)
    h |= {"best_step": 1500, "still_improving": False}
    text = unconverged_message("conditional", h, cfg)
    assert "reached its minimum at step 1500" in text and "larger n_steps" not in text
    assert text.startswith("dp-cbe conditional: NOT CONVERGED after 6000 steps")


def test_rule_is_a_function_of_the_evaluations() -> None:
    cfg = dp_cbe.FitConfig(patience=2, val_tol=0.01, probe_tol=0.01, lr_decay=0.5,
                           warmup_steps=0).resolved(exact=False, group_size=1)  # fmt: skip
    shell = np.zeros(4, int)
    g = np.ones((4, 3))
    lap = np.ones(4)
    rule = StoppingRule(cfg)
    # improving validation loss, moving probes: never converged, rate untouched
    for i, val in enumerate([1.0, 0.8, 0.6]):
        conv, _ = rule.update(100 * (i + 1), val, (g * (1 + i), lap), shell)
        assert not conv and rule.state["lr_factor"] == 1.0
    # stalled loss, probes still moving: after `patience` evaluations the rate is halved
    rule.update(400, 0.6, (g * 5, lap), shell)
    rule.update(500, 0.6, (g * 6, lap), shell)
    assert rule.state["lr_factor"] == 0.5
    # stalled loss and still probes: converged after `patience` evaluations of both
    rule.update(600, 0.6, (g * 6, lap), shell)
    conv, change = rule.update(700, 0.6, (g * 6, lap), shell)
    assert conv and change == 0.0
    # the state survives a JSON round trip (checkpoints) and gives the same decisions
    clone = StoppingRule(cfg, json.loads(json.dumps(rule.state)))
    assert clone.update(800, 0.6, (g * 6, lap), shell) == rule.update(800, 0.6, (g * 6, lap),
                                                                       shell)  # fmt: skip
    np.testing.assert_allclose(rule.learning_rates(np.array([0, 10])), 0.5 * cfg.learning_rate)


def test_probe_change_is_the_worst_shell() -> None:
    x = np.random.default_rng(0).normal(size=(4096, 3)) * 3
    pts, shell = probe_positions(x, np.zeros(3), n_shells=4, n_dirs=16)
    assert pts.shape == (64, 3) and shell.shape == (64,)
    r = np.linalg.norm(pts, axis=1)
    assert np.all(np.diff(r.reshape(4, 16).mean(axis=1)) > 0)  # shells ordered outwards
    g = np.ones((64, 3))
    lap = np.ones(64)
    lap2 = lap.copy()
    lap2[shell == 3] = 1.05  # 5 % change in the outer shell only
    assert math.isclose(probe_change((g, lap), (g, lap2), shell), 0.05, rel_tol=1e-9)


def test_residual_scales_depend_on_data_only() -> None:
    g = hernquist.gradients(3, 2**14)
    x, v, dx, dv = g["x"], g["v"] / 100, g["dlnf_dx"], g["dlnf_dv"] * 100
    s = dp_cbe.residual_scales(x, v, dx, dv, np.zeros(3))
    assert s.shape == (len(x),) and np.all(s > 0) and math.isclose(np.median(s), 1.0)
    # a pure function of the data: the same data give the same bits; a change of velocity
    # unit (v → k v, ∇_v → ∇_v / k) rescales both terms alike, so s (normalised) is unchanged
    np.testing.assert_array_equal(dp_cbe.residual_scales(x, v, dx, dv, np.zeros(3)), s)
    np.testing.assert_allclose(dp_cbe.residual_scales(x, 7 * v, dx, dv / 7, np.zeros(3)), s,
                               rtol=1e-9)  # fmt: skip
    # and it tracks the true size of the two CBE terms, |∇Φ||∇_v ln p| + |v||∇_x ln p|, which
    # falls ~15× from the centre to r_max: their ratio varies by less than 4× over the radii
    # (the estimate |∇Φ| ≈ ⟨v²⟩/r is a virial scale, not a fit).
    gphi = hernquist.grad_potential(x) / 100**2
    true = np.linalg.norm(gphi, axis=1) * np.linalg.norm(dv, axis=1) + np.linalg.norm(
        v, axis=1
    ) * np.linalg.norm(dx, axis=1)
    r = np.linalg.norm(x, axis=1)
    ratio = [np.median(s[m] / true[m]) for m in (r < 0.5, (r > 3) & (r < 4), r > 7)]
    assert max(ratio) / min(ratio) < 4, ratio
    inner, outer = np.median(true[r < 0.5]), np.median(true[r > 7])
    assert inner / outer > 10  # the absolute residual would weight the centre ≥ 10× more


def test_residual_scales_per_shell_are_a_function_of_radius() -> None:
    g = hernquist.gradients(3, 2**14)
    x, v, dx, dv = g["x"], g["v"] / 100, g["dlnf_dx"], g["dlnf_dv"] * 100
    per_sample = dp_cbe.residual_scales(x, v, dx, dv, np.zeros(3))
    s = dp_cbe.residual_scales(x, v, dx, dv, np.zeros(3), per="shell")
    assert s.shape == (len(x),) and np.all(s > 0) and math.isclose(np.median(s), 1.0)
    # one value per equal-count shell of r (32 runs of 512 stars in order of r), so stars at
    # one radius weigh alike whatever their speed: the slowest stars' per-sample scale is far
    # smaller
    r = np.linalg.norm(x, axis=1)
    runs = np.flatnonzero(np.diff(s[np.argsort(r)]) != 0) + 1
    np.testing.assert_array_equal(runs, np.arange(1, 32) * 512)
    slow = np.linalg.norm(v, axis=1) < np.quantile(np.linalg.norm(v, axis=1), 0.05)
    assert np.median(per_sample[slow] / s[slow]) < 0.5
    # the shells' scale still follows the per-sample one's trend with radius
    for m in (r < 0.5, (r > 3) & (r < 4), r > 7):
        assert 0.5 < np.median(s[m]) / np.median(per_sample[m]) < 2.0
    with pytest.raises(ValueError, match="per must be"):
        dp_cbe.residual_scales(x, v, dx, dv, np.zeros(3), per="star")  # type: ignore[arg-type]
    # the fit's dispatch on FitConfig.weighting (centre: the mean of x, as in `fit`)
    from dp_cbe._weights import weighting_scales

    np.testing.assert_array_equal(weighting_scales(x, v, dx, dv, "none"), np.ones(len(x)))
    for weighting, per in (("scale", "sample"), ("shell", "shell")):
        np.testing.assert_array_equal(weighting_scales(x, v, dx, dv, weighting),
                                      dp_cbe.residual_scales(x, v, dx, dv, per=per))  # fmt: skip
    with pytest.raises(ValueError, match="weighting must be"):
        weighting_scales(x, v, dx, dv, "sample")
