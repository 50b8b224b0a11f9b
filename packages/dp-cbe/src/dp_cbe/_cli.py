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
from ._io import atomic_write, read_gradients
from ._losses import METHODS
from ._solution import load_model
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
    return p


def _read_points(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"points file not found: {path}")
    with h5py.File(path, "r") as fh:
        if "x" not in fh:
            raise KeyError(f"{path}: missing dataset /x (n, 3) in kpc")
        x = np.asarray(fh["x"][()], np.float64)
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"{path}: /x must have shape (n, 3), got {x.shape}")
    bad = int((~np.isfinite(x).all(axis=1)).sum())
    if bad:
        raise ValueError(f"{path}: /x has {bad} rows with NaN/inf")
    return x


def evaluate(model_dir: Path, points: Path, out: Path) -> Path:
    """Write /x, /potential, /acceleration, /density and /ln_n or /ln_selection to ``out``."""
    sol = load_model(model_dir)
    x = _read_points(points)
    data = {
        "x": x,
        "potential": sol.potential(x),
        "acceleration": sol.acceleration(x),
        "density": sol.density(x),
    }
    if sol.method == "conditional":
        data["ln_n"] = sol.ln_n(x)
    if sol.method == "selection":
        data["ln_selection"] = sol.ln_selection(x)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as fh:
            fh.attrs["schema"] = EVAL_SCHEMA
            fh.attrs["units"] = EVAL_UNITS
            fh.attrs["method"] = sol.method
            for k, v in data.items():
                fh.create_dataset(k, data=v)

    atomic_write(out, write)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dp-cbe`` script; returns the exit status."""
    args = _parser().parse_args(argv)
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
            evaluate(args.model, args.points, args.out)
            print(f"dp-cbe: evaluation written to {args.out}")
    except (FileNotFoundError, KeyError, ValueError, FloatingPointError) as err:
        print(f"dp-cbe: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
