"""dp-cbe step cost: the negative-density term on every k-th sample vs on every sample.

A training step of an ungrouped fit evaluates ∇Φ at every sample of the minibatch for the CBE
residual and, for the negative-density penalty, ∇²Φ. `FitConfig.density_every` = k evaluates
the latter at every k-th sample only (the default, 8; 1 is the behaviour before it). This
script times `dp_cbe.fit` for a fixed number of steps (no early stop) with k = 1 and with the
default, alternating the two, on exact Plummer gradients (the tests' closed forms), for the
conditional (Φ and ln n networks) and vanilla (Φ only) variants, and prints process CPU time
per 1,000 steps and the ratio. The first fit of each setting compiles; the figures are the
minimum over ``--repeats`` fits after that one. Check ``uptime`` first: the ratio is only
meaningful on a quiet machine.

Usage:
    .venv/bin/python benchmarks/bench_cbe_step.py [--steps 1000] [--repeats 2] [--n 32768]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import dp_cbe

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages/dp-cbe/tests"))
import _cbe_oracle as plummer  # closed forms the dp-cbe tests use


def cpu_seconds(gs: dp_cbe.GradientSet, method: str, steps: int, every: int) -> float:
    """Process CPU time of one fit of ``steps`` steps (compile included)."""
    cfg = dp_cbe.FitConfig(n_steps=steps, early_stop=False, eval_every=steps // 2,
                           checkpoint_every=steps // 2, density_every=every)  # fmt: skip
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dp_cbe.ConvergenceWarning)
        dp_cbe.fit(gs, method, config=cfg, seed=0, progress=False)
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--n", type=int, default=2**15, help="gradient samples")
    ap.add_argument("--methods", nargs="+", default=["conditional", "vanilla"])
    args = ap.parse_args()
    if args.steps < 2 or args.repeats < 1:
        ap.error("--steps must be >= 2 and --repeats >= 1")
    print(f"load average {os.getloadavg()[0]:.2f}; {args.steps} steps, batch 1024, "
          f"{args.n} samples")  # fmt: skip
    default = dp_cbe.FitConfig().density_every
    for method in args.methods:
        gs = dp_cbe.GradientSet(**plummer.gradients(method, 1, args.n))
        best: dict[int, float] = {}
        for every in (1, default):  # compile both first
            cpu_seconds(gs, method, args.steps, every)
        for _ in range(args.repeats):
            for every in (1, default):
                t = cpu_seconds(gs, method, args.steps, every)
                best[every] = min(best.get(every, float("inf")), t)
        per_k = {k: 1000 * t / args.steps for k, t in best.items()}
        print(f"{method:12s} density_every=1: {per_k[1]:6.1f} s CPU / 1000 steps   "
              f"density_every={default}: {per_k[default]:6.1f}   "
              f"ratio {per_k[1] / per_k[default]:.2f}x   (load {os.getloadavg()[0]:.2f})",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
