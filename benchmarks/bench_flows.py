"""dp-flows benchmark: training throughput (JAX vs plain PyTorch, same net and loss), gradient
throughput of ∇ ln p(v|x), and accuracy of ∇ ln p(v|x) on a Plummer sample (if dp_mock).

    .venv/bin/python benchmarks/bench_flows.py [--quick]

PyTorch is a benchmark-only dependency (`.venv/bin/pip install torch==2.13.0`).
"""

from __future__ import annotations

import argparse
import itertools
import time

import dp_flows
import equinox as eqx
import jax
import numpy as np
from dp_flows._fields import ResNetField
from dp_flows._train import make_optimizer, make_step


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


def plummer_accuracy(n_train: int, n_eval: int, config: dp_flows.FlowConfig) -> None:
    import dp_mock

    p = dp_mock.PlummerSphere()
    x, v = p.sample(0, n_train)
    t = time.perf_counter()
    flow = dp_flows.fit_flow(v, condition=x, config=config, seed=0, progress=False)
    t_fit = time.perf_counter() - t
    xe, ve = p.sample(1, n_eval)
    dp_flows.grad_log_prob(flow, ve[:256], xe[:256], batch_size=4096)  # compile
    t = time.perf_counter()
    gv, gx = dp_flows.grad_log_prob(flow, ve, xe, batch_size=4096, progress=False)
    t_grad = time.perf_counter() - t
    tx, tv = p.grad_log_p_v_given_x(xe, ve)
    rel_v = np.linalg.norm(gv - tv, axis=1) / np.linalg.norm(tv, axis=1)
    rel_x = np.linalg.norm(gx - tx, axis=1) / np.linalg.norm(tx, axis=1)
    r = np.linalg.norm(xe, axis=1)
    print(f"\nPlummer p(v|x): {n_train} stars, config {config.to_dict()}")
    print(
        f"fit {t_fit:.1f} s; grad ∇ln p(v|x): {n_eval / t_grad:.0f} samples/s "
        f"({n_eval} points, batch 4096)"
    )
    print("| r bin (kpc) | n | median rel. err ∇_v ln p | median rel. err ∇_x ln p |")
    print("|---|---|---|---|")
    edges = [0, 2, 4, 6, 8]
    for lo, hi in itertools.pairwise(edges):
        m = (r >= lo) & (r < hi)
        print(f"| {lo}–{hi} | {m.sum()} | {np.median(rel_v[m]):.3f} | {np.median(rel_x[m]):.3f} |")
    print(f"| all | {len(r)} | {np.median(rel_v):.3f} | {np.median(rel_x):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n-train", type=int, default=2**17)
    ap.add_argument("--epochs", type=int, default=24)
    args = ap.parse_args()
    n_steps = 10 if args.quick else 30
    print(f"jax {jax.__version__}, devices {jax.devices()}")
    print("| net (width×blocks, batch) | JAX samples/s | PyTorch samples/s | JAX/PyTorch |")
    print("|---|---|---|---|")
    for width, depth, batch in [(128, 4, 4096), (256, 4, 4096), (64, 2, 4096)]:
        j = jax_train_throughput(width, depth, batch, n_steps)
        try:
            tt = torch_train_throughput(width, depth, batch, n_steps)
        except ImportError:
            tt = float("nan")
        print(f"| {width}×{depth}, {batch} | {j:,.0f} | {tt:,.0f} | {j / tt:.2f} |")
    try:
        import dp_mock  # noqa: F401
    except ImportError:
        print("dp_mock not importable: Plummer accuracy skipped")
        return
    cfg = dp_flows.FlowConfig(
        width=128, depth=4, n_epochs=args.epochs, batch_size=4096, learning_rate=2e-3, ot=False
    )
    plummer_accuracy(args.n_train, 8192 if args.quick else 32768, cfg)


if __name__ == "__main__":
    main()
