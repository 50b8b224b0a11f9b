"""A Cholesky whitener's dispersion tensor against the truth's, position by position.

For a spherical mock the true velocity covariance at x is σ_t² I + (σ_r² − σ_t²) r̂ r̂ᵀ
(``truth.system.velocity_moments``). The conditional flow's whitener L(x) is meant to carry it
(L Lᵀ ≈ Cov(v|x)), so that the flow on top sees a nearly isotropic, unit-scale distribution.
Binned averages of the whitened velocities can hide a tensor that is wrong in a different
direction at each position; this script checks each position and prints, per 1-kpc bin
(medians over the catalogue's stars):

- the angle between the whitener's principal axis and r̂ (degrees);
- its largest and smallest eigenvalues over σ_r² and σ_t²;
- the extreme eigenvalues of L⁻¹ Cov_true L⁻ᵀ (1 and 1 for a perfect whitener).

Usage:
    .venv/bin/python benchmarks/whitener_tensor.py RUN_DIR [--n 20000]

RUN_DIR is a ``deep-potential run`` folder whose conditional flow has a diagonal or Cholesky
whitener (``flows/conditional/model``, ``mock/catalog.h5``), e.g. ``configs/demo-om-cusp.toml``.
"""

from __future__ import annotations

import argparse

import dp_flows
import dp_mock
import jax.numpy as jnp
import numpy as np
from dp_flows._flow import condition_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a deep-potential run folder (conditional flow with a whitener)")
    ap.add_argument("--n", type=int, default=20000, help="stars checked (the first n)")
    args = ap.parse_args()
    catalog = f"{args.run}/mock/catalog.h5"
    flow = dp_flows.load_flow(f"{args.run}/flows/conditional/model")
    if flow.whitener is None or flow.whitener.mode == "scalar":
        raise SystemExit("the run's conditional flow has no tensor (diagonal/Cholesky) whitener")
    truth = dp_mock.load_truth(catalog)
    x = np.asarray(dp_mock.read_catalog(catalog)["x"], float)[: args.n]
    r = np.linalg.norm(x, axis=1)
    r_hat = x / r[:, None]
    s_r2, s_t2, _ = truth.system.velocity_moments(r)
    radial = r_hat[:, :, None] * r_hat[:, None, :]
    cov_true = s_t2[:, None, None] * np.eye(3) + (s_r2 - s_t2)[:, None, None] * radial
    feats = condition_features(x, flow.c_mean, flow.c_std, flow.cond_log_r)
    _, lower = flow.whitener(jnp.asarray(feats, jnp.float32))
    chol = np.asarray(flow.x_std, np.float64)[None, :, None] * np.asarray(lower, np.float64)
    eig, vec = np.linalg.eigh(chol @ np.transpose(chol, (0, 2, 1)))
    angle = np.degrees(np.arccos(np.clip(np.abs(np.sum(vec[:, :, -1] * r_hat, axis=1)), 0, 1)))
    inv = np.linalg.inv(chol)
    white = np.linalg.eigvalsh(inv @ cov_true @ np.transpose(inv, (0, 2, 1)))
    print(f"{args.run}: whitener {flow.whitener.mode}, log-radius input {flow.cond_log_r}")
    print("bin (kpc)  stars  β     angle°  λmax/σr²  λmin/σt²  whitened truth: λmin λmax")
    for a in range(int(np.ceil(r.max()))):
        m = (r >= a) & (r < a + 1)
        if m.sum() < 20:
            continue
        beta = 1 - np.median(s_t2[m] / s_r2[m])
        print(f"{a}-{a + 1}  {m.sum():9d}  {beta:.2f}  {np.median(angle[m]):6.1f}  "
              f"{np.median(eig[m, -1] / s_r2[m]):8.3f}  {np.median(eig[m, 0] / s_t2[m]):8.3f}  "
              f"{np.median(white[m, 0]):17.3f} {np.median(white[m, -1]):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
