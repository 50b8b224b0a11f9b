"""Counter-style random streams for the pairing precomputer.

Every stream is a fresh ``Generator(Philox(SeedSequence([seed, tag, epoch, ...])))``, so each
epoch's order and each block's Gaussian noise can be regenerated on its own, independently of
the thread count and of which other blocks were generated.
"""

from __future__ import annotations

import numpy as np

_ORDER, _NOISE, _REUSE = 0, 1, 2
RNG_ID = "numpy-philox-seedsequence/1"


def _gen(*words: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(list(words))))


def epoch_order(seed: int, epoch: int, n: int, p: np.ndarray | None) -> np.ndarray:
    """Indices of the points in epoch ``epoch``'s blocking order, shape (n,).

    Unweighted: a permutation of ``range(n)``. Weighted: ``n`` draws with replacement with
    probabilities ``p`` (so each block is an i.i.d. sample of the weighted distribution and
    the pairing inside a block stays a permutation).
    """
    rng = _gen(seed, _ORDER, epoch)
    if p is None:
        return rng.permutation(n)
    return rng.choice(n, size=n, replace=True, p=p)


def block_noise(seed: int, epoch: int, block_index: int, block: int, dim: int) -> np.ndarray:
    """The standard-normal x0 of one block, shape (block, dim), float64."""
    return _gen(seed, _NOISE, epoch, block_index).standard_normal((block, dim))


def reuse_order(seed: int, epoch: int, n_blocks: int) -> np.ndarray:
    """Block visiting order for an epoch beyond the stored ones, shape (n_blocks,)."""
    return _gen(seed, _REUSE, epoch).permutation(n_blocks)
