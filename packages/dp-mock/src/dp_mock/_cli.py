"""``dp-mock generate|plot``: the mock's command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._catalog import generate_catalog
from ._config import PRESETS, MockConfig, preset
from ._plot import plot_truth


def _generate(args: argparse.Namespace) -> int:
    config = preset(args.preset)
    if args.config is not None:
        config = MockConfig.from_toml(args.config, base=config)
    changes: dict[str, int] = {}
    if args.n_observed is not None:
        changes["n_observed"] = args.n_observed
    if args.seed is not None:
        changes["seed"] = args.seed
    config = config.replace(**changes)
    start = time.perf_counter()
    path = generate_catalog(config, args.out, progress=not args.quiet)
    print(f"wrote {config.n_observed} stars to {path} in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dp-mock``."""
    parser = argparse.ArgumentParser(prog="dp-mock", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate a mock catalog.h5")
    gen.add_argument("--preset", choices=PRESETS, default="demo")
    gen.add_argument("--config", type=Path, help="TOML file of MockConfig keys (over the preset)")
    gen.add_argument("--n-observed", type=int, help="number of observed stars")
    gen.add_argument("--seed", type=int, help="the one integer seed")
    gen.add_argument("--out", type=Path, required=True, help="catalog.h5 to write")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    plot = sub.add_parser(
        "plot", help='draw the truth (paper Fig. 1) of a catalogue (needs "dp-mock[plot]")'
    )
    plot.add_argument("catalog", type=Path)
    plot.add_argument("--out", type=Path, required=True, help="image to write (e.g. fig.png)")
    plot.add_argument("--resolution", type=int, default=256)
    args = parser.parse_args(argv)
    if args.command == "generate":
        if args.n_observed is not None and args.n_observed < 1:
            gen.error(f"--n-observed must be >= 1, got {args.n_observed}")
        if args.seed is not None and args.seed < 0:
            gen.error(f"--seed must be >= 0, got {args.seed}")
        if args.out.is_dir():
            gen.error(f"--out {args.out} is a folder; give the catalogue file (e.g. catalog.h5)")
    else:
        if args.resolution < 2:
            plot.error(f"--resolution must be >= 2 pixels per side, got {args.resolution}")
        if args.out.is_dir():
            plot.error(f"--out {args.out} is a folder; give the image file (e.g. fig.png)")
        if args.out.resolve() == args.catalog.resolve():
            plot.error(f"--out {args.out} is the input catalogue; give another file")
    expected: tuple[type[Exception], ...] = (ValueError, KeyError, OSError)
    if args.command == "plot":
        expected += (ImportError,)  # no matplotlib: the message names the extra to install
    try:
        if args.command == "generate":
            return _generate(args)
        path = plot_truth(args.catalog, args.out, resolution=args.resolution)
        print(f"wrote {path}")
        return 0
    except expected as err:
        print(f"dp-mock: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
