"""Median Δln ρ of fitted potentials against a mock's truth, per radial bin, side by side.

For comparing fits that the report does not put in one table: an ensemble's per-member fits
(``potentials/conditional_member<k>``), refits of one gradient set with other seeds
(``dp-cbe fit ... --seed S --out DIR``), runs with other settings. Every model is evaluated on
the same points: uniform in r < r_max (the truth's), kept where S_true > 0.01 (the report's
sampling, docs/design.md §8), binned in equal-width radial bins.

Usage:
    .venv/bin/python benchmarks/eval_fits.py RUN/mock/catalog.h5 MODEL_DIR [MODEL_DIR ...]
        [--bins 8] [--n 16384] [--seed 0]

Each MODEL_DIR is a dp-cbe model folder (``RUN/potentials/<name>/model`` in a pipeline run).
With several models it also prints their mean and standard deviation per bin (the spread), and
the error of the averaged potential Φ̄ = mean Φ_k (so ρ̄ = mean ρ_k): what fitting one gradient
set K times and averaging the fits would report.
"""

from __future__ import annotations

import argparse

import dp_cbe
import dp_mock
import numpy as np

from deep_potential._metrics import uniform_ball


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("catalog", help="the mock's catalog.h5 (its /truth group)")
    ap.add_argument("models", nargs="+", help="dp-cbe model folders")
    ap.add_argument("--bins", type=int, default=8, help="equal-width radial bins in r < r_max")
    ap.add_argument("--n", type=int, default=16384, help="evaluation points")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    truth = dp_mock.load_truth(args.catalog)
    rng = np.random.default_rng(args.seed)
    x = np.empty((0, 3))
    while len(x) < args.n:  # the report's sampler, kept until n points pass the cut
        pts = uniform_ball(rng, 4 * args.n, truth.r_max)
        x = np.concatenate([x, pts[truth.selection(pts) > 0.01]])
    x = x[: args.n]
    which = np.minimum((np.linalg.norm(x, axis=1) / truth.r_max * args.bins).astype(int),
                       args.bins - 1)  # fmt: skip
    ln_rho_true = np.log(truth.density(x))
    width = truth.r_max / args.bins
    print(f"median Δln ρ in {args.bins} bins of {width:.2f} kpc, {len(x)} points (S_true > 0.01)")
    rows, rhos = [], []
    for path in args.models:
        sol = dp_cbe.load_model(path)
        rhos.append(np.asarray(sol.density(x), np.float64))
        d = np.log(np.maximum(rhos[-1], 1e-300)) - ln_rho_true
        rows.append([float(np.median(d[which == b])) for b in range(args.bins)])
        print(f"{path[-48:]:>48s}  " + " ".join(f"{m:+.3f}" for m in rows[-1]))
    if len(rows) > 1:
        a = np.asarray(rows)
        print(f"{'mean':>48s}  " + " ".join(f"{m:+.3f}" for m in a.mean(axis=0)))
        print(f"{'std':>48s}  " + " ".join(f"{m:.3f}" for m in a.std(axis=0, ddof=1)))
        d = np.log(np.maximum(np.mean(rhos, axis=0), 1e-300)) - ln_rho_true
        avg = [float(np.median(d[which == b])) for b in range(args.bins)]
        print(f"{'averaged potential':>48s}  " + " ".join(f"{m:+.3f}" for m in avg))


if __name__ == "__main__":
    main()
