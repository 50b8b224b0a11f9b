"""A run's conditional gradient set with the stars' own velocities at the star positions.

The pipeline's conditional gradient set draws every velocity from the p(v|x) flow, so the CBE
residual is weighted by the flow's q(v|x), not the true p(v|x). At the positions that are
observed stars (all but the uniform fraction) the star's own velocity is a draw from the true
p(v|x) (selection depends on x alone). This script rewrites a run's set with those pairs
(x_i, v_i) and the flow's gradients there, leaving the uniform positions as they were, so a
refit shows whether drawing v from the flow is what biases the fit:

    .venv/bin/python benchmarks/star_velocities.py RUN OUT.h5
    dp-cbe fit OUT.h5 --method conditional --seed 0 --out FIT_STARS
    dp-cbe fit RUN/gradients/conditional/gradients.h5 --method conditional --seed 0 --out FIT
    .venv/bin/python benchmarks/eval_fits.py RUN/mock/catalog.h5 FIT FIT_STARS

RUN is a ``deep-potential run`` folder with one velocity per position (the default); the star
rows are found by exact position match in the catalogue.
"""

from __future__ import annotations

import argparse
import json

import dp_cbe
import dp_flows
import dp_mock
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a deep-potential run folder (conditional method)")
    ap.add_argument("out", help="the new gradient set (HDF5)")
    args = ap.parse_args()
    gdir = f"{args.run}/gradients/conditional"
    gs = dp_cbe.read_gradients(f"{gdir}/gradients.h5")
    x, v = np.array(gs.x), np.array(gs.v)
    dx, dv = np.array(gs.dlnf_dx), np.array(gs.dlnf_dv)
    with open(f"{gdir}/manifest.json") as fh:
        n_uni = round(json.load(fh)["config"]["uniform_fraction"] * len(x))
    stars = dp_mock.read_catalog(f"{args.run}/mock/catalog.h5")
    cat_x, cat_v = np.asarray(stars["x"], float), np.asarray(stars["v"], float)
    index = {p.tobytes(): i for i, p in enumerate(cat_x)}
    rows = np.array([index[p.tobytes()] for p in x[n_uni:]])
    flow = dp_flows.load_flow(f"{args.run}/flows/conditional/model")
    gv, gx = dp_flows.grad_log_prob(flow, cat_v[rows], cat_x[rows], batch_size=4096)
    v[n_uni:], dv[n_uni:], dx[n_uni:] = cat_v[rows], np.asarray(gv), np.asarray(gx)
    dp_cbe.write_gradients(
        args.out, dp_cbe.GradientSet(x=x, v=v, dlnf_dx=dx, dlnf_dv=dv, density=gs.density)
    )
    print(f"{args.out}: {len(x) - n_uni} of {len(x)} rows now carry the stars' own velocities")


if __name__ == "__main__":
    main()
