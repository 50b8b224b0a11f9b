"""`gradients.h5` (schema ``dp-gradients/1``): the boundary of dp-cbe, and atomic writes."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from jaxtyping import Float

SCHEMA = "dp-gradients/1"
UNITS = "x: kpc; v: km/s; dlnf_dx: 1/kpc; dlnf_dv: 1/(km/s)"
DENSITIES: tuple[str, ...] = ("f", "f_obs", "p_v_given_x")
_VECTORS = ("x", "v", "dlnf_dx", "dlnf_dv")
MAX_ABS = 1e18
"""Largest |value| in a gradient set: training squares positions, velocities and gradients in
float32, whose largest finite square root is ~1.8e19."""


def _check_array(name: str, a: object, n: int | None, ncol: int | None) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    want = "(N, 3)" if ncol else "(N,)"
    if (ncol and (arr.ndim != 2 or arr.shape[1] != ncol)) or (not ncol and arr.ndim != 1):
        raise ValueError(f"gradients: dataset {name!r} must have shape {want}, got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"gradients: dataset {name!r} has {arr.shape[0]} rows, /x has {n}")
    per_row = tuple(range(1, arr.ndim))
    bad = ~np.isfinite(arr).all(axis=per_row)
    if bad.any():
        raise ValueError(
            f"gradients: dataset {name!r} has {int(bad.sum())} of {arr.shape[0]} rows with "
            "NaN/inf values; drop those samples (e.g. points outside the density model's "
            "support) before fitting"
        )
    huge = (np.abs(arr) > MAX_ABS).any(axis=per_row)
    if huge.any():
        raise ValueError(
            f"gradients: dataset {name!r} has {int(huge.sum())} of {arr.shape[0]} rows with "
            f"|value| > {MAX_ABS:g}, whose squares overflow float32 training; drop those "
            "samples or rescale the units"
        )
    return arr


@dataclasses.dataclass(frozen=True)
class GradientSet:
    """Samples (x, v) with the gradients of a log-density (validated on construction).

    Attributes:
        x: positions (N, 3), kpc.
        v: velocities (N, 3), km/s.
        dlnf_dx: ∇_x ln density (N, 3), kpc⁻¹.
        dlnf_dv: ∇_v ln density (N, 3), (km/s)⁻¹.
        density: which density the gradients are of: ``f`` (vanilla), ``f_obs``
            (selection) or ``p_v_given_x`` (conditional).
        ln_n_obs: optional ln of the observed tracer density at x (N,), only used by the
            conditional variant's optional n–n_obs term.
    """

    x: Float[np.ndarray, "n 3"]
    v: Float[np.ndarray, "n 3"]
    dlnf_dx: Float[np.ndarray, "n 3"]
    dlnf_dv: Float[np.ndarray, "n 3"]
    density: str
    ln_n_obs: Float[np.ndarray, " n"] | None = None

    def __post_init__(self) -> None:
        if self.density not in DENSITIES:
            raise ValueError(f"gradients: density must be one of {DENSITIES}, got {self.density!r}")
        x = _check_array("x", self.x, None, 3)
        if x.shape[0] == 0:
            raise ValueError("gradients: dataset 'x' is empty")
        object.__setattr__(self, "x", x)
        for name in _VECTORS[1:]:
            object.__setattr__(self, name, _check_array(name, getattr(self, name), len(x), 3))
        if self.ln_n_obs is not None:
            object.__setattr__(
                self, "ln_n_obs", _check_array("ln_n_obs", self.ln_n_obs, len(x), None)
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])


def read_gradients(path: str | Path) -> GradientSet:
    """Read and validate a ``gradients.h5`` file.

    Raises:
        FileNotFoundError: no such file.
        KeyError: a required dataset or the ``density`` attribute is missing (named).
        ValueError: not an HDF5 file, wrong schema, shapes, non-finite rows or values beyond
            ``MAX_ABS`` (dataset and row count named).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"gradients file not found: {path}")
    check_hdf5(path)
    with h5py.File(path, "r") as fh:
        schema = fh.attrs.get("schema")
        if isinstance(schema, bytes):
            schema = schema.decode()
        if schema is not None and schema != SCHEMA:
            raise ValueError(f"{path}: schema is {schema!r}, expected {SCHEMA!r}")
        missing = [f"/{k}" for k in _VECTORS if k not in fh]
        if missing:
            raise KeyError(f"{path}: missing dataset(s) {', '.join(missing)}")
        if "density" not in fh.attrs:
            raise KeyError(f"{path}: missing root attribute 'density' (one of {DENSITIES})")
        density = fh.attrs["density"]
        density = density.decode() if isinstance(density, bytes) else str(density)
        arrays = {k: np.asarray(fh[k][()]) for k in _VECTORS}  # pyright: ignore[reportIndexIssue]  # h5py types f[...] as Group | Dataset | Datatype
        ln_n_obs = np.asarray(fh["ln_n_obs"][()]) if "ln_n_obs" in fh else None  # pyright: ignore[reportIndexIssue]  # h5py types f[...] as Group | Dataset | Datatype
    return GradientSet(**arrays, density=density, ln_n_obs=ln_n_obs)


def write_gradients(path: str | Path, gradient_set: GradientSet) -> Path:
    """Write a `GradientSet` to ``path`` (atomically) and return the path."""
    path = Path(path)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as fh:
            fh.attrs["schema"] = SCHEMA
            fh.attrs["units"] = UNITS
            fh.attrs["density"] = gradient_set.density
            for k in _VECTORS:
                fh.create_dataset(k, data=getattr(gradient_set, k))
            if gradient_set.ln_n_obs is not None:
                fh.create_dataset("ln_n_obs", data=gradient_set.ln_n_obs)

    atomic_write(path, write)
    return path


def check_hdf5(path: Path) -> None:
    """Raise ValueError (one line) unless ``path`` is an HDF5 file (not a folder, not text)."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder, expected an HDF5 file")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not an HDF5 file")


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


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temp file in path's folder, then ``os.replace`` it onto path.

    The file gets the mode a plain ``open()`` would give it (``0o666 & ~umask``), not
    ``mkstemp``'s 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
