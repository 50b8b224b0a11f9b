"""dp-cbe benchmark: training speed, time to 1 % acceleration error, Laplacian cost.

For each CBE variant, fit exact (oracle) Plummer gradients with the given FitConfig and report
steps/s and the wall time (compile included, accuracy checks excluded) until the median
|Δa|/|a| on fresh points inside r_max first drops below 1 %. Then time the forward-over-reverse
Laplacian against full-Hessian implementations of the same network, in the same run.

Usage: .venv/bin/python benchmarks/bench_cbe.py [--n 65536] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import dp_cbe
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from dp_cbe._fields import grad_and_laplacian
from dp_cbe._train import _fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages/dp-cbe/tests"))
import _cbe_oracle as oracle  # the closed forms the dp-cbe tests use


def bench_variant(method: str, n: int, cfg: dp_cbe.FitConfig) -> dict[str, float]:
    gs = dp_cbe.GradientSet(**oracle.gradients(method, 1, n))
    x_test, _ = oracle.sample(12345, 4096)
    a_true = -oracle.grad_potential(x_test)
    rec: dict[str, float] = {"t_check": 0.0, "t_first": float("nan"), "step_first": -1}
    t0 = time.perf_counter()
    last = [t0]
    chunk_times: list[float] = []

    def callback(step: int, model: dp_cbe._losses.CBEModel) -> None:
        now = time.perf_counter()
        chunk_times.append(now - last[0])
        tc = time.perf_counter()
        sol = dp_cbe.PotentialSolution(model, {})
        err = np.median(np.linalg.norm(sol.acceleration(x_test) - a_true, axis=1)
                        / np.linalg.norm(a_true, axis=1))  # fmt: skip
        rec[f"err@{step}"] = float(err)
        dt = time.perf_counter() - tc
        rec["t_check"] += dt
        if err < 0.01 and rec["step_first"] < 0:
            rec["step_first"] = step
            rec["t_first"] = now - t0 - (rec["t_check"] - dt)
        last[0] = time.perf_counter()

    sol = _fit(gs, method, config=cfg, seed=0, out_dir=None, progress=False, callback=callback)
    total = time.perf_counter() - t0 - rec["t_check"]
    # steps/s from the chunks after the first (which includes compilation)
    steady = chunk_times[1:] or chunk_times
    rec["steps_per_s"] = cfg.eval_every * len(steady) / sum(steady)
    rec["total_s"] = total
    d = np.log(sol.density(x_test)) - np.log(oracle.density(x_test))
    rec["ln_rho"] = float(np.median(np.abs(d)))
    rec["acc"] = rec[f"err@{cfg.n_steps}"]
    if method != "vanilla":
        truth = oracle.ln_selection if method == "selection" else oracle.ln_n
        est = sol.ln_selection if method == "selection" else sol.ln_n
        e = est(x_test) - truth(x_test)
        rec["ln_aux"] = float(np.median(np.abs(e - np.median(e))))
    return rec


def bench_laplacian(width: int, depth: int, n: int = 4096, reps: int = 5) -> dict[str, float]:
    field = dp_cbe.ScalarField(width=width, depth=depth, in_scale=4.0, out_scale=17.0,
                               key=jax.random.PRNGKey(0))  # fmt: skip
    x = jax.random.normal(jax.random.PRNGKey(1), (n, 3)) * 4.0

    def ours(p: jax.Array) -> tuple[jax.Array, jax.Array]:
        _, g, lap = grad_and_laplacian(field, p)
        return g, lap

    def full_hessian(p: jax.Array) -> tuple[jax.Array, jax.Array]:  # jacfwd(jacrev) + grad
        return jax.grad(field)(p), jnp.trace(jax.hessian(field)(p))

    def rev_rev(p: jax.Array) -> tuple[jax.Array, jax.Array]:  # reverse-over-reverse Hessian
        return jax.grad(field)(p), jnp.trace(jax.jacrev(jax.jacrev(field))(p))

    out = {}
    for name, fn in (("ours", ours), ("hessian", full_hessian), ("rev_rev", rev_rev)):
        f = eqx.filter_jit(jax.vmap(fn))
        jax.block_until_ready(f(x))
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            jax.block_until_ready(f(x))
            ts.append(time.perf_counter() - t)
        out[name] = min(ts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2**16, help="gradient samples per variant")
    ap.add_argument("--quick", action="store_true", help="fewer steps (smoke run)")
    args = ap.parse_args()
    steps = {"vanilla": 600, "selection": 2000, "conditional": 2000}
    print(f"jax {jax.__version__}, devices {jax.devices()}, n = {args.n}")
    for method, n_steps in steps.items():
        n_steps = n_steps // 4 if args.quick else n_steps
        cfg = dp_cbe.FitConfig(n_steps=n_steps, eval_every=100, checkpoint_every=100)
        r = bench_variant(method, args.n, cfg)
        aux = f", ln_aux {r['ln_aux']:.4f}" if "ln_aux" in r else ""
        print(f"{method:12s} steps/s {r['steps_per_s']:.2f}  total {r['total_s']:.1f} s "
              f"({n_steps} steps)  first <1% at step {r['step_first']} after "
              f"{r['t_first']:.1f} s  final acc {r['acc']:.4f}, |dln rho| {r['ln_rho']:.4f}{aux}")  # fmt: skip
    for width, depth in ((64, 2), (128, 2)):
        t = bench_laplacian(width, depth)
        print(f"laplacian (4096 pts, width {width}, depth {depth}): ours {t['ours'] * 1e3:.1f} ms, "
              f"jax.hessian {t['hessian'] * 1e3:.1f} ms (ratio {t['hessian'] / t['ours']:.2f}x), "
              f"jacrev∘jacrev {t['rev_rev'] * 1e3:.1f} ms (ratio {t['rev_rev'] / t['ours']:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
