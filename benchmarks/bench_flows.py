"""dp-flows benchmark: training throughput (JAX vs plain PyTorch, same net and loss; K flows
sequential vs vmapped over their stacked parameters), gradient
throughput of ∇ ln p(v|x), and accuracy of ∇ ln p(v|x) on a Plummer sample (if dp_mock).

    .venv/bin/python benchmarks/bench_flows.py [--quick]

PyTorch is a benchmark-only dependency (`.venv/bin/pip install torch==2.13.0`).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
import time

import dp_flows
import equinox as eqx
import jax
import numpy as np
import tomllib
from dp_flows._fields import ResNetField
from dp_flows._train import make_optimizer, make_step

from deep_potential._diagnostics import gradient_diagnostics


def jax_train_throughput(width, depth, batch, n_steps, emb=32, d=3, c=3) -> float:
    field = ResNetField(
        d, c, width=width, depth=depth, time_embedding_dim=emb, key=jax.random.key(0)
    )
    cfg = dp_flows.FlowConfig(width=width, depth=depth, batch_size=batch)
    opt = make_optimizer(cfg, 10_000)
    state = opt.init(eqx.filter(field, eqx.is_array))
    step = make_step(opt)
    rng = np.random.default_rng(0)
    f32 = np.float32
    args = [
        rng.standard_normal((batch, d)).astype(f32),
        rng.standard_normal((batch, d)).astype(f32),
        rng.standard_normal((batch, c)).astype(f32),
        np.ones(batch, f32),
        rng.uniform(size=batch).astype(f32),
    ]
    i = np.int32(0)
    for _ in range(3):
        field, state, _, loss = step(field, state, field, i, *args)
    jax.block_until_ready(loss)
    t = time.perf_counter()
    for _ in range(n_steps):
        field, state, _, loss = step(field, state, field, i, *args)
    jax.block_until_ready(loss)
    return n_steps * batch / (time.perf_counter() - t)


def jax_ensemble_throughput(width, depth, batch, n_steps, k, emb=32, d=3, c=3):
    """K flows trained side by side: K sequential jitted steps (one program per member, as K
    `fit_flow` calls run) against one program vmapped over the K stacked parameter sets
    (larger matrix products). Returns (sequential, vectorised) samples/s over all members."""
    cfg = dp_flows.FlowConfig(width=width, depth=depth, batch_size=batch)
    opt = make_optimizer(cfg, 10_000)
    keys = jax.random.split(jax.random.key(0), k)
    make = lambda key: ResNetField(d, c, width=width, depth=depth, time_embedding_dim=emb, key=key)  # noqa: E731
    fields = [make(key) for key in keys]
    states = [opt.init(eqx.filter(f, eqx.is_array)) for f in fields]
    step = make_step(opt)
    rng = np.random.default_rng(0)
    f32 = np.float32

    def batch_args(m: int) -> list[np.ndarray]:
        return [rng.standard_normal((*m_shape, d)).astype(f32) for m_shape in [(m,)] * 2] + [
            rng.standard_normal((m, c)).astype(f32), np.ones(m, f32), rng.uniform(size=m).astype(f32)
        ]  # fmt: skip

    args = [batch_args(batch) for _ in range(k)]
    i = np.int32(0)

    def run_seq(n: int):
        loss = None
        for _ in range(n):
            for m in range(k):
                fields[m], states[m], _, loss = step(fields[m], states[m], fields[m], i, *args[m])
        jax.block_until_ready(loss)

    run_seq(3)
    t = time.perf_counter()
    run_seq(n_steps)
    seq = n_steps * k * batch / (time.perf_counter() - t)

    stacked = eqx.filter_vmap(make)(keys)
    vstate = eqx.filter_vmap(lambda f: opt.init(eqx.filter(f, eqx.is_array)))(stacked)
    vargs = [np.stack([a[j] for a in args]) for j in range(5)]

    def member_step(f, st, *a):
        f, st, _, loss = step(f, st, f, i, *a)
        return f, st, loss

    vstep = eqx.filter_jit(eqx.filter_vmap(member_step))

    def run_vec(n: int, f, st):
        loss = None
        for _ in range(n):
            f, st, loss = vstep(f, st, *vargs)
        jax.block_until_ready(loss)
        return f, st

    stacked, vstate = run_vec(3, stacked, vstate)
    t = time.perf_counter()
    run_vec(n_steps, stacked, vstate)
    vec = n_steps * k * batch / (time.perf_counter() - t)
    return seq, vec


def torch_train_throughput(width, depth, batch, n_steps, emb=32, d=3, c=3) -> float:
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("freqs", torch.logspace(0, 10, emb // 2, base=2.0))
            self.inp = torch.nn.Linear(d + emb + c, width)
            self.blocks = torch.nn.ModuleList(
                torch.nn.Sequential(
                    torch.nn.Linear(width, width), torch.nn.SiLU(), torch.nn.Linear(width, width)
                )
                for _ in range(depth)
            )
            self.out = torch.nn.Linear(width, d)

        def forward(self, t, z, cond):
            a = t[:, None] * self.freqs
            h = self.inp(torch.cat([z, torch.sin(a), torch.cos(a), cond], -1))
            for b in self.blocks:
                h = h + b(h)
            return self.out(torch.nn.functional.silu(h))

    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(batch, d, generator=g), torch.randn(batch, d, generator=g)
    cond, w, t = (
        torch.randn(batch, c, generator=g),
        torch.ones(batch),
        torch.rand(batch, generator=g),
    )

    def step():
        zt = (1 - t)[:, None] * z0 + t[:, None] * z1
        loss = (w * ((net(t, zt, cond) - (z1 - z0)) ** 2).sum(-1)).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    return n_steps * batch / (time.perf_counter() - start)


def _median_table(label: str, edges, key: np.ndarray, errs: dict[str, np.ndarray]) -> None:
    names = list(errs)
    print(f"| {label} | n | " + " | ".join(f"median rel. err {k}" for k in names) + " |")
    print("|---" * (2 + len(names)) + "|")
    for lo, hi in itertools.pairwise(edges):
        m = (key >= lo) & (key < hi)
        if m.any():
            cells = " | ".join(f"{np.median(errs[k][m]):.3f}" for k in names)
            print(f"| {lo:g}–{hi:g} | {m.sum()} | {cells} |")
    cells = " | ".join(f"{np.median(errs[k]):.3f}" for k in names)
    print(f"| all | {len(key)} | {cells} |")


def _rel(g: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.linalg.norm(g - t, axis=1) / np.linalg.norm(t, axis=1)


def conditional_accuracy(
    n_train: int,
    n_eval: int,
    config: dp_flows.FlowConfig,
    solvers: list[str],
    workdir: str,
    preset: str = "demo",
) -> None:
    """p(v|x) on dp-mock's demo catalogue (dust + magnitude limit): accuracy and speed.

    Trains on ``n_train`` observed stars of the demo catalogue (seed 0) and evaluates
    ∇ ln p(v|x) on ``n_eval`` observed stars of an independent catalogue (seed 1) against
    dp-mock's closed forms, binned by radius and by the true selection S_true(x). The
    v-dependent part of the ∇_x error (what the conditional CBE solver cannot absorb into
    ∇ ln n) is measured at 64 positions × 32 velocities drawn from the true p(v|x).
    """
    import dp_mock

    mock = dataclasses.replace(dp_mock.preset(preset), n_observed=n_train)
    train_path = dp_mock.generate_catalog(mock, f"{workdir}/train.h5", seed=0, progress=False)
    eval_path = dp_mock.generate_catalog(mock, f"{workdir}/eval.h5", seed=1, progress=False)
    cat, ev = dp_mock.read_catalog(train_path), dp_mock.read_catalog(eval_path)
    truth = dp_mock.load_truth(eval_path)
    t = time.perf_counter()
    flow = dp_flows.fit_flow(cat["v"], condition=cat["x"], config=config, seed=0, progress=False)
    t_fit = time.perf_counter() - t
    x, v = ev["x"][:n_eval], ev["v"][:n_eval]
    tx, tv = truth.grad_log_p_v_given_x(x, v)
    s_true, r = truth.selection(x), np.linalg.norm(x, axis=1)
    # 64 positions × 32 velocities from the true p(v|x), for the v-dependent ∇_x error.
    xs = np.repeat(x[:64], 32, axis=0)
    vs = truth.sample_velocities(12345, xs)
    txs, _ = truth.grad_log_p_v_given_x(xs, vs)
    print(f"\np(v|x) on the {preset} catalogue: {n_train} stars (train), {n_eval} held out")
    print(f"config {config.to_dict()}")
    print(
        f"fit {t_fit:.1f} s ({n_train * (1 - config.val_fraction) * config.n_epochs / t_fit:,.0f}"
        " samples/s incl. validation)"
    )
    for spec in solvers:
        if spec == "adaptive":
            f = flow.with_solver(fixed_steps=0)
        else:
            method, steps = spec.split(":")
            f = flow.with_solver(fixed_steps=int(steps), fixed_solver=method)
        batch = 2048 if spec == "adaptive" else 4096
        gv, gx = dp_flows.grad_log_prob(f, v, x, batch_size=batch, progress=False)
        n_speed = n_eval if spec == "adaptive" else max(4 * batch, n_eval)
        xr, vr = np.resize(x, (n_speed, 3)), np.resize(v, (n_speed, 3))
        c0, t0 = time.process_time(), time.perf_counter()
        dp_flows.grad_log_prob(f, vr, xr, batch_size=batch, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        gxs = dp_flows.grad_log_prob(f, vs, xs, batch_size=batch, progress=False)[1]
        e = (gxs - txs).reshape(64, 32, 3)
        e_vdep = e - e.mean(axis=1, keepdims=True)
        rel_vdep = np.linalg.norm(e_vdep, axis=-1).ravel() / np.linalg.norm(txs, axis=1)
        ok = s_true > 0.01
        print(
            f"\n### solver {spec}: {n_speed / wall:,.0f} gradients/s wall "
            f"({n_speed / cpu:,.0f}/s per CPU-second; batch {batch}, {n_speed} points)"
        )
        print(
            f"median rel. err ∇_v ln p: {np.median(_rel(gv, tv)):.4f} (S_true > 0.01: "
            f"{np.median(_rel(gv[ok], tv[ok])):.4f}); ∇_x ln p: {np.median(_rel(gx, tx)):.3f}; "
            f"v-dependent part of the ∇_x error: {np.median(rel_vdep):.3f}"
        )
        errs = {"∇_v ln p": _rel(gv, tv), "∇_x ln p": _rel(gx, tx)}
        _median_table("r (kpc)", [0, 2, 4, 6, 8], r, errs)
        _median_table("S_true", [0, 0.01, 0.03, 0.1, 0.3, 1.0001], s_true, errs)

        def grad_fn(xx, vv, f=f, batch=batch):
            gvv, gxx = dp_flows.grad_log_prob(f, vv, xx, batch_size=batch, progress=False)
            return gxx, gvv

        def sample_fn(xx, f=f):
            return dp_flows.sample(jax.random.key(5), f, len(xx), xx, progress=False)

        d = gradient_diagnostics(grad_fn, truth, x, seed=2, sample_fn=sample_fn)
        print("diagnostics (256 positions x 64 true velocities; see deep_potential._diagnostics):")
        print("  " + ", ".join(f"{k} {v:.3f}" for k, v in d["median"].items()))
        for row in d["by_r"]:
            print(
                f"  r {row['lo']:.1f}-{row['hi']:.1f} kpc (n={row['n']}): local_acc_rel "
                f"{row['local_acc_rel']:.3f}, local_acc_ratio {row['local_acc_ratio']:.3f}, "
                f"grad_x_vdep_rel {row['grad_x_vdep_rel']:.3f}, grad_v_rel {row['grad_v_rel']:.3f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=["all", "train", "ensemble", "accuracy"], default="all")
    ap.add_argument("--n-train", type=int, default=2**17)
    ap.add_argument("--preset", default="demo", help="dp-mock preset of the accuracy part")
    ap.add_argument("--n-eval", type=int, default=2**11)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="FlowConfig override of the p(v|x) flow (repeatable), e.g. --set n_epochs=96",
    )
    ap.add_argument("--solvers", default="adaptive,rk4:2,rk4:3,rk4:4,rk4:8,midpoint:4")
    args = ap.parse_args()
    n_steps = 10 if args.quick else 30
    print(f"jax {jax.__version__}, devices {jax.devices()}")
    if args.part in ("all", "train"):
        print("| net (width×blocks, batch) | JAX samples/s | PyTorch samples/s | JAX/PyTorch |")
        print("|---|---|---|---|")
        for width, depth, batch in [(128, 4, 4096), (256, 4, 4096), (64, 2, 4096)]:
            j = jax_train_throughput(width, depth, batch, n_steps)
            try:
                tt = torch_train_throughput(width, depth, batch, n_steps)
            except ImportError:
                tt = float("nan")
            print(f"| {width}×{depth}, {batch} | {j:,.0f} | {tt:,.0f} | {j / tt:.2f} |")
    if args.part in ("all", "ensemble"):
        print(
            "| K flows (width×blocks, batch each) | sequential samples/s | vmapped samples/s | ratio |"
        )
        print("|---|---|---|---|")
        for width, depth, batch, k in [(128, 4, 4096, 3), (128, 4, 1024, 3), (64, 3, 2048, 4)]:
            seq, vec = jax_ensemble_throughput(width, depth, batch, n_steps, k)
            print(f"| {k} × {width}×{depth}, {batch} | {seq:,.0f} | {vec:,.0f} | {vec / seq:.2f} |")
    if args.part in ("train", "ensemble"):
        return
    try:
        import dp_mock  # noqa: F401
    except ImportError:
        print("dp_mock not importable: p(v|x) accuracy skipped")
        return
    cfg = dp_flows.FlowConfig(**RECOMMENDED_CONDITIONAL)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg.to_dict():
            ap.error(f"--set {item}: FlowConfig has no field {key!r}")
        # A TOML literal (true, 96, 2e-3, "auto"); a bare word is a string (whiten=scalar).
        # FlowConfig is strict, so a value of the wrong type is refused, not coerced.
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value
        try:
            cfg = cfg.replace(**{key: parsed})
        except ValueError as err:
            ap.error(f"--set {item}: {err}")
    if args.quick:
        cfg = cfg.replace(n_epochs=min(cfg.n_epochs, 8))
    with tempfile.TemporaryDirectory(prefix="bench-flows-") as tmp:
        conditional_accuracy(
            args.n_train, args.n_eval, cfg, args.solvers.split(","), tmp, args.preset
        )


# The p(v|x) FlowConfig this benchmark measures by default (the one recommended for the demo).
RECOMMENDED_CONDITIONAL = {
    "width": 96,
    "depth": 3,
    "batch_size": 4096,
    "n_epochs": 96,
    "learning_rate": 3e-3,
    "ema_decay": 0.999,
    "fixed_steps": 4,
}


if __name__ == "__main__":
    main()
