"""How well can a catalogue's velocities fix the slope of the velocity dispersion? (Fisher bound)

For an isotropic system the x-dependence of p(v|x) that the conditional method turns into a
force is, to leading order, the slope of the dispersion, d ln σ/dr. This script asks how well
*any* estimator can know that slope from the catalogue's stars, by the Cramér–Rao bound of a
model that is as rigid as one dares: ln σ(r) = a + Σ_k c_k r^(2k), k = 1..K, with p(v|x) a
scale family p₀(v/σ(r))/σ(r)³ around the truth. The score of one star for ln σ is

    s = −3 − v·∇ᵥ ln p(v|x)   (the shape known: the truth's ∇ᵥ ln p)
    s = |v|²/σ² − 3           (a moment estimator: only the dispersion used),

so the Fisher matrix is Σ_i Var(s) f(r_i) f(r_i)ᵀ with f = (1, r², …, r^(2K)), and the bound on
the slope at radius r is the propagated standard deviation of Σ_k 2k c_k r^(2k−1), printed
relative to the truth's slope (from its velocity moments). A flexible network of x has more
directions to be wrong in than K + 1 coefficients of r, so its error is larger than this.

Usage:
    .venv/bin/python benchmarks/information_bound.py CATALOG.h5 [--terms 1 2 3]
        [--radii 1 2 4 7] [--fraction 0.75]

CATALOG.h5 is a dp-mock catalogue of an isotropic system (its /truth group); ``--fraction``
is the share of the stars a fit learns from (0.75: the flows' default training split).
"""

from __future__ import annotations

import argparse

import dp_mock
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("catalog")
    ap.add_argument("--terms", nargs="+", type=int, default=[1, 2, 3], help="K values")
    ap.add_argument("--radii", nargs="+", type=float, default=[1.0, 2.0, 4.0, 7.0])
    ap.add_argument("--fraction", type=float, default=0.75, help="share of stars fitted")
    args = ap.parse_args()
    if not 0.0 < args.fraction <= 1.0:
        ap.error(f"--fraction must be in (0, 1], got {args.fraction}")
    if min(args.terms) < 1 or min(args.radii) <= 0.0:
        ap.error("--terms must be >= 1 and --radii > 0")
    stars, truth = dp_mock.read_catalog(args.catalog), dp_mock.load_truth(args.catalog)
    x, v = np.asarray(stars["x"], float), np.asarray(stars["v"], float)
    r = np.linalg.norm(x, axis=1)
    sigma_r2, sigma_t2, _ = truth.velocity_moments(r)
    if not np.allclose(sigma_r2, sigma_t2, rtol=1e-9):
        raise SystemExit("the catalogue's system is anisotropic: this bound is for isotropic ones")
    _, grad_v = truth.grad_log_p_v_given_x(x, v)
    scores = {
        "shape known": -3.0 - np.sum(v * grad_v, axis=1),
        "moments only": np.sum(v * v, axis=1) / sigma_r2 - 3.0,
    }
    radii = np.asarray(args.radii)
    h = 1e-3
    s_plus, _, _ = truth.velocity_moments(radii + h)
    s_minus, _, _ = truth.velocity_moments(radii - h)
    true_slope = 0.25 * (np.log(s_plus) - np.log(s_minus)) / h  # d ln σ/dr = ½ d ln σ²/dr
    n_eff = args.fraction * len(r)
    print(f"{len(r)} stars ({n_eff:.0f} fitted); true d ln σ/dr at r = {list(args.radii)}: "
          + " ".join(f"{s:.4f}" for s in true_slope) + " per kpc")  # fmt: skip
    for name, s in scores.items():
        var_s = float(np.var(s))
        print(f"\n{name}: Var(score) = {var_s:.2f} per star (6 for a Gaussian's moments)")
        for k in args.terms:
            feats = np.stack([r ** (2 * j) for j in range(k + 1)], axis=1)
            fisher = var_s * args.fraction * feats.T @ feats
            cov = np.linalg.inv(fisher)
            jac = np.stack([2 * j * radii ** (2 * j - 1) for j in range(k + 1)], axis=1)
            sd = np.sqrt(np.einsum("ri,ij,rj->r", jac, cov, jac))
            print(f"  ln σ = a + {k} term(s) in r²: σ(slope)/|slope| = "
                  + " ".join(f"{q:.3f}" for q in sd / np.abs(true_slope)))  # fmt: skip


if __name__ == "__main__":
    main()
