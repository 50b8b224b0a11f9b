"""Command line: ``dp-ot precompute DATA.h5 --dataset /stars/x --out PAIRS ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from ._pairings import precompute_pairings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dp-ot", description="Exact minibatch optimal-transport pairings for flow matching."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser(
        "precompute",
        help="precompute exact minibatch-OT pairings of an HDF5 dataset",
        description=(
            "Pair every block of an (N, d) dataset with Gaussian noise by exact "
            "squared-Euclidean assignment, for --epochs epochs. Writes a pairings directory "
            "(header.json + one byte per pair); rerunning an interrupted job resumes it. "
            "The data are standardized (per-dimension mean/std) before pairing unless "
            "--no-standardize; pass the same standardized array to Pairings.minibatches."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    pre.add_argument("data", type=Path, help="HDF5 file (e.g. catalog.h5)")
    pre.add_argument("--dataset", default="/stars/x", help="(N, d) dataset inside DATA")
    pre.add_argument("--weights", default=None, help="optional (N,) weights dataset inside DATA")
    pre.add_argument("--epochs", type=int, default=512, help="epochs to store")
    pre.add_argument("--block", type=int, default=256, help="block size (<= 256)")
    pre.add_argument("--seed", type=int, default=0, help="random seed (>= 0)")
    pre.add_argument("--threads", type=int, default=1, help="solver threads")
    pre.add_argument("--out", type=Path, required=True, help="output pairings directory")
    pre.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        help="pair the raw data instead of (x - mean) / std",
    )
    pre.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def _read(path: Path, name: str) -> np.ndarray:
    if not path.is_file():
        raise SystemExit(f"dp-ot: error: no such file: {path}")
    try:
        with h5py.File(path, "r") as f:
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise SystemExit(f"dp-ot: error: {path} has no dataset {name!r}")
            return np.asarray(f[name][()], dtype=np.float64)  # pyright: ignore[reportIndexIssue]  # h5py types f[...] as Group | Dataset | Datatype
    except OSError as err:
        raise SystemExit(f"dp-ot: error: cannot read {path} as HDF5: {err}") from None


def _check_args(args: argparse.Namespace) -> None:
    """One-line errors naming the flag, before any file is read."""
    for flag, value, low in (
        ("--epochs", args.epochs, 1),
        ("--block", args.block, 1),
        ("--threads", args.threads, 1),
        ("--seed", args.seed, 0),
    ):
        if value < low:
            raise SystemExit(f"dp-ot: error: {flag} must be >= {low}, got {value}")
    if args.block > 256:
        raise SystemExit(
            f"dp-ot: error: --block must be <= 256 (stored as uint8), got {args.block}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dp-ot`` command."""
    args = _parser().parse_args(argv)
    _check_args(args)
    x = _read(args.data, args.dataset)
    if x.ndim != 2:
        raise SystemExit(f"dp-ot: error: {args.dataset} must be (N, d), got shape {x.shape}")
    bad = ~np.all(np.isfinite(x), axis=1)
    if bad.any():
        raise SystemExit(
            f"dp-ot: error: {args.dataset} has {int(bad.sum())} rows with NaN/inf "
            f"(first at row {int(np.argmax(bad))})"
        )
    w = None if args.weights is None else _read(args.data, args.weights)
    if args.standardize:
        x = (x - x.mean(axis=0)) / x.std(axis=0)
    try:
        pairs = precompute_pairings(
            x,
            args.out,
            weights=w,
            seed=args.seed,
            n_epochs=args.epochs,
            block=args.block,
            threads=args.threads,
            progress=not args.quiet,
        )
    except (ValueError, FileExistsError) as err:
        raise SystemExit(f"dp-ot: error: {err}") from None
    h = pairs.header
    print(f"wrote {pairs.path}: {h['n_epochs']} epochs x {h['n_blocks']} blocks of {h['block']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
