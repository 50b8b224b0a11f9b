"""`gradients.h5` (schema ``dp-gradients/1``): the boundary of dp-cbe, and atomic writes.

dp-cbe owns this format: `GradientSet` is the record, `read_gradients` / `write_gradients` the
only reader and writer of the file, whoever drew the gradients (the pipeline's flows, or any
other density model). The densities a set may be of are those of dp-cbe's methods
(`DENSITY_OF_METHOD`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from jaxtyping import Float

from ._losses import DENSITY_OF_METHOD

GRADIENTS_SCHEMA = "dp-gradients/1"
"""The ``schema`` attribute of a ``gradients.h5``."""
# The text the pipeline's gradient sets have always carried (written by dp-flows until this
# module became the one writer; dp-cbe's own used ';'): kept, so that a set drawn again from
# the same flows is the same file, byte for byte (the pipeline keys downstream units on it).
UNITS = "x: kpc, v: km/s, dlnf_dx: 1/kpc, dlnf_dv: 1/(km/s)"
DENSITIES: tuple[str, ...] = tuple(DENSITY_OF_METHOD.values())
_VECTORS = ("x", "v", "dlnf_dx", "dlnf_dv")
_STD = ("dlnf_dx_std", "dlnf_dv_std")
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
        dlnf_dx_std: optional standard errors of ``dlnf_dx`` (N, 3), kpc⁻¹ — e.g. of an
            ensemble's mean gradients; given together with ``dlnf_dv_std`` or not at all.
            Stored with the set; `fit` does not use them.
        dlnf_dv_std: optional standard errors of ``dlnf_dv`` (N, 3), (km/s)⁻¹.
        group_size: the rows come in consecutive groups of this many velocities drawn at one
            position (their x rows are equal; N is a multiple of it). With groups of ≥ 4 the
            conditional fit can eliminate ∇ln n at each position by least squares
            (``FitConfig(ln_n_gradient="profile")``). 1: independent samples.
        exact: the gradients are exact — a closed-form or analytic model's (e.g. a mock's
            truth) — not estimated from data by a flow. `fit`'s automatic settings differ
            between the two (`FitConfig`). False unless the writer says so.

    Example:
        >>> import numpy as np, dp_cbe
        >>> rng = np.random.default_rng(0)
        >>> x, v = rng.normal(size=(4, 3)), 100 * rng.normal(size=(4, 3))
        >>> gs = dp_cbe.GradientSet(x, v, -x, -v / 100**2, density="f")
        >>> len(gs), gs.density
        (4, 'f')
        >>> dp_cbe.GradientSet(x, v, -x, -v, density="p")
        Traceback (most recent call last):
        ...
        ValueError: gradients: density must be one of ('f', 'f_obs', 'p_v_given_x'), got 'p'
    """

    x: Float[np.ndarray, "n 3"]
    v: Float[np.ndarray, "n 3"]
    dlnf_dx: Float[np.ndarray, "n 3"]
    dlnf_dv: Float[np.ndarray, "n 3"]
    density: str
    ln_n_obs: Float[np.ndarray, " n"] | None = None
    dlnf_dx_std: Float[np.ndarray, "n 3"] | None = None
    dlnf_dv_std: Float[np.ndarray, "n 3"] | None = None
    group_size: int = 1
    exact: bool = False

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
        given = [name for name in _STD if getattr(self, name) is not None]
        if len(given) == 1:
            raise ValueError(f"gradients: {given[0]!r} without its pair: give both of {_STD}")
        for name in given:
            object.__setattr__(self, name, _check_array(name, getattr(self, name), len(x), 3))
        k = self.group_size
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"gradients: group_size must be an integer >= 1, got {k!r}")
        object.__setattr__(self, "group_size", int(k))
        if not isinstance(self.exact, (bool, np.bool_)):
            raise ValueError(f"gradients: exact must be True or False, got {self.exact!r}")
        object.__setattr__(self, "exact", bool(self.exact))
        if k > 1:
            if len(x) % k:
                raise ValueError(
                    f"gradients: {len(x)} rows are not a whole number of groups of {k}"
                )
            xg = x.reshape(-1, k, 3)
            unequal = np.any(xg != xg[:, :1], axis=(1, 2))
            if unequal.any():
                raise ValueError(
                    f"gradients: {int(unequal.sum())} of {len(xg)} groups of {k} rows do not "
                    "share one position x (group_size says they do)"
                )

    def __len__(self) -> int:
        return int(self.x.shape[0])


