"""Command line: ``dp-cbe fit`` and ``dp-cbe evaluate``."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from ._config import FitConfig
from ._io import atomic_write, check_hdf5, read_gradients
from ._losses import METHODS
from ._solution import evaluate_ensemble, load_model, model_fields
from ._stopping import ConvergenceWarning
from ._train import fit

EVAL_SCHEMA = "dp-cbe-evaluation/1"
EVAL_UNITS = "x: kpc; potential: (km/s)^2; acceleration: (km/s)^2/kpc; density: Msun/kpc^3"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dp-cbe", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit a potential to a gradients.h5 file")
    f.add_argument("gradients", type=Path, help="gradients.h5 (schema dp-gradients/1)")
    f.add_argument("--method", choices=METHODS, default=None,
                   help="default: from the file's density attribute")  # fmt: skip
    f.add_argument("--out", type=Path, required=True, help="model directory (resumes there)")
    f.add_argument("--config", type=Path, default=None, help="FitConfig as TOML")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("-q", "--quiet", dest="no_progress", action="store_true",
                   help="no progress bar")  # fmt: skip
    # the earlier spelling, still accepted
    f.add_argument("--no-progress", action="store_true", help=argparse.SUPPRESS)
    e = sub.add_parser("evaluate", help="evaluate a fitted model at points")
    e.add_argument("model", type=Path, help="model directory")
    e.add_argument("points", type=Path, help="HDF5 file with /x (n, 3) in kpc")
    e.add_argument("--out", type=Path, required=True, help="output HDF5 file")
    e.add_argument("--member", type=Path, action="append", default=[], metavar="DIR",
                   help="an ensemble member's model directory (repeat, at least 2): adds "
                        "/<field>_std, the members' spread, to each field")  # fmt: skip
    return p


_F32_MAX = float(np.finfo(np.float32).max)
_EDGE_MARGIN = 1.05
"""A point is outside the training volume beyond this many times the training positions' reach:
the sampled edge of the data falls short of the true edge by sampling noise, not a real gap."""


def _read_points(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"points file not found: {path}")
    check_hdf5(path)
    with h5py.File(path, "r") as fh:
        if "x" not in fh:
            raise KeyError(f"{path}: missing dataset /x (n, 3) in kpc")
        x = np.asarray(fh["x"][()], np.float64)  # pyright: ignore[reportIndexIssue]  # h5py types f[...] as Group | Dataset | Datatype
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"{path}: /x must have shape (n, 3), got {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{path}: /x has 0 rows (no points to evaluate)")
    bad = int((~np.isfinite(x).all(axis=1)).sum())
    if bad:
        raise ValueError(f"{path}: /x has {bad} of {len(x)} rows with NaN/inf")
    huge = int((np.abs(x) > _F32_MAX).any(axis=1).sum())
    if huge:
        raise ValueError(
            f"{path}: /x has {huge} of {len(x)} rows beyond float32 range (|x| > {_F32_MAX:.3g} "
            "kpc); the model evaluates in float32"
        )
    return x


def training_half_width(hyperparameters: dict) -> float | None:
    """The largest |coordinate| (kpc) of the training positions, from the model's stored
    Fourier period (4× that value); None if the hyperparameters do not hold it."""
    period = (hyperparameters.get("phi") or {}).get("period")
    return None if period is None else float(period) / 4.0


def evaluate(model_dir: Path, points: Path, out: Path, members: Sequence[Path] = ()) -> Path:
    """Write /x, /potential, /acceleration, /density and /ln_n or /ln_selection to ``out``.

    The fields are the model in ``model_dir``'s. With ``members`` (at least 2 model directories
    of the same method, e.g. the per-member fits of a flow ensemble) each field also gets
    ``/<field>_std``, the members' sample standard deviation (ddof = 1; for potential and ln n
    or ln S after removing each member's mean over the points: see `evaluate_ensemble`); the
    root attribute ``n_members`` counts them (0 without members).

    Points more than 5 % farther from the origin than the training positions reach (radius >
    1.05 × the largest |coordinate| of any training position, root attribute
    ``training_half_width``, kpc) are extrapolation: their number is the root attribute ``n_outside_training_volume``, a warning
    line goes to stderr, and the boolean dataset ``/outside_training_volume`` (n,) marks them
    (written only when there is at least one).

    Raises:
        ValueError: ``out`` is the points file or a folder; points are NaN/inf or beyond
            float32 range; fewer than 2 members or members of another method; or a model
            gives NaN/inf at some points (nothing is written).
    """
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the HDF5 file to write")
    if out.resolve() == points.resolve() or (out.exists() and points.exists()
                                              and out.samefile(points)):  # fmt: skip
        raise ValueError(f"--out {out} is the points file; give another file (it would be lost)")
    if len(members) == 1:
        raise ValueError(
            "--member given once: an ensemble's spread needs at least 2 members (give each "
            "member's model directory with its own --member)"
        )
    sol = load_model(model_dir)
    x = _read_points(points)
    if members:
        ens = evaluate_ensemble(members, x, main=sol)
        data = {"x": x, **ens.value, **{f"{k}_std": v for k, v in ens.std.items()}}
    else:
        data = {"x": x, **model_fields(sol, x)}
    bad = np.zeros(len(x), bool)
    for v in data.values():
        bad |= ~np.isfinite(np.asarray(v)).reshape(len(x), -1).all(axis=1)
    if bad.any():
        raise ValueError(
            f"the model gives NaN/inf at {int(bad.sum())} of {len(x)} points (largest |x| there: "
            f"{np.abs(x[bad]).max():.3g} kpc; float32 evaluation overflows far outside the "
            f"training volume); nothing written to {out}"
        )
    half = training_half_width(sol.hyperparameters)
    outside = (
        np.zeros(len(x), bool) if half is None else np.linalg.norm(x, axis=1) > _EDGE_MARGIN * half
    )
    n_out = int(outside.sum())
    if n_out:
        assert half is not None  # outside is all False without a training half-width
        print(f"dp-cbe: WARNING: {n_out} of {len(x)} points lie outside the training volume "
              f"(radius > {_EDGE_MARGIN * half:.4g} kpc): extrapolation, flagged in /outside_training_volume",
              file=sys.stderr)  # fmt: skip

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as fh:
            fh.attrs["schema"] = EVAL_SCHEMA
            fh.attrs["units"] = EVAL_UNITS
            fh.attrs["method"] = sol.method
            fh.attrs["n_outside_training_volume"] = n_out
            fh.attrs["n_members"] = len(members)
            if half is not None:
                fh.attrs["training_half_width"] = half
            for k, v in data.items():
                fh.create_dataset(k, data=v)
            if n_out:
                fh.create_dataset("outside_training_volume", data=outside)

    atomic_write(out, write)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dp-cbe`` script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "fit":
        if args.seed < 0:
            parser.error(f"--seed must be >= 0, got {args.seed}")
        if args.out.exists() and not args.out.is_dir():
            parser.error(f"--out {args.out} is an existing file; the model is written to a folder")
    try:
        if args.command == "fit":
            config = FitConfig.from_toml(args.config) if args.config else FitConfig()
            gs = read_gradients(args.gradients)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                sol = fit(gs, args.method, config=config, seed=args.seed, out_dir=args.out,
                          progress=not args.no_progress)  # fmt: skip
            h = sol.history
            status = (f"converged after {h['steps']} steps" if h["converged"]
                      else f"NOT CONVERGED: stopped at the n_steps ceiling ({h['steps']} steps)")  # fmt: skip
            print(f"dp-cbe: {sol.method} model written to {args.out} ({status}; best validation "
                  f"loss {h['best_val']} at step {h['best_step']})")  # fmt: skip
            for w in caught:
                if issubclass(w.category, ConvergenceWarning):
                    print(f"dp-cbe: WARNING: {w.message}", file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        else:
            evaluate(args.model, args.points, args.out, args.member)
            band = f" with the spread of {len(args.member)} members" if args.member else ""
            print(f"dp-cbe: evaluation{band} written to {args.out}")
    except (OSError, KeyError, ValueError, FloatingPointError) as err:
        print(f"dp-cbe: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
