"""The p(v|x) flow's dispersion slope d ln σ/dr against the closed form, for an isotropic mock.

For an isotropic DF the velocity dispersion is a function of Ψ = −Φ alone (for the Plummer
sphere σ² = Ψ/6, so d ln σ/dr = ½ d ln Ψ/dr), and that slope is (up to the shape term) the
x-gradient of ln p(v|x) the potential fit turns into a force. The closed form is ½ d ln σ_r²/dr
from the mock system's own moments (``truth.system.velocity_moments``), so any isotropic
system of dp-mock works (Plummer, Hernquist). This script reads a pipeline run folder and
prints:

1. the catalogue's own ⟨v²⟩/(3 σ_r²) per 1-kpc bin (1 for an isotropic DF: the data's check);
2. the committed conditional flow's scalar whitener σ(x): the median over 64 random rays of
   d ln σ/dr, divided by the closed form, at r = 1, 2, 4, 7 kpc;
3. with ``--refit``: the same ratio for whiteners refitted on the catalogue under several
   settings (``dp_flows._whiten.fit_affine``), with their validation likelihoods;
4. with ``--batch-sizes``: the default fit with those minibatch sizes (``full``: every
   training star in every step), once per split seed in ``--seeds``.

Usage:
    .venv/bin/python benchmarks/whitener_slope.py RUN_DIR [--refit]
        [--batch-sizes 4096 32768 full --seeds 1 2 3]

RUN_DIR is a ``deep-potential run`` folder of an isotropic mock whose conditional flow uses
scalar whitening (``flows/conditional/model``, ``mock/catalog.h5``).
"""

from __future__ import annotations

import argparse
import time

import dp_flows
import dp_mock
import jax
import jax.numpy as jnp
import numpy as np
from dp_flows._flow import condition_features
from dp_flows._train import _prepare
from dp_flows._whiten import fit_affine

RADII = (1.0, 2.0, 4.0, 7.0)
WHITENER = {"mode": "scalar", "width": 16, "depth": 1, "n_steps": 3000}  # FlowConfig defaults


def true_slope(truth, r: float, h: float = 1e-3) -> float:
    """½ d ln σ_r²/dr by central differences of the system's closed-form dispersion."""
    s2 = truth.system.velocity_moments(np.array([r + h, r - h]))[0]
    return 0.5 * (np.log(s2[0]) - np.log(s2[1])) / (2 * h)


def slope_ratios(affine, c_mean, c_std, log_r: bool, truth, rays: np.ndarray) -> list[float]:
    """Median over rays of d ln σ/dr of a scalar whitener, over the closed form, per radius."""

    def ln_sigma(x):
        cs = condition_features(x[None], c_mean, c_std, log_r)
        _, lower = affine(jnp.asarray(cs, jnp.float32))
        return jnp.log(lower[0, 0, 0])

    grad = jax.jit(jax.grad(ln_sigma))
    out = []
    for r in RADII:
        fitted = np.median([float(jnp.dot(grad(jnp.asarray(r * d, jnp.float32)), d)) for d in rays])
        out.append(fitted / true_slope(truth, r))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a deep-potential run folder (isotropic mock, scalar whitening)")
    ap.add_argument("--refit", action="store_true", help="also refit whiteners (minutes)")
    ap.add_argument("--batch-sizes", nargs="*", default=[], help="e.g. 4096 32768 full")
    ap.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    args = ap.parse_args()
    catalog = f"{args.run}/mock/catalog.h5"
    stars, truth = dp_mock.read_catalog(catalog), dp_mock.load_truth(catalog)
    x, v = np.asarray(stars["x"], float), np.asarray(stars["v"], float)
    if not truth.system.isotropic:
        raise SystemExit("the run's mock is anisotropic: σ(x) is not one scalar there")
    r = np.linalg.norm(x, axis=1)
    s2r = 3.0 * truth.system.velocity_moments(r)[0]
    print("catalogue: <v²>/(3 σ_r²) per 1-kpc bin (1 for an isotropic DF)")
    for a in range(int(np.ceil(r.max()))):
        m = (r >= a) & (r < a + 1)
        if m.sum() > 50:
            q = (v[m] ** 2).sum(axis=1) / s2r[m]
            print(
                f"  {a}-{a + 1} kpc: n {m.sum():6d}  {q.mean():.4f} ± {q.std() / np.sqrt(m.sum()):.4f}"
            )
    rays = np.random.default_rng(0).normal(size=(64, 3))
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    radii = " ".join(f"{r:g}" for r in RADII)
    flow = dp_flows.load_flow(f"{args.run}/flows/conditional/model")
    if flow.whitener is None or flow.whitener.mode != "scalar":
        raise SystemExit("the run's conditional flow has no scalar whitener")
    ratios = slope_ratios(flow.whitener, flow.c_mean, flow.c_std, flow.cond_log_r, truth, rays)
    print(f"committed flow's whitener: d ln σ/dr / closed form at r = {radii} kpc: "
          + " ".join(f"{q:.3f}" for q in ratios))  # fmt: skip
    cfg = dp_flows.FlowConfig(batch_size=4096)

    def refit(seed: int, **changes) -> tuple[list[float], float]:
        """A scalar whitener fitted on the catalogue (split and initialisation from seed)."""
        prob = _prepare(v, x, None, cfg, seed, 1)
        cf = condition_features(x, prob.c_mean, prob.c_std, False)
        aff, stats = fit_affine(prob.z, cf, prob.w, prob.train_idx, prob.val_idx, seed=seed,
                                **(WHITENER | changes))  # fmt: skip
        return slope_ratios(aff, prob.c_mean, prob.c_std, False, truth, rays), stats["val_nll"]

    for bs in args.batch_sizes:
        for seed in args.seeds:
            q, _ = refit(seed, batch_size=None if bs == "full" else int(bs))
            print(f"batch {bs}, split seed {seed}: " + " ".join(f"{qq:.3f}" for qq in q))
    if not args.refit:
        return
    variants = [{}, {"n_steps": 12000}, {"width": 32}, {"batch_size": None},
                {"degree": 2}, {"learning_rate": 1e-2, "n_steps": 6000}]  # fmt: skip
    for kw in variants:
        t = time.perf_counter()
        q, val_nll = refit(0, **kw)
        print(f"refit {kw or 'defaults'}: " + " ".join(f"{qq:.3f}" for qq in q)
              + f"  val NLL {float(val_nll):.6f} ({time.perf_counter() - t:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