def read_gradients(path: str | Path) -> GradientSet:
    """Read and validate a ``gradients.h5`` file (any writer's: the attribute ``units`` is
    not read; ``/ln_n_obs`` and the ``/dlnf_dx_std``, ``/dlnf_dv_std`` pair where present).

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
        if schema is not None and schema != GRADIENTS_SCHEMA:
            raise ValueError(f"{path}: schema is {schema!r}, expected {GRADIENTS_SCHEMA!r}")
        missing = [f"/{k}" for k in _VECTORS if k not in fh]
        if missing:
            raise KeyError(f"{path}: missing dataset(s) {', '.join(missing)}")
        if "density" not in fh.attrs:
            raise KeyError(f"{path}: missing root attribute 'density' (one of {DENSITIES})")
        density = fh.attrs["density"]
        density = density.decode() if isinstance(density, bytes) else str(density)
        arrays = {k: np.asarray(fh[k][()]) for k in _VECTORS}  # pyright: ignore[reportIndexIssue]  # h5py types f[...] as Group | Dataset | Datatype
        # The standard errors come as a pair (a lone one is not part of the format: ignored).
        names = [k for k in ("ln_n_obs", *_STD) if k in fh]
        names = [k for k in names if k == "ln_n_obs" or all(s in fh for s in _STD)]
        optional = {k: np.asarray(fh[k][()]) for k in names}  # pyright: ignore[reportIndexIssue]  # h5py types f[...] as Group | Dataset | Datatype
        group = fh.attrs.get("group_size", 1)
        exact = fh.attrs.get("exact", 0)
    if isinstance(group, np.ndarray) or not np.issubdtype(type(group), np.integer):
        raise ValueError(f"{path}: attribute 'group_size' must be an integer, got {group!r}")
    if (
        isinstance(exact, np.ndarray)
        or not np.issubdtype(type(exact), np.integer)
        or exact not in (0, 1)
    ):
        raise ValueError(f"{path}: attribute 'exact' must be the integer 0 or 1, got {exact!r}")
    return GradientSet(
        **arrays, density=density, **optional, group_size=int(group), exact=bool(exact)
    )


def write_gradients(path: str | Path, gradient_set: GradientSet) -> Path:
    """Write a `GradientSet` to ``path`` (atomically) and return the path.

    Root attributes ``schema``, ``units``, ``density`` (and ``group_size`` when > 1, ``exact``
    = 1 for exact gradients); datasets ``/x``, ``/v``, ``/dlnf_dx``,
    ``/dlnf_dv`` and, where the set has them, ``/dlnf_dx_std``, ``/dlnf_dv_std`` and
    ``/ln_n_obs`` (docs/formats.md). The same set always gives the same bytes.

    Example:
        >>> import tempfile, numpy as np, dp_cbe
        >>> x = np.random.default_rng(0).normal(size=(4, 3))
        >>> gs = dp_cbe.GradientSet(x, 10 * x, -x, -x / 100, density="p_v_given_x")
        >>> path = dp_cbe.write_gradients(tempfile.mkdtemp() + "/gradients.h5", gs)
        >>> back = dp_cbe.read_gradients(path)
        >>> back.density, bool((back.dlnf_dx == gs.dlnf_dx).all())
        ('p_v_given_x', True)
    """
    path = Path(path)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as fh:
            fh.attrs["schema"] = GRADIENTS_SCHEMA
            fh.attrs["units"] = UNITS
            fh.attrs["density"] = gradient_set.density
            if gradient_set.group_size > 1:  # absent means 1 (files from before groups)
                fh.attrs["group_size"] = np.int64(gradient_set.group_size)
            if gradient_set.exact:  # absent means estimated (files from before the flag)
                fh.attrs["exact"] = np.int8(1)
            for k in _VECTORS:
                fh.create_dataset(k, data=getattr(gradient_set, k))
            if gradient_set.dlnf_dx_std is not None and gradient_set.dlnf_dv_std is not None:
                for k in _STD:
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
