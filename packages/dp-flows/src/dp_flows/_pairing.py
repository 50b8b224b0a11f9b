"""Minibatches for flow matching: independent pairs, or exact minibatch-OT pairs.

With dp-ot installed the spatial flow's pairings are precomputed for ``ot_epochs`` epochs and
then reused with reshuffled block order (`dp_ot.precompute_pairings`); without it each block's
exact assignment is computed on the fly with POT's ``ot.emd``. Every draw comes from a NumPy
generator seeded by ``(seed, epoch)``, so an epoch is the same whether or not the run resumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

try:  # optional accelerator for OT pairings
    import dp_ot as _dp_ot
except ImportError:  # pragma: no cover - depends on the environment
    _dp_ot = None


def has_dp_ot() -> bool:
    """Whether dp-ot's precomputed pairings are available."""
    return _dp_ot is not None and hasattr(_dp_ot, "precompute_pairings")


def ot_permutation(z0: np.ndarray, z1: np.ndarray) -> np.ndarray:
    """Exact assignment of one block: ``perm`` such that (z0[i], z1[perm[i]]) are OT pairs.

    Uses POT's network-simplex ``ot.emd`` with uniform marginals and squared-Euclidean cost;
    for equal sizes its optimum is a permutation matrix.
    """
    import ot

    cost = np.sum((z0[:, None, :] - z1[None, :, :]) ** 2, axis=-1)
    a = np.full(len(z0), 1.0 / len(z0))
    plan = ot.emd(a, a, cost)
    return np.argmax(plan, axis=1)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch (independent of whether the run was resumed)."""
    return np.random.default_rng([int(seed), int(epoch), 0x5EED])


def independent_batches(
    rng: np.random.Generator, n: int, batch: int, dim: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (row indices, z0) for one epoch of independent pairs; the remainder is dropped."""
    perm = rng.permutation(n)
    for s in range(n // batch):
        yield perm[s * batch : (s + 1) * batch], rng.standard_normal((batch, dim))


def ot_batches(
    rng: np.random.Generator, z1: np.ndarray, batch: int, block: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (row indices, z0) for one epoch with z0 ↔ z1[rows] exact-OT paired per block."""
    n, dim = z1.shape
    for idx, z0 in independent_batches(rng, n, batch, dim):
        rows = idx.copy()
        for lo in range(0, batch, block):
            sl = slice(lo, lo + block)
            rows[sl] = idx[sl][ot_permutation(z0[sl], z1[idx[sl]])]
        yield rows, z0


class DpOtSource:
    """Pairings precomputed by dp-ot for the training split.

    dp-ot yields (x0, x1) pairs; rows are recovered by looking the x1 rows up (so conditions
    stay attached). With weights, dp-ot draws each epoch's stars in proportion to them, so
    the yielded batches are already weighted and the loss uses unit weights.
    """

    def __init__(
        self,
        z1: np.ndarray,
        path: Path,
        *,
        weights: np.ndarray | None,
        seed: int,
        n_epochs: int,
        block: int,
    ) -> None:
        self.z1 = np.ascontiguousarray(z1, dtype=np.float64)
        assert _dp_ot is not None  # callers check has_dp_ot() first
        self.pairings = _dp_ot.precompute_pairings(
            self.z1,
            path,
            weights=weights,
            seed=seed,
            n_epochs=n_epochs,
            block=block,
            progress=False,
        )
        self.block = block
        self.row_of = {row.tobytes(): i for i, row in enumerate(self.z1)}

    def batches(self, epoch: int, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row indices, z0) like `ot_batches`, from the stored pairings."""
        for x0, x1 in self.pairings.minibatches(
            epoch, self.z1, blocks_per_batch=batch // self.block
        ):
            rows = np.fromiter((self.row_of[r.tobytes()] for r in x1), np.int64, len(x1))
            yield rows, x0
