"""``dp-mock generate|plot``: the mock's command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._catalog import generate_catalog
from ._config import PRESETS, MockConfig, preset
from ._io import load_truth, read_catalog


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


def plot_truth(catalog: str | Path, out: str | Path, *, resolution: int = 256) -> Path:
    """Draw the paper's Fig. 1 from a catalogue: z = 0 slices of the dust density, the integrated
    extinction, the selection function and the expected density of observed stars.

    Args:
        catalog: a catalog.h5 written by ``generate_catalog``.
        out: the image to write (format from the suffix, e.g. .png).
        resolution: pixels per side of each slice.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    if resolution < 2:
        raise ValueError(f"resolution must be >= 2 pixels per side, got {resolution}")
    truth = load_truth(catalog)
    n_stars = len(read_catalog(catalog)["x"])
    if n_stars == 0:
        raise ValueError(f"{catalog} holds no stars: nothing to plot")
    half = truth.dust.extent if truth.dust is not None else truth.r_max
    edges = np.linspace(-half, half, resolution + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    gx, gy = np.meshgrid(centres, centres, indexing="xy")
    pts = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], axis=1)
    inside = np.linalg.norm(pts, axis=1) < truth.r_max
    selection = truth.selection(pts)
    with np.errstate(divide="ignore"):
        panels = [
            (
                np.log10(np.maximum(truth.dust_density(pts), 1e-300)).reshape(gx.shape),
                r"$\log_{10}\,\rho_{\rm dust}$ [mag/kpc]",
                "cividis",
                None,
            ),
            (truth.extinction(pts).reshape(gx.shape), r"$A$ [mag]", "magma_r", None),
            (
                np.where(inside, selection, np.nan).reshape(gx.shape),
                r"$S(\mathbf{x})$",
                "viridis",
                (0.0, 1.0),
            ),
            (
                np.where(inside, np.log10(truth.observed_density(pts) * n_stars), np.nan).reshape(
                    gx.shape
                ),
                r"$\log_{10}\,n_{\rm obs}$ [stars/kpc$^3$]",
                "inferno",
                None,
            ),
        ]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.6), constrained_layout=True)
    for k, (ax, (img, label, cmap, lim)) in enumerate(zip(axes, panels, strict=True)):
        if k < 2 and truth.dust is None:
            ax.text(0.5, 0.5, "no dust", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlim(-half, half)
            ax.set_ylim(-half, half)
            ax.set_title(label)
            ax.set_xlabel("x [kpc]")
            continue
        finite = img[np.isfinite(img)]
        vmin, vmax = lim if lim else (np.percentile(finite, 0.5), np.percentile(finite, 99.5))
        im = ax.imshow(
            img,
            origin="lower",
            extent=(-half, half, -half, half),
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            interpolation="nearest",
        )
        ax.add_patch(Circle((0, 0), truth.r_max, fill=False, ls="--", lw=0.8, color="w"))
        ax.set_xlabel("x [kpc]")
        ax.set_title(label)
        fig.colorbar(im, ax=ax, shrink=0.85)
    axes[0].set_ylabel("y [kpc]")
    cfg = truth.config
    fig.suptitle(
        f"Mock truth, z = 0 slice: {n_stars:,} observed stars, m_max = {cfg.m_max}, "
        f"dust {'on' if cfg.dust else 'off'} (seed {cfg.seed})"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


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
    plot = sub.add_parser("plot", help="draw the truth (paper Fig. 1) of a catalogue")
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
    try:
        if args.command == "generate":
            return _generate(args)
        path = plot_truth(args.catalog, args.out, resolution=args.resolution)
        print(f"wrote {path}")
        return 0
    except (ValueError, KeyError, OSError) as err:
        print(f"dp-mock: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
