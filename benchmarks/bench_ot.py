"""dp-ot benchmark: exact 256x256 assignment vs scipy and POT, batched threads, precompute.

Run: .venv/bin/python benchmarks/bench_ot.py [--quick]
Per-problem figures are CPU time of the calling thread (time.thread_time) so that other jobs on
a shared machine do not inflate them; thread scaling and precompute are wall-clock.
All solvers see identical instances in one run; every dp-ot optimum is checked against scipy's.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import dp_ot
import numpy as np
import ot
import scipy.optimize
from dp_ot import _core


def plummer_positions(rng: np.random.Generator, n: int, b: float = 10.0, r_max: float = 8.0):
    """Plummer-sphere positions truncated at r_max (inverse-CDF of the enclosed mass)."""
    m_max = r_max**3 / (r_max**2 + b**2) ** 1.5
    u = rng.uniform(0, m_max, n)
    r = b / np.sqrt(u ** (-2.0 / 3.0) - 1.0)
    d = rng.normal(size=(n, 3))
    return r[:, None] * d / np.linalg.norm(d, axis=1, keepdims=True)


def standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / x.std(0)


def blocks(case: str, count: int, n: int = 256, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = (
        rng.normal(size=(count * n, 3)) if case == "gaussian" else plummer_positions(rng, count * n)
    )
    x1 = standardize(data).reshape(count, n, 3)
    x0 = rng.normal(size=(count, n, 3))
    return ((x1[:, :, None] - x0[:, None]) ** 2).sum(-1)


def per_problem_ms(fn, costs: np.ndarray, repeat: int = 1) -> float:
    """CPU time of this thread per problem (robust to other jobs sharing the cores), min over
    repeats; the process CPU time of the same repeats is kept in PROCESS_MS for the report."""
    best = best_proc = np.inf
    for _ in range(repeat):
        t, tp = time.thread_time(), time.process_time()
        for c in costs:
            fn(c)
        best = min(best, (time.thread_time() - t) / len(costs))
        best_proc = min(best_proc, (time.process_time() - tp) / len(costs))
    PROCESS_MS.append(best_proc * 1e3)
    return best * 1e3


PROCESS_MS: list[float] = []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer problems, smaller N")
    args = parser.parse_args()
    k = 10 if args.quick else 40
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"dp-ot SIMD: {_core.simd_level()}"
    )
    u = np.full(256, 1 / 256)
    for case in ("gaussian", "plummer"):
        costs = blocks(case, k)
        for c in costs:  # exactness: same optimum as scipy
            r, s = scipy.optimize.linear_sum_assignment(c)
            r2, s2 = dp_ot.linear_sum_assignment(c)
            assert abs(c[r, s].sum() - c[r2, s2].sum()) <= 1e-12 * c[r, s].sum()
        PROCESS_MS.clear()
        t_dp = per_problem_ms(dp_ot.linear_sum_assignment, costs, 5)
        _core.set_simd_enabled(False)
        t_port = per_problem_ms(dp_ot.linear_sum_assignment, costs, 5)
        _core.set_simd_enabled(True)
        t_sp = per_problem_ms(scipy.optimize.linear_sum_assignment, costs, 3)
        t_pot = per_problem_ms(lambda c: ot.emd(u, u, c), costs, 3)
        print(
            f"[{case:8s}] 256x256 ms/problem: dp-ot {t_dp:.3f} (portable {t_port:.3f}) | "
            f"scipy {t_sp:.3f} | POT {t_pot:.3f} || speed-up vs scipy {t_sp / t_dp:.1f}x "
            f"(portable {t_sp / t_port:.1f}x), vs POT {t_pot / t_dp:.1f}x"
        )
        p_dp, p_port, p_sp, p_pot = PROCESS_MS
        print(
            f"[{case:8s}]   process CPU ms/problem: dp-ot {p_dp:.3f} (portable {p_port:.3f}) | "
            f"scipy {p_sp:.3f} | POT {p_pot:.3f} || vs scipy {p_sp / p_dp:.1f}x "
            f"(portable {p_sp / p_port:.1f}x)"
        )
    costs = blocks("gaussian", 4 * k, seed=1)
    times = {}
    for threads in (1, 2):
        t = time.perf_counter()
        out = dp_ot.batch_linear_sum_assignment(costs, threads=threads)
        times[threads] = time.perf_counter() - t
        if threads == 1:
            ref = out
        assert np.array_equal(out, ref)
    print(
        f"batched ({len(costs)} x 256x256): 1 thread {len(costs) / times[1]:.0f}/s, "
        f"2 threads {len(costs) / times[2]:.0f}/s, ratio {times[1] / times[2]:.2f}x"
    )
    n = 2**16 if args.quick else 2**20
    epochs = 2
    x = standardize(np.random.default_rng(2).normal(size=(n, 3)))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        dp_ot.precompute_pairings(
            x, os.path.join(tmp, "p"), n_epochs=epochs, threads=2, progress=False
        )
        dt = (time.perf_counter() - t) / epochs
    print(
        f"precompute N=2^{int(np.log2(n))}, block 256, 2 threads: {dt:.2f} s/epoch, "
        f"projected 512 epochs: {512 * dt / 60:.1f} min "
        f"(N=2^22: {512 * dt * 4 / 3600:.2f} h)"
    )


if __name__ == "__main__":
    main()
