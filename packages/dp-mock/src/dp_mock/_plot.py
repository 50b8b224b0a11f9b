"""The paper's Fig. 1: z = 0 slices of a mock's truth (needs the optional ``plot`` extra).

matplotlib is imported only when a figure is drawn, through its object-oriented API
(``matplotlib.figure.Figure``): no pyplot, and the caller's backend and global state are left
as they were.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._io import atomic_output, load_truth, read_catalog
from ._truth import Truth

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_INSTALL = 'pip install "dp-mock[plot]"'


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            f"dp_mock.plot_truth needs matplotlib, which is not installed: {_INSTALL} "
            "(or pip install matplotlib)"
        ) from err
    return Figure


def _image_format(path: Path) -> str:
    """The image format named by the suffix of ``path`` (PNG without one), checked."""
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = path.suffix[1:].lower() or "png"
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"{path}: unknown image format {fmt!r} (known: {', '.join(sorted(supported))})"
        )
    return fmt


def plot_truth(
    mock: Truth | str | Path,
    path: str | Path,
    *,
    resolution: int = 256,
) -> Path:
    """Draw the paper's Fig. 1: z = 0 slices of a mock's dust density, extinction, selection
    function and expected density of observed stars, and write it atomically.

    The four panels span the dust box (±``dust_extent``, or ±r_max without dust), in kpc:
    log₁₀ ρ_dust (mag/kpc), the extinction A from the observer at the origin (mag), S(x) and
    log₁₀ of the expected number density of observed stars (stars/kpc³); the dashed circle is
    r_max. The file is written to a temporary file in the same folder, then moved into place.

    Args:
        mock: a mock's ``Truth`` (e.g. from ``load_truth``), whose catalogue holds
            ``config.n_observed`` stars, or the path of its catalog.h5 (the stars are counted).
        path: the image to write; the format follows the suffix (``.png``, ``.pdf``, ``.svg``,
            ...; PNG without one).
        resolution: pixels per side of each slice (≥ 2).

    Returns:
        ``path``, as a ``Path``.

    Raises:
        ImportError: matplotlib is not installed (``pip install "dp-mock[plot]"``).
        ValueError: ``resolution`` < 2, ``path`` is a folder or has an unknown image suffix, or
            the catalogue is not a readable mock or holds no stars.
        KeyError: the catalogue has no ``/truth`` (not a dp-mock catalogue).

    Example:
        >>> import pathlib, tempfile
        >>> from dp_mock import Truth, plot_truth, preset
        >>> truth = Truth(preset("demo").replace(dust=False))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = plot_truth(truth, pathlib.Path(tmp) / "fig1.png", resolution=16)
        ...     out.read_bytes()[:4]
        b'\x89PNG'
    """
    figure_class = _figure_class()
    from matplotlib.patches import Circle

    if resolution < 2:
        raise ValueError(f"resolution must be >= 2 pixels per side, got {resolution}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the image file to write (e.g. fig1.png)")
    fmt = _image_format(path)
    if isinstance(mock, Truth):
        truth, n_stars = mock, mock.config.n_observed
    else:
        truth = load_truth(mock)
        n_stars = len(read_catalog(mock)["x"])
        if n_stars == 0:
            raise ValueError(f"{mock} holds no stars: nothing to plot")
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
    fig = figure_class(figsize=(18, 4.6), layout="constrained")
    axes = fig.subplots(1, 4, squeeze=False)[0]
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
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=110)
    return path
