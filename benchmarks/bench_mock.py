"""Benchmark dp-mock: the paper-scale catalogue (2²² observed stars, 128³ dust) vs plain NumPy.

Usage:  .venv/bin/python benchmarks/bench_mock.py [--numpy-chunks 2]

Each part runs in its own subprocess so that its peak memory (ru_maxrss) is its own:
1. ``numba``: ``dp_mock.generate_catalog(preset("paper"))`` end to end (JIT cache warm: run once
   before, e.g. by the test suite; the first-ever run adds compile time), HDF5 write included.
2. ``numpy``: the same steps in plain vectorised NumPy (inverse-CDF positions, Gaussian
   magnitudes, the dust-free cut, the same exact cell-by-cell extinction with early stop,
   rejection-sampled velocities, selection), on the first ``--numpy-chunks`` chunks of 2²¹
   drawn stars; its time per drawn star is scaled to the paper run's number of drawn stars.
   The Numba path is timed on the same chunks too, for a like-for-like ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHUNK = 2**21


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def part_numba() -> dict:
    import h5py
    from dp_mock import generate_catalog, preset

    cfg = preset("paper")
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        path = generate_catalog(cfg, Path(tmp) / "catalog.h5", progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        with h5py.File(path) as f:
            n_drawn = int(f["truth"].attrs["n_drawn"])
            size_mb = path.stat().st_size / 2**20
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_mb": _peak_mb(),
        "n_drawn": n_drawn,
        "file_mb": size_mb,
    }


def _np_trilinear(rho: np.ndarray, lo: float, dx: float, p: np.ndarray) -> np.ndarray:
    n = rho.shape[0]
    f = (p - lo) / dx
    i0 = np.floor(f)
    t = f - i0
    i0 = i0.astype(np.int64) % n
    i1 = (i0 + 1) % n
    out = np.zeros(len(p))
    for a, wa in ((i0[:, 0], 1 - t[:, 0]), (i1[:, 0], t[:, 0])):
        for b, wb in ((i0[:, 1], 1 - t[:, 1]), (i1[:, 1], t[:, 1])):
            for c, wc in ((i0[:, 2], 1 - t[:, 2]), (i1[:, 2], t[:, 2])):
                out += rho[a, b, c] * wa * wb * wc
    return out


def np_extinction(rho, lo, dx, x, budget):
    """Exact cell-wise extinction (Gauss-Legendre 2 per cell segment), vectorised over rays."""
    d = np.linalg.norm(x, axis=1)
    u = x / np.where(d > 0, d, 1.0)[:, None]
    g = u / dx
    f0 = -lo / dx
    with np.errstate(divide="ignore"):
        frac = np.where(g > 0, math.floor(f0) + 1 - f0, f0 - math.floor(f0))
        frac = np.where(frac > 0, frac, 1.0)
        nxt = np.where(g != 0, frac / np.abs(g), np.inf)
        step = np.where(g != 0, 1.0 / np.abs(g), np.inf)
    t = np.zeros(len(x))
    acc = np.zeros(len(x))
    active = np.flatnonzero(d > 0)
    glo, ghi = 0.5 - 0.5 / math.sqrt(3), 0.5 + 0.5 / math.sqrt(3)
    while active.size:
        ta, nx = t[active], nxt[active]
        t1 = np.minimum(nx.min(axis=1), d[active])
        h = t1 - ta
        ua = u[active]
        pa = (ta + glo * h)[:, None] * ua
        pb = (ta + ghi * h)[:, None] * ua
        acc[active] += 0.5 * h * (_np_trilinear(rho, lo, dx, pa) + _np_trilinear(rho, lo, dx, pb))
        axis = np.argmin(nx, axis=1)
        rows = np.arange(len(active))
        nx[rows, axis] += step[active][rows, axis]
        nxt[active] = nx
        t[active] = t1
        active = active[(t1 < d[active]) & (acc[active] < budget[active])]
    return acc


def np_chunk(rng: np.random.Generator, truth, n: int) -> int:
    cfg = truth.config
    u = rng.random(n)
    w = (u * truth.plummer.mass_fraction_max) ** (2 / 3)
    r = cfg.b * np.sqrt(w / (1 - w))
    cos_t = 2 * rng.random(n) - 1
    phi = 2 * np.pi * rng.random(n)
    sin_t = np.sqrt(1 - cos_t**2)
    x = r[:, None] * np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1)
    mag = cfg.mag_mean + cfg.mag_std * rng.standard_normal(n)
    mu = 5 * np.log10(r * 100)
    budget = cfg.m_max - mag - mu
    bright = np.flatnonzero(budget > 0)
    dust = truth.dust
    a = np_extinction(dust.rho, -dust.extent, dust.dx, x[bright], budget[bright])
    keep = a < budget[bright]
    idx, a = bright[keep], a[keep]
    xs = x[idx]
    v_esc = np.sqrt(2 * cfg.gm / np.sqrt(np.sum(xs**2, axis=1) + cfg.b**2))
    q = np.empty(len(idx))
    todo = np.arange(len(idx))
    gmax = (2 / 9) * (7 / 9) ** 3.5
    while todo.size:
        qq, yy = rng.random(todo.size), rng.random(todo.size) * gmax
        ok = yy < qq**2 * (1 - qq**2) ** 3.5
        q[todo[ok]] = qq[ok]
        todo = todo[~ok]
    ct = 2 * rng.random(len(idx)) - 1
    ph = 2 * np.pi * rng.random(len(idx))
    st = np.sqrt(1 - ct**2)
    v = (q * v_esc)[:, None] * np.stack([st * np.cos(ph), st * np.sin(ph), ct], axis=1)
    from scipy.special import ndtr

    s = ndtr((cfg.m_max - cfg.mag_mean - mu[idx] - a) / cfg.mag_std)
    assert v.shape == xs.shape and s.shape == a.shape
    return len(idx)


def part_numpy(n_chunks: int) -> dict:
    from dp_mock import Truth, preset
    from dp_mock._catalog import draw_chunk

    truth = Truth(preset("paper"))
    rng = np.random.default_rng(0)
    draw_chunk(truth, 0, 1000)  # load the JIT cache outside the timing
    t0, c0 = time.perf_counter(), time.process_time()
    n_obs = sum(np_chunk(rng, truth, CHUNK) for _ in range(n_chunks))
    t_np, c_np = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    n_obs_nb = sum(len(draw_chunk(truth, c, CHUNK)["index"]) for c in range(n_chunks))
    t_nb, c_nb = time.perf_counter() - t0, time.process_time() - c0
    return {
        "numpy_cpu_s": c_np,
        "numba_cpu_s": c_nb,
        "numpy_s": t_np,
        "numba_s": t_nb,
        "n_drawn": n_chunks * CHUNK,
        "n_obs_np": n_obs,
        "n_obs_nb": n_obs_nb,
        "peak_mb": _peak_mb(),
    }


def _run(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["numba", "numpy"])
    ap.add_argument("--numpy-chunks", type=int, default=2)
    args = ap.parse_args()
    if args.part == "numba":
        print(json.dumps(part_numba()))
        return
    if args.part == "numpy":
        print(json.dumps(part_numpy(args.numpy_chunks)))
        return
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    nb = _run("--part", "numba")
    print(
        f"numba  paper catalogue: {nb['wall_s']:.1f} s wall ({nb['cpu_s']:.1f} s CPU), peak RSS {nb['peak_mb']:.0f} MB, "
        f"{nb['n_drawn']:,} stars drawn for 4,194,304 observed, file {nb['file_mb']:.0f} MB"
    )
    npy = _run("--part", "numpy", "--numpy-chunks", str(args.numpy_chunks))
    per_np = npy["numpy_s"] / npy["n_drawn"]
    per_nb = npy["numba_s"] / npy["n_drawn"]
    print(
        f"same {args.numpy_chunks} chunks of {CHUNK:,} drawn stars: numpy {npy['numpy_s']:.1f} s "
        f"({npy['n_obs_np']:,} observed), numba {npy['numba_s']:.2f} s ({npy['n_obs_nb']:,} "
        f"observed): ratio {per_np / per_nb:.1f}x (numpy peak RSS {npy['peak_mb']:.0f} MB)"
    )
    print(
        f"  CPU time on those chunks: numpy {npy['numpy_cpu_s']:.1f} s, numba "
        f"{npy['numba_cpu_s']:.2f} s: CPU ratio {npy['numpy_cpu_s'] / npy['numba_cpu_s']:.1f}x"
    )
    scaled = per_np * nb["n_drawn"]
    print(
        f"numpy scaled to the paper run ({nb['n_drawn']:,} drawn): {scaled:.0f} s "
        f"-> end-to-end ratio {scaled / nb['wall_s']:.1f}x"
    )


if __name__ == "__main__":
    main()
