"""``deep-potential run CONFIG.toml --out RUN_DIR [--from STAGE]``, ``deep-potential check``,
``deep-potential ingest`` and ``deep-potential gradients``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ._config import ConfigError, load_config
from ._stages import STAGES

DESCRIPTION = """\
Conditional Deep Potential, end to end: mock (or your catalogue) -> normalizing flows ->
DF-gradient sets -> CBE potential fits (vanilla, selection, conditional) -> report.

Every stage writes into RUN_DIR/<stage>/ with a manifest.json keyed by a hash of its config
section and inputs: rerunning the same command skips finished stages and resumes an
interrupted one; changing a section recomputes only what depends on it.
"""

EPILOG = """\
examples:
  deep-potential run configs/demo.toml --out runs/demo
  deep-potential run configs/demo.toml --out runs/demo --from potentials
  deep-potential check configs/paper.toml
  deep-potential ingest gaia.fits --out catalog.h5 --max-distance 3
  deep-potential gradients --method conditional --conditional flows/cond \
      --catalog catalog.h5 --n 65536 --out gradients.h5

The report lands in RUN_DIR/report/ (report.md, metrics.json, fig*.png).
File formats and config keys: docs/formats.md.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deep-potential",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run (or resume) the pipeline of a TOML config",
        description="Run or resume the pipeline of a TOML config.",
    )
    run.add_argument("config", type=Path, metavar="CONFIG.toml", help="pipeline config")
    run.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="RUN_DIR",
        help="run folder (created; reused to resume)",
    )
    run.add_argument(
        "--from",
        dest="from_stage",
        choices=STAGES,
        metavar="STAGE",
        help=f"recompute this stage and all later ones ({', '.join(STAGES)})",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    chk = sub.add_parser(
        "check",
        help="validate a config and print the units it would run",
        description="Validate a config without running anything.",
    )
    chk.add_argument("config", type=Path, metavar="CONFIG.toml")
    from ._gradients import add_parser as add_gradients_parser
    from ._ingest import add_parser as add_ingest_parser

    add_ingest_parser(sub)
    add_gradients_parser(sub)
    return p


def _setup_logging(run_dir: Path | None, quiet: bool) -> None:
    """The pipeline's messages, and the packages' warnings (e.g. a damaged checkpoint moved
    aside by dp-flows or dp-cbe), go to stderr and to ``run.log``."""
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(fmt)
    h.setLevel(logging.WARNING if quiet else logging.INFO)
    fh = None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        # delay: a run refused at the start (locked, foreign folder) leaves no run.log behind
        fh = logging.FileHandler(run_dir / "run.log", delay=True)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name, level in (("deep_potential", logging.INFO), ("dp_flows", logging.WARNING),
                        ("dp_cbe", logging.WARNING), ("dp_mock", logging.WARNING)):  # fmt: skip
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(h)
        if fh is not None:
            logger.addHandler(fh)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deep-potential`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "ingest":
        from ._ingest import run_cli

        return run_cli(args)
    if args.command == "gradients":
        from ._gradients import run_cli as run_gradients_cli

        return run_gradients_cli(args)
    try:
        config = load_config(args.config)
    except (ConfigError, OSError) as e:
        print(f"deep-potential: config error: {e}", file=sys.stderr)
        return 2
    if args.command == "check":
        units = ["mock" if config.data is None else "data"]
        units += [f"flows/{n}" for n in config.flows_needed]
        units += [f"{s}/{m}" for s in ("gradients", "potentials") for m in config.methods]
        print(f"{args.config}: OK\nunits: {', '.join([*units, 'report'])}")
        return 0
    _setup_logging(args.out, args.quiet)
    from ._runfolder import RunFolderError
    from ._runner import run_pipeline

    try:
        result = run_pipeline(config, args.out, from_stage=args.from_stage)
    except RunFolderError as e:
        print(f"deep-potential: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ndeep-potential: interrupted; run the same command again, with or without "
            "--from, to resume (finished units are kept, checkpoints resume)",
            file=sys.stderr,
        )
        return 130
    print(f"report: {result.unit('report').directory / 'report.md'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
