"""Training: weighted target, OT straightness, resume, multi-device agreement, config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import dp_flows
import jax
import numpy as np
import pytest
from dp_flows import _checkpoint
from dp_flows._flow import sample_steps
from scipy import stats

TINY = dict(
    width=32, depth=2, time_embedding_dim=8, batch_size=256, learning_rate=3e-3, warmup_steps=10
)


@pytest.mark.slow
def test_weighted_loss_reproduces_weighted_target():
    # x ~ N(0, I₂) weighted by w ∝ exp(a·x) is exactly N(a, I₂) (exponential tilting).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12000, 2))
    a = np.array([0.8, -0.5])
    w = np.exp(x @ a)
    cfg = dp_flows.FlowConfig(n_epochs=25, ot=False, **TINY)
    flow = dp_flows.fit_flow(x, weights=w, config=cfg, seed=1, progress=False)
    s = dp_flows.sample(jax.random.key(0), flow, 8000)
    # Effective sample size of the tilted weights ≈ 12000·e^{-|a|²} ≈ 4.7k (std err ≈ 0.015)
    # plus flow error: 0.08 still separates the tilted mean (0.8, −0.5) from the unweighted 0.
    np.testing.assert_allclose(s.mean(0), a, atol=0.08)
    np.testing.assert_allclose(s.std(0), [1.0, 1.0], atol=0.08)


@pytest.mark.slow
def test_ot_pairing_gives_straighter_paths():
    rng = np.random.default_rng(3)
    centres = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0], [0.0, -4.0]])
    data = centres[rng.integers(0, 4, 8192)] + 0.4 * rng.standard_normal((8192, 2))
    steps = {}
    for ot in (True, False):
        cfg = dp_flows.FlowConfig(
            n_epochs=12, ot=ot, rtol=1e-5, atol=1e-6, fixed_steps=0, ema_decay=0.0, **TINY
        )
        flow = dp_flows.fit_flow(data, config=cfg, seed=0, progress=False)
        steps[ot] = sample_steps(jax.random.key(1), flow, 2048).mean()
    print("mean adaptive steps OT / independent:", steps)
    # OT couplings make the learned paths nearly straight: fewer adaptive steps on average.
    assert steps[True] < 0.9 * steps[False]


def test_resume_continues_the_same_run(tmp_path, monkeypatch):
    x = np.random.default_rng(4).standard_normal((2048, 3))
    cfg = dp_flows.FlowConfig(n_epochs=4, checkpoint_every=2, **TINY)
    ref = dp_flows.fit_flow(x, config=cfg, seed=5, out_dir=tmp_path / "a", progress=False)

    real_save = _checkpoint.save

    def save_then_die(*args, **kw):
        real_save(*args, **kw)
        raise KeyboardInterrupt  # simulated kill right after the first checkpoint

    monkeypatch.setattr(_checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        dp_flows.fit_flow(x, config=cfg, seed=5, out_dir=tmp_path / "b", progress=False)
    monkeypatch.setattr(_checkpoint, "save", real_save)
    assert json.loads((tmp_path / "b/checkpoint/state.json").read_text())["epoch"] == 2
    resumed = dp_flows.fit_flow(x, config=cfg, seed=5, out_dir=tmp_path / "b", progress=False)
    # Deterministic on CPU: the resumed run is the uninterrupted one, bit for bit.
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    hist = lambda d: json.loads((tmp_path / d / "history.json").read_text())["history"]  # noqa: E731
    assert hist("a") == hist("b")
    with pytest.raises(ValueError, match="different run"):
        dp_flows.fit_flow(x, config=cfg, seed=6, out_dir=tmp_path / "b", progress=False)


def test_one_and_two_devices_agree():
    script = textwrap.dedent(
        """
        import jax, numpy as np, dp_flows
        assert len(jax.devices()) == 2
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2048, 3)); v = x + rng.standard_normal((2048, 3))
        cfg = dp_flows.FlowConfig(n_epochs=3, width=32, depth=2, time_embedding_dim=8,
                                  batch_size=256, warmup_steps=5)
        out = []
        for devs in (jax.devices()[:1], jax.devices()):
            f = dp_flows.fit_flow(v, condition=x, config=cfg, seed=0, progress=False, devices=devs)
            out.append(np.concatenate([np.ravel(a) for a in jax.tree.leaves(f)]))
        f4 = f.with_solver(fixed_steps=4)
        g = [np.concatenate(dp_flows.grad_log_prob(f4, v[:300], x[:300], batch_size=128,
                                                   devices=devs))
             for devs in (jax.devices()[:1], jax.devices())]
        print(float(np.max(np.abs(g[0] - g[1]))), float(np.max(np.abs(g[0]))))
        print(float(np.max(np.abs(out[0] - out[1]))), float(np.max(np.abs(out[0]))))
        """
    )
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    res = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    gdiff, gscale, diff, scale = map(float, res.stdout.split()[-4:])
    # Gradients of the same flow on 1 vs 2 devices: identical per-sample arithmetic (float32);
    # 1e-5 relative allows for different fusion/vectorisation of the two programs.
    assert gdiff < 1e-5 * gscale
    # Only the reduction order of the batch mean differs (float32): after ~20 Adam steps the
    # parameters agree to ~1e-5 relative; 1e-3 of the largest parameter is a safe bound.
    assert diff < 1e-3 * scale


def test_config_and_input_errors():
    with pytest.raises(ValueError, match=r"FlowConfig: unknown key.*widht"):
        dp_flows.FlowConfig.from_dict({"widht": 3})
    with pytest.raises(ValueError, match="val_fraction"):
        dp_flows.FlowConfig(val_fraction=1.5)
    assert dp_flows.FlowConfig.from_dict(dp_flows.FlowConfig().to_dict()) == dp_flows.FlowConfig()
    x = np.zeros((100, 3))
    bad = x.copy()
    bad[[3, 7]] = np.nan
    with pytest.raises(ValueError, match="2 rows with NaN"):
        dp_flows.fit_flow(bad)
    with pytest.raises(ValueError, match="condition must have shape"):
        dp_flows.fit_flow(x, condition=np.zeros((99, 3)))
    with pytest.raises(ValueError, match=r"weights.*negative"):
        dp_flows.fit_flow(x, weights=-np.ones(100))
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        dp_flows.fit_flow(np.zeros(100))


def test_automatic_epochs_follow_the_data_size(tmp_path):
    """``n_epochs = None``: a conditional flow trains ~6000 steps (64–512 epochs), an
    unconditional one 64 epochs; the fit records the number it used."""
    cfg = dp_flows.FlowConfig()
    assert cfg.n_epochs is None
    assert cfg.epochs_for(24, conditional=True) == 250  # 2^17 stars, batches of 4096
    assert cfg.epochs_for(768, conditional=True) == 64  # 2^22 stars
    assert cfg.epochs_for(1, conditional=True) == 512
    assert cfg.epochs_for(24, conditional=False) == 64
    assert cfg.replace(n_epochs=7).epochs_for(24, conditional=True) == 7
    x = np.random.default_rng(0).standard_normal((512, 2))
    tiny = dp_flows.FlowConfig(**dict(TINY, width=8, depth=1), ot=False)
    dp_flows.fit_flow(x, config=tiny, out_dir=tmp_path, progress=False)
    h = json.loads((tmp_path / "history.json").read_text())
    assert h["config"]["n_epochs"] == 64 and len(h["history"]) == 64


def test_ema_step_averages_the_weights():
    import equinox as eqx
    import optax
    from dp_flows._fields import ResNetField
    from dp_flows._train import make_step

    field = ResNetField(2, width=8, depth=1, time_embedding_dim=4, key=jax.random.key(0))
    opt = optax.sgd(0.1)
    state = opt.init(eqx.filter(field, eqx.is_array))
    ema = jax.tree.map(lambda a: a + 1.0 if eqx.is_array(a) else a, field)
    rng = np.random.default_rng(0)
    args = [rng.standard_normal((16, 2)).astype(np.float32) for _ in range(2)]
    args += [None, np.ones(16, np.float32), rng.uniform(size=16).astype(np.float32)]
    # Late step (i = 10⁶): the ramp (1+i)/(10+i) exceeds 0.9, so the decay is exactly 0.9.
    new, _, avg, _ = make_step(opt, 0.9)(field, state, ema, np.int32(10**6), *args)
    # Early step (i = 0): decay 1/10.
    _, _, avg0, _ = make_step(opt, 0.9)(field, state, ema, np.int32(0), *args)
    # Off: the "average" is the new field itself.
    _, _, same, _ = make_step(opt, 0.0)(field, state, ema, np.int32(5), *args)
    w_new, w_ema = new.layer_in.weight, ema.layer_in.weight
    # float32 arithmetic on O(1) numbers: 1e-6.
    np.testing.assert_allclose(avg.layer_in.weight, 0.9 * w_ema + 0.1 * w_new, atol=1e-6)
    np.testing.assert_allclose(avg0.layer_in.weight, 0.1 * w_ema + 0.9 * w_new, atol=1e-6)
    np.testing.assert_array_equal(same.layer_in.weight, w_new)


def test_time_power_sets_the_law_of_the_training_times():
    from dp_flows._train import _times

    u = np.random.default_rng(0).uniform(size=200_000)
    # the default is √u bit for bit (flows trained before the option existed are unchanged)
    assert np.array_equal(_times(u, 2.0), np.sqrt(u))
    assert np.array_equal(_times(u, 1.0), u)
    # density p t^(p-1) on (0, 1): CDF t^p, so E t = p / (p + 1) and a KS test against it
    for power in (1.0, 2.0, 3.0):
        t = _times(u, power)
        assert abs(t.mean() - power / (power + 1)) < 3e-3
        assert stats.kstest(t, lambda q, p=power: np.clip(q, 0, 1) ** p).pvalue > 1e-3
