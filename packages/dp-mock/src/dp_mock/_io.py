"""catalog.h5 (schema ``dp-catalog/1``): atomic writing, validated reading, and the truth."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._config import MockConfig
from ._truth import Truth

SCHEMA = "dp-catalog/1"
UNITS = "x: kpc; v: km/s; magnitudes and extinction: mag; masses: Msun; G: kpc (km/s)^2 / Msun"
_VECTORS = ("x", "v")
_SCALARS = ("weight", "abs_mag", "app_mag", "extinction", "selection")


def _umask() -> int:
    """The process umask, read from /proc where possible (so it is never changed)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary file next to ``path`` that replaces ``path`` when the block succeeds.

    The temporary file is in the same folder (so ``os.replace`` is atomic) and is given the mode
    a plain ``open()`` would (0666 less the umask, not mkstemp's 0600); if the block raises, it
    is removed and ``path`` is left as it was. The parent folder is created if missing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _open_hdf5(path: str | Path) -> h5py.File:
    """Open ``path`` read-only; a missing file, a folder or a non-HDF5 file is a one-line error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, expected an HDF5 file")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not an HDF5 file")
    return h5py.File(path, "r")


def write_catalog(
    path: str | Path,
    stars: dict[str, np.ndarray],
    *,
    truth_attrs: dict[str, Any] | None = None,
    ln_dust: np.ndarray | None = None,
    dust_extent: float | None = None,
    attrs: Mapping[str, str] | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write a catalogue atomically (temporary file in the same folder, then ``os.replace``).

    The one writer of the ``dp-catalog/1`` layout: mocks write their truth with it, and the
    pipeline's ingest of a real survey its provenance (``attrs``, ``extra``).

    Args:
        path: destination.
        stars: ``x`` and ``v`` (N, 3) plus optional (N,) columns (weight, abs_mag, app_mag,
            extinction, selection).
        truth_attrs: attributes of the ``/truth`` group (``config`` is a JSON string).
        ln_dust: the dust grid (G, G, G), stored as ``/truth/ln_dust``.
        dust_extent: half-width of the dust box (kpc).
        attrs: further root attributes (strings), e.g. an ingest's report as JSON; they may
            not replace ``schema`` or ``units``.
        extra: further datasets outside ``/stars`` and ``/truth``, by path (``"ingest/source_id"``),
            written as given.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the catalogue file to write (e.g. catalog.h5)")
    stars = {k: np.asarray(a, dtype=np.float64) for k, a in stars.items()}
    _check_stars(stars, f"{path} (before writing)")
    reserved = {"schema", "units"} & set(attrs or {})
    if reserved:
        raise ValueError(f"attrs may not set the format's own attribute(s) {sorted(reserved)}")
    clash = [k for k in extra or {} if k.strip("/").split("/")[0] in ("stars", "truth")]
    if clash:
        raise ValueError(f"extra datasets may not go under /stars or /truth: {clash}")
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["units"] = UNITS
        for k, val in (attrs or {}).items():
            f.attrs[k] = val
        grp = f.create_group("stars")
        for name, arr in stars.items():
            grp.create_dataset(name, data=arr)
        for name, arr in (extra or {}).items():
            f.create_dataset(name.strip("/"), data=arr)
        if truth_attrs is not None:
            tg = f.create_group("truth")
            for k, val in truth_attrs.items():
                tg.attrs[k] = val
            if dust_extent is not None:
                tg.attrs["dust_extent"] = float(dust_extent)
            if ln_dust is not None:
                ds = tg.create_dataset("ln_dust", data=np.asarray(ln_dust, dtype=np.float64))
                ds.attrs["dust_extent"] = float(dust_extent or 0.0)
                ds.attrs["units"] = "ln(mag/kpc); node (i,j,k) at -extent + (i,j,k)*2*extent/G"
    return path


def _check_stars(stars: dict[str, np.ndarray], where: str) -> None:
    for name in _VECTORS:
        if name not in stars:
            raise KeyError(f"{where}: required dataset /stars/{name} is missing")
    n = len(stars["x"])
    for name, arr in stars.items():
        want = (n, 3) if name in _VECTORS else (n,)
        if arr.shape != want:
            raise ValueError(f"{where}: /stars/{name} has shape {arr.shape}, expected {want}")
        bad = ~np.isfinite(arr) if arr.ndim == 1 else ~np.all(np.isfinite(arr), axis=1)
        if bad.any():
            raise ValueError(f"{where}: /stars/{name} has {int(bad.sum())} non-finite rows of {n}")


def read_catalog(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``/stars/*`` of a catalog.h5, validated.

    Returns:
        dict name → array: ``x``, ``v`` (N, 3) and whichever (N,) columns exist.

    Raises:
        KeyError: a required dataset (``/stars/x``, ``/stars/v``) is missing.
        ValueError: wrong schema, wrong shape, or non-finite rows (naming the dataset and the
            number of bad rows).
    """
    out: dict[str, np.ndarray] = {}
    with _open_hdf5(path) as f:
        schema = f.attrs.get("schema")
        if schema != SCHEMA:
            raise ValueError(f"{path}: schema attr is {schema!r}, expected {SCHEMA!r}")
        if "stars" not in f:
            raise KeyError(f"{path}: required group /stars is missing")
        for name, ds in f["stars"].items():  # pyright: ignore[reportAttributeAccessIssue]  # h5py types f[...] as Group | Dataset | Datatype
            out[name] = np.asarray(ds[()], dtype=np.float64)
    _check_stars(out, str(path))
    return out


def load_truth(path: str | Path) -> Truth:
    """Rebuild every truth function of a mock from its catalog.h5 alone.

    Example:
        Skipped in doctests: it needs a mock's catalog.h5 (`generate_catalog` writes one).

        >>> truth = load_truth("catalog.h5")  # doctest: +SKIP
        >>> truth.selection(np.zeros((1, 3)))  # doctest: +SKIP
    """
    with _open_hdf5(path) as f:
        if "truth" not in f or "config" not in f["truth"].attrs:
            raise KeyError(f"{path}: no /truth group with a 'config' attribute (not a mock?)")
        config = MockConfig.from_dict(json.loads(f["truth"].attrs["config"]))  # pyright: ignore[reportArgumentType]  # h5py types attrs as any array; this one is a JSON string
        ln_dust = None
        if config.dust:
            if "truth/ln_dust" not in f:
                raise KeyError(f"{path}: dusty mock without /truth/ln_dust")
            ln_dust = np.asarray(f["truth/ln_dust"][()])  # pyright: ignore[reportIndexIssue]  # h5py types f[...] as Group | Dataset | Datatype
    return Truth(config, ln_dust)
