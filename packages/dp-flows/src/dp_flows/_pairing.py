"""Minibatches for flow matching: independent pairs, or exact minibatch-OT pairs.

With dp-ot installed the spatial flow's pairings are precomputed for ``ot_epochs`` epochs and
then reused with reshuffled block order (`dp_ot.precompute_pairings`); without it each block's
exact assignment is computed on the fly with scipy's ``linear_sum_assignment``. Every draw
comes from a NumPy generator seeded by ``(seed, epoch)``, so an epoch is the same whether or
not the run resumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int

try:  # optional accelerator for OT pairings
    import dp_ot as _dp_ot
except ImportError:  # pragma: no cover - depends on the environment
    _dp_ot = None


def has_dp_ot() -> bool:
    """Whether dp-ot's precomputed pairings are available (a dp-ot that yields row indices)."""
    return _dp_ot is not None and hasattr(_dp_ot.Pairings, "minibatch_indices")


def ot_permutation(
    z0: Float[np.ndarray, "b d"], z1: Float[np.ndarray, "b d"]
) -> Int[np.ndarray, " b"]:
    """Exact assignment of one block: ``perm`` such that (z0[i], z1[perm[i]]) are OT pairs.

    The squared-Euclidean cost's optimal permutation, from scipy's ``linear_sum_assignment``
    (for equal sizes the OT plan with uniform marginals is a permutation matrix, so this is
    the exact minibatch-OT coupling; where the optimum is unique it is the one every exact
    solver returns).
    """
    from scipy.optimize import linear_sum_assignment  # here: keeps `import dp_flows` light

    cost = np.sum((z0[:, None, :] - z1[None, :, :]) ** 2, axis=-1)
    _, perm = linear_sum_assignment(cost)  # rows come back as arange(b)
    return perm


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

    dp-ot yields each minibatch as the noise x0 and the row indices of z1 it is paired with
    (`dp_ot.Pairings.minibatch_indices`), so conditions and weights stay attached by index.
    With weights, dp-ot draws each epoch's stars in proportion to them, so the yielded
    batches are already weighted and the loss uses unit weights.
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
        assert _dp_ot is not None  # callers check has_dp_ot() first
        self.pairings = _dp_ot.precompute_pairings(
            np.ascontiguousarray(z1, dtype=np.float64),
            path,
            weights=weights,
            seed=seed,
            n_epochs=n_epochs,
            block=block,
            progress=False,
        )
        self.block = block

    def batches(self, epoch: int, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row indices, z0) like `ot_batches`, from the stored pairings."""
        pairs = self.pairings.minibatch_indices(epoch, blocks_per_batch=batch // self.block)
        for x0, rows in pairs:
            yield rows, x0
