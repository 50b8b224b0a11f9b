"""The force a conditional flow's gradients imply, shell by shell, under the potential fit's loss.

The conditional CBE residual at one position x with K velocities v₁…v_K is

    r_k = ∇Φ·∇ᵥ ln p_k − v_k·(∇ₓ ln p_k + a),    a = ∇ln n(x) free,

so with ∇Φ = c ∇Φ_true the best a is a 3×3 least-squares solve per position, and the loss left
over is a function of the one number c. Its minimiser c* in a radial shell is the force that the
flow's gradients in that shell ask for, as a fraction of the truth: c* < 1 biases the fitted
density low there whatever the potential fit does. This splits a conditional run's density
error into its two sources — the flow (c* ≠ 1) and the fit (the fitted force differs from c*) —
at the observed stars' positions (the positions the pipeline fits at), each with K velocities
from the mock's TRUE p(v|x), every residual divided by the fit's scale s (``dp_cbe.
residual_scales``) and scored by the fit's ``asinh`` term and by least squares (``l2``).

With the mock's exact gradients (``--exact``) c* = 1 in every shell: the script's own check.

Two tests that tell a flow's estimator bias from the noise of the data (both 2026-11-30):

- ``FLOW_DIR`` more than once (flows trained on the same catalogue with other seeds): if their
  c* agree, the error is set by the stars, not by the training run;
- ``--write-synthetic OUT.h5``: a copy of the catalogue whose velocities are drawn from the
  first flow (the stars' positions kept). Train a flow on it with the same settings
  (``dp-flows fit OUT.h5 --flow conditional --config C --seed S --out DIR``) and pass that DIR
  with ``--corrected DIR``: in the first flow's world the truth is the first flow, so if flows
  shrink the x-dependence by a factor λ, the second flow's c* is about λ times the first's and
  the bootstrap-corrected gradients 2∇ln p₁ − ∇ln p₂ give c* ≈ 1.

``--split`` splits a flow's c* between its two gradients: it also scores the flow's ∇ₓ ln p
with the exact ∇ᵥ ln p, and the exact ∇ₓ ln p with the flow's ∇ᵥ ln p. Noise in ∇ᵥ ln p, the
regressor that multiplies ∇Φ, attenuates c* towards 0 (errors in variables); noise in ∇ₓ ln p
does not bias a least-squares c*. A shared error in the flow's shape moves either term either
way; with several FLOW_DIRs, ``--mean`` scores their averaged gradients too (an ensemble
removes what is noise and keeps what is shared). ``--flow-velocities`` draws the velocities
from the first flow, as the pipeline's gradient stage does, instead of the true p(v|x).
``--weighting`` scores under another of the fit's residual weightings (``FitConfig.weighting``).

Usage:
    .venv/bin/python benchmarks/force_scale.py RUN_DIR [FLOW_DIR ...] [--exact] [--split]
        [--mean] [--flow-velocities] [--weighting scale|shell|none] [--corrected DIR]
        [--positions 8192] [--k 8] [--seed 5] [--write-synthetic OUT.h5]

RUN_DIR is a ``deep-potential run`` folder of a mock (``mock/catalog.h5`` with its truth);
without FLOW_DIR its ``flows/conditional/model`` is scored.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
from pathlib import Path

import dp_flows
import dp_mock
import h5py
import jax
import numpy as np
from dp_cbe._weights import weighting_scales

SHELLS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 20.0)
SCALES = np.linspace(0.3, 1.7, 141)  # the grid of c


def profiled_parts(x, v, dx, dv, g_true, s, k):
    """(r₁, r₀) with r(c) = c r₁ − r₀ the residuals for ∇Φ = c ∇Φ_true, a solved per position.

    The numpy twin of `dp_cbe._losses.profiled_terms` (weights 1/s², the same relative ridge)
    for a ∇Φ given at the samples: t = c ∇Φ·∇ᵥ ln p − v·∇ₓ ln p is linear in c, so is the
    least-squares a, and so the residual; one solve per position serves every c.
    """
    p = len(x) // k
    wg, sg = v.reshape(p, k, 3), (1.0 / s**2).reshape(p, k)
    gram = np.einsum("pki,pk,pkj->pij", wg, sg, wg)
    gram += 1e-6 * np.trace(gram, axis1=1, axis2=2)[:, None, None] / 3.0 * np.eye(3) + 1e-30

    def part(t):
        tg = t.reshape(p, k)
        rhs = np.einsum("pki,pk,pk->pi", wg, sg, tg)
        a = np.linalg.solve(gram, rhs[..., None])[..., 0]
        return (tg - np.einsum("pki,pi->pk", wg, a)).reshape(-1)

    return part(np.sum(g_true * dv, axis=1)), part(np.sum(v * dx, axis=1))


def shell_minimisers(x, v, dx, dv, g_true, k, weighting="scale") -> list[str]:
    """'lo-hi: c*(asinh)/c*(l2) (positions)' for every shell with ≥ 30 positions."""
    s = weighting_scales(x, v, dx, dv, weighting)
    r1, r0 = profiled_parts(x, v, dx, dv, g_true, s, k)
    res = SCALES[:, None] * r1 - r0  # (n_c, n)
    r = np.linalg.norm(x, axis=1)
    out = []
    for lo, hi in itertools.pairwise(SHELLS):
        m = (r >= lo) & (r < hi)
        if m.sum() < 30 * k:
            continue
        asinh = np.arcsinh(np.abs(res[:, m]) / s[m]).sum(axis=1)
        l2 = ((res[:, m] / s[m]) ** 2).sum(axis=1)
        out.append(f"{lo:g}-{hi:g}: {SCALES[asinh.argmin()]:.2f}/{SCALES[l2.argmin()]:.2f} "
                   f"({m.sum() // k})")  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a deep-potential run folder of a mock")
    ap.add_argument("flows", nargs="*", help="conditional flow dirs (default: the run's)")
    ap.add_argument("--exact", action="store_true", help="also score the mock's exact gradients")
    ap.add_argument("--flow-velocities", action="store_true",
                    help="draw the velocities from the (first) flow, as the pipeline does")  # fmt: skip
    ap.add_argument("--mean", action="store_true", help="also the mean of the flows' gradients")
    ap.add_argument("--split", action="store_true", help="also each flow's ∇ₓ / ∇ᵥ alone")
    ap.add_argument("--corrected", help="flow trained on --write-synthetic's catalogue")
    ap.add_argument("--positions", type=int, default=8192, help="stars' positions drawn")
    ap.add_argument("--k", type=int, default=8, help="true velocities per position")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--weighting", choices=("scale", "shell", "none"), default="scale",
                    help="the fit's residual scale s (scale: per sample, as dp-cbe's default)")  # fmt: skip
    ap.add_argument("--write-synthetic", metavar="OUT", help="write the first flow's world")
    args = ap.parse_args()
    if args.mean and len(args.flows) < 2:
        ap.error("--mean needs two or more FLOW_DIRs (it averages their gradients)")
    if args.positions < 1 or args.k < 4:
        ap.error("--positions must be >= 1 and --k >= 4 (a per-position solve needs 4 velocities)")
    catalog = f"{args.run}/mock/catalog.h5"
    for path in [catalog, *args.flows, *([args.corrected] if args.corrected else [])]:
        if not Path(path).exists():
            ap.error(f"{path} does not exist (RUN must be a deep-potential run folder of a mock)")
    truth, stars = dp_mock.load_truth(catalog), dp_mock.read_catalog(catalog)
    flows = args.flows or [f"{args.run}/flows/conditional/model"]
    xs = np.asarray(stars["x"], np.float64)
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(xs), min(args.positions, len(xs)), replace=False)
    x = np.repeat(xs[pick], args.k, axis=0)
    if args.flow_velocities:
        v_kms = np.asarray(dp_flows.sample(jax.random.key(args.seed + 1), dp_flows.load_flow(
            flows[0]), len(x), condition=x, progress=False), np.float64)  # fmt: skip
        # a flow's tail reaches past the escape speed, where the truth has no gradient: such
        # positions are dropped whole (their per-position solve needs all K velocities)
        bound = np.isfinite(truth.log_p_v_given_x(x, v_kms)).reshape(-1, args.k).all(1)
        keep = np.repeat(bound, args.k)
        x, v_kms = x[keep], v_kms[keep]
        print(f"{np.sum(~bound)} of {len(bound)} positions dropped: a flow velocity past the "
              "escape speed")  # fmt: skip
    else:
        v_kms = truth.sample_velocities(args.seed + 1, x)
    v = v_kms / 100.0  # dp-cbe's internal units: kpc, 100 km/s
    g_true = -truth.acceleration(x) / 1e4
    print(f"c* = the force the gradients ask for / the truth, per shell: asinh/l2 (positions); "
          f"{len(pick)} positions x {args.k} velocities from "
          f"{'the first flow' if args.flow_velocities else 'the true p(v|x)'}")  # fmt: skip

    def grads(path: str) -> tuple[np.ndarray, np.ndarray]:
        dv, dx = dp_flows.grad_log_prob(dp_flows.load_flow(path), v_kms, x, progress=False)
        return np.asarray(dx, np.float64), np.asarray(dv, np.float64) * 100.0

    ex, ev = truth.grad_log_p_v_given_x(x, v_kms)
    ex, ev = np.asarray(ex, np.float64), np.asarray(ev, np.float64) * 100.0

    def row(label: str, dx: np.ndarray, dv: np.ndarray, split: bool = False) -> None:
        """Print c* per shell for (dx, dv); with ``split`` also for each with the other exact."""
        print(
            f"{label[-40:]:>40s}:  "
            + "  ".join(shell_minimisers(x, v, dx, dv, g_true, args.k, args.weighting))
        )
        if split:
            row("  its ∇ₓ, exact ∇ᵥ", dx, ev)
            row("  exact ∇ₓ, its ∇ᵥ", ex, dv)

    if args.exact:
        row("exact", ex, ev)
    all_grads = [grads(path) for path in flows]
    for path, (dx, dv) in zip(flows, all_grads, strict=True):
        row(path, dx, dv, args.split)
    if args.mean:
        mean_dx, mean_dv = (np.mean(a, axis=0) for a in zip(*all_grads, strict=True))
        row(f"mean of {len(flows)} flows", mean_dx, mean_dv, args.split)
    if args.corrected:
        dx2, dv2 = grads(args.corrected)
        (dx, dv) = all_grads[0]
        row("2 x first - " + args.corrected[-28:], 2 * dx - dx2, 2 * dv - dv2)
    if args.write_synthetic:
        shutil.copyfile(catalog, args.write_synthetic)
        flow = dp_flows.load_flow(flows[0])
        with h5py.File(args.write_synthetic, "r+") as f:
            pos = np.asarray(f["stars/x"], np.float64)
            draw = dp_flows.sample(jax.random.key(args.seed), flow, len(pos), condition=pos,
                                   progress=False)  # fmt: skip
            f["stars/v"][...] = np.asarray(draw, np.float64)
        print(f"wrote {args.write_synthetic}: the stars' positions, velocities from {flows[0]}")


if __name__ == "__main__":
    main()
