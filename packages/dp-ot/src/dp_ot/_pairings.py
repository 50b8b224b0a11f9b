"""Minibatch-OT pairing precomputer for flow matching.

Per epoch ``e`` the N data points are put in a seeded order (a permutation, or for weighted
data N draws with replacement in proportion to the weights) and cut into ``N // block``
blocks; the trailing ``N % block`` points of that order are left out of that epoch (a
different subset every epoch). Block ``k`` gets Gaussian noise x0 regenerated from
``(seed, e, k)`` and the exact squared-Euclidean assignment between x1 and x0 inside the block.
Only the assignment is stored: one uint8 per pair (``block <= 256``), epoch after epoch, in a
memory-mapped file — 2^22 points x 512 epochs = 2 GiB.

On disk ``out_path`` is a directory with ``header.json``, ``pairings.u8`` (n_epochs x
n_blocks*block bytes) and, for weighted data, ``weights.npy``. It is written as
``out_path.partial`` and renamed when complete; an interrupted run resumes from the last
finished epoch when called again with the same arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int
from tqdm.auto import tqdm

from . import _core  # pyright: ignore[reportMissingModuleSource]  # compiled; typed by _core.pyi
from ._streams import RNG_ID, block_noise, epoch_order, reuse_order

__all__ = ["Pairings", "precompute_pairings"]

FORMAT = "dp-ot-pairings/1"
_CHUNK = 128  # blocks handed to the C++ pool per call


def _fingerprint(x: np.ndarray) -> str:
    """SHA-256 of the shape and of up to 4096 evenly spaced rows (cheap identity check)."""
    idx = np.unique(np.linspace(0, len(x) - 1, min(len(x), 4096)).astype(np.int64))
    h = hashlib.sha256(repr(x.shape).encode())
    h.update(np.ascontiguousarray(x[idx], dtype=np.float64).tobytes())
    return h.hexdigest()


_HEADER_KEYS = (
    "format", "seed", "n_points", "dim", "block", "n_epochs", "n_blocks", "epochs_done",
    "weighted", "x1_fingerprint", "weights_sha256", "noise_check",
)  # fmt: skip


def _read_header(directory: Path) -> dict:
    """Parse ``directory/header.json``; a corrupt, truncated or foreign file raises a
    ValueError naming it and saying how to recover."""
    path = directory / "header.json"
    recover = (
        f"delete {directory} and rerun precompute_pairings (or `dp-ot precompute`) with the "
        "same arguments to recreate it"
    )
    try:
        header = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is unreadable, corrupt or truncated ({err}); {recover}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ValueError(f"{path}: not a {FORMAT} header (format {found!r}); {recover}")
    missing = [k for k in _HEADER_KEYS if k not in header]
    if missing:
        raise ValueError(f"{path} is incomplete (no {', '.join(missing)}); {recover}")
    return header


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


@dataclass(frozen=True)
class Pairings:
    """Stored minibatch-OT pairings (open with :meth:`Pairings.open`).

    Attributes:
        path: the pairings directory.
        header: the parsed ``header.json`` (seed, n_points, dim, block, n_epochs, ...).
    """

    path: Path
    header: dict

    @property
    def n_epochs(self) -> int:
        return int(self.header["n_epochs"])

    @property
    def n_blocks(self) -> int:
        return int(self.header["n_blocks"])

    @property
    def block(self) -> int:
        return int(self.header["block"])

    @classmethod
    def open(cls, path: str | os.PathLike) -> Pairings:
        """Open a complete pairings directory written by :func:`precompute_pairings`."""
        path = Path(path)
        if not (path / "header.json").is_file():
            raise FileNotFoundError(f"{path} is not a dp-ot pairings directory (no header.json)")
        header = _read_header(path)
        if header["epochs_done"] != header["n_epochs"]:
            raise ValueError(f"{path}: incomplete ({header['epochs_done']} epochs)")
        data = path / "pairings.u8"
        size = header["n_epochs"] * header["n_blocks"] * header["block"]
        if not data.is_file() or data.stat().st_size != size:
            found = data.stat().st_size if data.is_file() else "missing"
            raise ValueError(
                f"{data} should hold {size} bytes, found {found}; delete {path} and rerun "
                "precompute_pairings (or `dp-ot precompute`) to recreate it"
            )
        check = block_noise(header["seed"], 0, 0, 1, header["dim"])
        if check.tolist() != header["noise_check"]:
            raise RuntimeError(f"{path}: numpy's random streams differ from when it was written")
        return cls(path, header)

    def assignments(self, epoch: int) -> np.ndarray:
        """Stored assignment of epoch ``epoch % n_epochs``, shape (n_blocks, block), uint8."""
        shape = (self.n_epochs, self.n_blocks * self.block)
        mm = np.memmap(self.path / "pairings.u8", dtype=np.uint8, mode="r", shape=shape)
        return np.array(mm[epoch % self.n_epochs]).reshape(self.n_blocks, self.block)

    def _weights(self) -> np.ndarray | None:
        return np.load(self.path / "weights.npy") if self.header["weighted"] else None

    def minibatches(
        self, epoch: int, x1: Float[np.ndarray, "N d"], *, blocks_per_batch: int = 1
    ) -> Iterator[tuple[Float[np.ndarray, "b d"], Float[np.ndarray, "b d"]]]:
        """Yield the OT-paired ``(x0, x1)`` minibatches of one epoch.

        Epoch ``e`` uses stored epoch ``e % n_epochs``; for ``e >= n_epochs`` the blocks are
        visited in a reshuffled order seeded by ``(seed, e)``. Each yielded pair has shape
        ``(blocks_per_batch * block, d)``; a trailing group of fewer blocks is dropped.
        The same batches as :meth:`minibatch_indices`, with the rows ``x1[rows]`` in place of
        their indices (both in x1's float dtype, float64 for integer data).

        Args:
            epoch: epoch number (>= 0).
            x1: the same (N, d) data passed to :func:`precompute_pairings`.
            blocks_per_batch: blocks concatenated per minibatch.
        """
        x1 = np.asarray(x1)
        h = self.header
        if x1.shape != (h["n_points"], h["dim"]) or _fingerprint(x1) != h["x1_fingerprint"]:
            raise ValueError(
                f"x1 (shape {x1.shape}) is not the data these pairings were computed for "
                f"(shape {(h['n_points'], h['dim'])})"
            )
        dtype = x1.dtype if np.issubdtype(x1.dtype, np.floating) else np.float64
        for x0, rows in self.minibatch_indices(epoch, blocks_per_batch=blocks_per_batch):
            yield x0.astype(dtype), x1[rows].astype(dtype)

    def minibatch_indices(
        self, epoch: int, *, blocks_per_batch: int = 1
    ) -> Iterator[tuple[Float[np.ndarray, "b d"], Int[np.ndarray, " b"]]]:
        """Yield the minibatches of one epoch as ``(x0, rows)``: noise and data row indices.

        ``x0[i]`` is paired with row ``rows[i]`` of the (N, d) data the pairings were computed
        for, so arrays that travel with the data (conditions, weights, labels) are picked
        with the same indices. Epochs, block order and sizes as in :meth:`minibatches`, which
        yields ``(x0, x1[rows])`` from this; nothing here reads the data, so it is the
        caller's to pass the indices to that same data. For unweighted pairings the indices
        of one epoch are distinct; weighted ones repeat rows drawn more than once.

        Args:
            epoch: epoch number (>= 0).
            blocks_per_batch: blocks concatenated per minibatch.

        Returns:
            An iterator of ``x0`` (b, d) float64 and ``rows`` (b,) int64, with
            ``b = blocks_per_batch * block``.

        Example:
            >>> import numpy as np, tempfile, os
            >>> from dp_ot import precompute_pairings
            >>> x1 = np.random.default_rng(0).normal(size=(512, 3))
            >>> d = tempfile.mkdtemp()
            >>> p = precompute_pairings(x1, os.path.join(d, "p"), n_epochs=1, progress=False)
            >>> x0, rows = next(p.minibatch_indices(0))
            >>> x0b, x1b = next(p.minibatches(0, x1))
            >>> bool(np.array_equal(x1[rows], x1b) and np.array_equal(x0, x0b))
            True
        """
        if epoch < 0 or blocks_per_batch < 1:
            raise ValueError("epoch must be >= 0 and blocks_per_batch >= 1")
        h = self.header
        stored = epoch % self.n_epochs
        order = epoch_order(h["seed"], stored, h["n_points"], self._weights())
        assign = self.assignments(stored)
        blocks = np.arange(self.n_blocks)
        if epoch >= self.n_epochs:
            blocks = reuse_order(h["seed"], epoch, self.n_blocks)
        b = self.block
        for start in range(0, self.n_blocks - blocks_per_batch + 1, blocks_per_batch):
            ids = blocks[start : start + blocks_per_batch]
            rows = [order[k * b : (k + 1) * b] for k in ids]
            xs0 = [block_noise(h["seed"], stored, int(k), b, h["dim"])[assign[k]] for k in ids]
            yield np.concatenate(xs0), np.concatenate(rows).astype(np.int64)


def _validate(x1: np.ndarray, weights, seed, n_epochs, block, threads):
    if x1.ndim != 2:
        raise ValueError(f"x1 must be a 2-D (N, d) array, got shape {x1.shape}")
    bad = ~np.all(np.isfinite(x1), axis=1)
    if bad.any():
        raise ValueError(f"x1 has {int(bad.sum())} rows with NaN/inf (first: {np.argmax(bad)})")
    if not 1 <= block <= 256:
        raise ValueError(f"block must be in [1, 256] (stored as uint8), got {block}")
    if x1.shape[0] < block:
        raise ValueError(f"need at least one block: N={x1.shape[0]} < block={block}")
    if int(n_epochs) != n_epochs or n_epochs < 1:
        raise ValueError(f"n_epochs must be a positive integer, got {n_epochs!r}")
    if int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a nonnegative integer, got {seed!r}")
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (x1.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be (N,), finite, nonnegative, with a positive sum")
    return w / w.sum()


def precompute_pairings(
    x1: Float[np.ndarray, "N d"],
    out_path: str | os.PathLike,
    *,
    weights: Float[np.ndarray, " N"] | None = None,
    seed: int = 0,
    n_epochs: int = 512,
    block: int = 256,
    threads: int = 1,
    progress: bool = True,
) -> Pairings:
    """Precompute exact minibatch-OT pairings for ``n_epochs`` epochs (see module docs).

    Args:
        x1: (N, d) standardized data (finite).
        out_path: pairings directory to create (must not exist, unless it already holds
            pairings for exactly these arguments, which are then returned as they are).
        weights: optional (N,) nonnegative weights: each epoch draws N points with
            replacement in proportion to them before blocking.
        seed: nonnegative integer; everything is a deterministic function of it.
        n_epochs: epochs to store; later epochs reuse them with reshuffled block order.
        block: block (minibatch) size, at most 256.
        threads: C++ worker threads; the result does not depend on it.
        progress: show a tqdm progress bar.

    Returns:
        The opened :class:`Pairings`.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from dp_ot import precompute_pairings
        >>> x1 = np.random.default_rng(0).normal(size=(512, 3))
        >>> d = tempfile.mkdtemp()
        >>> p = precompute_pairings(x1, os.path.join(d, "p"), n_epochs=2, progress=False)
        >>> x0, xb = next(p.minibatches(0, x1)); x0.shape, xb.shape
        ((256, 3), (256, 3))
    """
    x1 = np.ascontiguousarray(x1, dtype=np.float64)
    p = _validate(x1, weights, seed, n_epochs, block, threads)
    n, dim = x1.shape
    n_blocks = n // block
    header = {
        "format": FORMAT,
        "rng": RNG_ID,
        "seed": int(seed),
        "n_points": n,
        "dim": dim,
        "block": int(block),
        "n_epochs": int(n_epochs),
        "n_blocks": n_blocks,
        "dropped_per_epoch": n - n_blocks * block,
        "weighted": p is not None,
        "weights_sha256": None if p is None else hashlib.sha256(p.tobytes()).hexdigest(),
        "x1_fingerprint": _fingerprint(x1),
        "noise_check": block_noise(int(seed), 0, 0, 1, dim).tolist(),
        "numpy_version": np.__version__,
        "epochs_done": 0,
    }
    out = Path(out_path)
    same = ("x1_fingerprint", "weights_sha256", "seed", "block", "n_epochs", "dim", "n_points")
    if out.exists():
        existing = Pairings.open(out)
        if any(existing.header[k] != header[k] for k in same):
            raise FileExistsError(f"{out} exists and holds pairings for different arguments")
        return existing
    tmp = out.with_name(out.name + ".partial")
    shape = (n_epochs, n_blocks * block)
    start = 0
    if (tmp / "header.json").is_file():
        old = _read_header(tmp)
        if all(old.get(k) == header[k] for k in same):
            start = int(old["epochs_done"])  # resume after the last finished epoch
    if start == 0:
        tmp.mkdir(parents=True, exist_ok=True)
        np.memmap(tmp / "pairings.u8", dtype=np.uint8, mode="w+", shape=shape).flush()
        if p is not None:
            np.save(tmp / "weights.npy", p)
        _write_json(tmp / "header.json", header)
    mm = np.memmap(tmp / "pairings.u8", dtype=np.uint8, mode="r+", shape=shape)
    bar = tqdm(
        total=n_epochs * n_blocks,
        initial=start * n_blocks,
        disable=not progress,
        unit="block",
        desc="dp-ot pairings",
    )
    for epoch in range(start, n_epochs):
        order = epoch_order(int(seed), epoch, n, p)
        for b0 in range(0, n_blocks, _CHUNK):
            ids = range(b0, min(b0 + _CHUNK, n_blocks))
            xb1 = x1[order[b0 * block : ids[-1] * block + block]].reshape(len(ids), block, dim)
            xb0 = np.stack([block_noise(int(seed), epoch, k, block, dim) for k in ids])
            mm[epoch, b0 * block : (ids[-1] + 1) * block] = _core.pair_blocks(
                xb0, xb1, int(threads)
            ).ravel()
            bar.update(len(ids))
        mm.flush()
        header["epochs_done"] = epoch + 1
        _write_json(tmp / "header.json", header)
    bar.close()
    del mm
    os.replace(tmp, out)
    return Pairings.open(out)
