"""Command line: ``dp-flows fit``.

Gradient sets for the CBE solvers (``gradients.h5``, dp-cbe's format) are drawn from fitted
flows by ``deep-potential gradients``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._config import FlowConfig
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


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse impossible values and misplaced outputs with one-line usage errors."""
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"--out {out} is an existing file; the flow is written to a folder")


#: subcommands that left dp-flows: where they went
MOVED = {
    "gradients": "deep-potential gradients (same options): gradient sets are dp-cbe's "
    "gradients.h5, written through dp_cbe.write_gradients",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dp-flows`` script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in MOVED:
        print(f"dp-flows {argv[0]}: moved to {MOVED[argv[0]]}", file=sys.stderr)
        return 2
    parser = _parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    try:
        _fit(args)
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        print(f"dp-flows {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
