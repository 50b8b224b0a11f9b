"""Command line: ``dp-flows fit`` and ``dp-flows gradients``."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._config import FlowConfig
from ._gradients import make_gradients, write_gradients
from ._io import read_catalog_arrays
from ._train import fit_flow


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dp-flows", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    fit = sub.add_parser("fit", help="train a spatial n(x) or conditional p(v|x) flow")
    fit.add_argument("catalog", help="catalog.h5 (schema dp-catalog/1)")
    fit.add_argument("--flow", choices=["spatial", "conditional"], required=True)
    fit.add_argument("--out", required=True, help="flow directory (checkpoints, resumes)")
    fit.add_argument("--config", help="TOML file with FlowConfig keys (or a [flow] table)")
    w = fit.add_mutually_exclusive_group()
    w.add_argument("--weights", help="dataset of per-star weights, e.g. /stars/weight")
    w.add_argument(
        "--weights-from-selection",
        action="store_true",
        help="weight each star by 1 / /stars/selection (clipped at weight_clip)",
    )
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    g = sub.add_parser("gradients", help="sample points and write gradients.h5")
    g.add_argument("--method", choices=["vanilla", "selection", "conditional"], required=True)
    g.add_argument("--spatial", help="spatial flow directory (vanilla, selection)")
    g.add_argument("--conditional", required=True, help="p(v|x) flow directory")
    g.add_argument("--catalog", help="catalog.h5 whose positions the conditional method uses")
    g.add_argument("--n", type=int, required=True, help="number of points")
    g.add_argument("--uniform-fraction", type=float, default=0.0)
    g.add_argument("--r-max", type=float, default=None, help="kpc; ball for uniform points")
    g.add_argument("--batch-size", type=int, default=4096)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True, help="output gradients.h5")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _fit(args: argparse.Namespace) -> None:
    config = FlowConfig.from_toml(args.config) if args.config else FlowConfig()
    optional = []
    if args.weights:
        optional = [args.weights]
    elif args.weights_from_selection:
        optional = ["/stars/selection"]
    cat = read_catalog_arrays(args.catalog, ["/stars/x", "/stars/v", *optional])
    weights = None
    if args.weights:
        weights = cat[args.weights]
    elif args.weights_from_selection:
        s = cat["/stars/selection"]
        if np.any(s <= 0):
            raise ValueError(f"/stars/selection has {int(np.sum(s <= 0))} entries <= 0")
        weights = np.minimum(1.0 / s, config.weight_clip)
    if args.flow == "spatial":
        data, condition = cat["/stars/x"], None
    else:
        data, condition = cat["/stars/v"], cat["/stars/x"]
    fit_flow(
        data,
        condition=condition,
        weights=weights,
        config=config,
        seed=args.seed,
        out_dir=args.out,
        progress=not args.quiet,
    )
    print(f"flow written to {args.out}")


def _gradients(args: argparse.Namespace) -> None:
    positions = None
    if args.catalog:
        positions = read_catalog_arrays(args.catalog, ["/stars/x"])["/stars/x"]
    d = make_gradients(
        args.method,
        conditional=args.conditional,
        spatial=args.spatial,
        n=args.n,
        seed=args.seed,
        positions=positions,
        uniform_fraction=args.uniform_fraction,
        r_max=args.r_max,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    write_gradients(args.out, **d)
    print(f"{args.n} gradients of ln {d['density']} written to {args.out}")


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse impossible values and misplaced outputs with one-line usage errors."""
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    out = Path(args.out)
    if args.command == "fit":
        if out.exists() and not out.is_dir():
            p.error(f"--out {out} is an existing file; the flow is written to a folder")
        return
    if args.n < 1:
        p.error(f"--n must be >= 1, got {args.n}")
    if args.batch_size < 1:
        p.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.r_max is not None and not (math.isfinite(args.r_max) and args.r_max > 0):
        p.error(f"--r-max must be a finite number of kpc > 0, got {args.r_max}")
    if not 0.0 <= args.uniform_fraction <= 1.0:
        p.error(f"--uniform-fraction must be in [0, 1], got {args.uniform_fraction}")
    if out.is_dir():
        p.error(f"--out {out} is a folder; give the gradients file to write (e.g. gradients.h5)")
    if args.catalog and out.resolve() == Path(args.catalog).resolve():
        p.error(f"--out {out} is the input catalogue; give another file")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dp-flows`` script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    try:
        {"fit": _fit, "gradients": _gradients}[args.command](args)
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        print(f"dp-flows {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
