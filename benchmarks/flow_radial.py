"""Where in radius the p(v|x) flow's implied force goes wrong, and how well-posed it is there.

For each radius (``--radii``) the script takes ``--dirs`` random directions, draws ``--n-vel``
velocities from the mock's TRUE p(v|x) at each position, and evaluates the run's conditional
flow there (`deep_potential._diagnostics.gradient_diagnostics`). Per radius it prints:

- ``force``: the local least-squares CBE solution's pull along the true one, g·∇Φ/|∇Φ|²
  (1: right; below 1 the flow implies too weak a force, which biases the density low);
- ``|Δg|/g``: its relative error; ``vdep``: the v-dependent part of the ∇ₓ ln p error;
- ``σr² σt² κr``: the flow's radial and tangential dispersions and radial kurtosis
  ⟨v_r⁴⟩/σ_r⁴, each over the truth's at the same positions;
- ``κr true`` and ``κ/(3−κ)``: the truth's radial kurtosis and, for an isotropic system, the
  factor that multiplies a relative error of the kurtosis gradient in the force. The fourth
  velocity moment's Jeans equation with the second's gives, with ln n eliminated,

      dΦ/dr = −κ σ² d ln(κ σ²)/dr / (3 − κ),

  so where p(v|x) is locally Gaussian in shape (κ → 3) the stars barely separate Φ from
  ln n and a small error of the flow's shape becomes a large force error. (An anisotropic
  system has another relation; the column is then only indicative.)

Usage:
    .venv/bin/python benchmarks/flow_radial.py RUN_DIR [--radii 0.2 0.4 1 2 4] [--dirs 32]
        [--n-vel 128] [--seed 1]

RUN_DIR is a ``deep-potential run`` folder of a mock (``mock/catalog.h5`` with its truth,
``flows/conditional/model``).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import dp_flows
import dp_mock
import jax
import numpy as np

from deep_potential._diagnostics import gradient_diagnostics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a deep-potential run folder of a mock")
    ap.add_argument("--radii", type=float, nargs="+",
                    default=[0.2, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])  # fmt: skip
    ap.add_argument("--dirs", type=int, default=32, help="random directions per radius")
    ap.add_argument("--n-vel", type=int, default=128, help="true velocities per position")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.dirs < 1 or args.n_vel < 8:
        ap.error("--dirs must be >= 1 and --n-vel >= 8 (the local fit has 6 unknowns)")
    radii = sorted(args.radii)
    if radii[0] <= 0:
        ap.error("--radii must be > 0")

    cat = f"{args.run}/mock/catalog.h5"
    for need in (cat, f"{args.run}/flows/conditional/model"):
        if not Path(need).exists():
            ap.error(f"{need} does not exist (RUN must be a deep-potential run folder of a mock)")
    truth = dp_mock.load_truth(cat)
    flow = dp_flows.load_flow(f"{args.run}/flows/conditional/model")
    rng = np.random.default_rng(args.seed)
    d = rng.normal(size=(len(radii) * args.dirs, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pos = d * np.repeat(radii, args.dirs)[:, None]

    def grad_fn(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gv, gx = dp_flows.grad_log_prob(flow, v, condition=x, progress=False)
        assert gx is not None
        return np.asarray(gx), np.asarray(gv)

    def sample_fn(x: np.ndarray) -> np.ndarray:
        key = jax.random.key(args.seed)
        return np.asarray(dp_flows.sample(key, flow, len(x), condition=x, progress=False))

    mid = [0.5 * (a + b) for a, b in itertools.pairwise(radii)]
    edges = [0.0, *mid, radii[-1] * 1.01]
    out = gradient_diagnostics(grad_fn, truth, pos, n_pos=len(pos), n_vel=args.n_vel,
                               seed=args.seed, sample_fn=sample_fn, r_edges=edges)  # fmt: skip
    _, _, kappa = truth.velocity_moments(np.asarray(radii))
    print(f"{args.run}: {args.dirs} directions x {args.n_vel} true velocities per radius")
    print("  r kpc  force  |Δg|/g   vdep  σr²    σt²    κr    κr true  κ/(3−κ)")
    rows = {round(b["lo"], 6): b for b in out["by_r"]}
    for r, lo, k in zip(radii, edges[:-1], kappa, strict=True):
        b = rows[round(lo, 6)]
        print(f"  {r:5.2f}  {b['local_acc_ratio']:.3f}  {b['local_acc_rel']:.3f}  "
              f"{b['grad_x_vdep_rel']:.3f}  {b['sigma_r2_ratio']:.3f}  {b['sigma_t2_ratio']:.3f}  "
              f"{b['kurtosis_r_ratio']:.3f}  {k:.3f}  {k / (3.0 - k):+8.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
