"""One small fitted dp-cbe model per test session: conditional method on exact Plummer
gradients (the oracle in _cbe_oracle.py: GM = 1e7 kpc (km/s)², b = 10 kpc, stars inside 8 kpc).

A few hundred steps of a 32-wide net: the point is a realistic, smooth, non-analytic Φ for the
evaluation, adapter and expansion tests, not an accurate recovery (test_cbe_recovery.py)."""

from __future__ import annotations

import functools
import warnings

import _cbe_oracle as oracle
import dp_cbe

R_DATA = oracle.R_MAX  # kpc: the data volume's radius
SETTINGS = dict(phi_width=32, phi_depth=2, n_width=16, n_depth=1, batch_size=256, n_steps=300,
                eval_every=100, checkpoint_every=1000, val_batches=2, warmup_steps=20)  # fmt: skip


@functools.cache
def tiny_solution() -> dp_cbe.PotentialSolution:
    gs = dp_cbe.GradientSet(**oracle.gradients("conditional", 11, 4096))
    with warnings.catch_warnings():  # a deliberately short fit: convergence is not the point
        warnings.simplefilter("ignore")
        return dp_cbe.fit(gs, config=dp_cbe.FitConfig(**SETTINGS), seed=0, progress=False)
