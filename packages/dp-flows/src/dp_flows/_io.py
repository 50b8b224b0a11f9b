"""Flow directories (``model.eqx`` + ``hyperparameters.json``) and catalogue reading."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import h5py
import jax
import jax.numpy as jnp
import numpy as np

from ._fields import ResNetField
from ._flow import Flow
from ._whiten import ConditionalAffine

FLOW_SCHEMA = "dp-flow/1"


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
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in the same folder; on success it replaces ``path`` atomically.

    The file gets the mode a plain ``open()`` would give it (``0o666 & ~umask``), not
    ``mkstemp``'s 0600. A killed process leaves the hidden ``.NAME.XXXXXXXX.tmp`` behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


def save_flow(flow: Flow, directory: str | Path) -> Path:
    """Save ``flow`` to ``directory`` (``model.eqx`` + ``hyperparameters.json``), atomically."""
    directory = Path(directory)
    field = flow.field
    if not isinstance(field, ResNetField):  # load_flow rebuilds a ResNetField
        raise TypeError(f"save_flow saves ResNetField flows, got {type(field).__name__}")
    hyper = {
        "schema": FLOW_SCHEMA,
        "field": field.hyperparameters(),
        "whitener": None if flow.whitener is None else flow.whitener.hyperparameters(),
        "dtype": str(field.layer_in.weight.dtype),
        "solver": {
            "rtol": flow.rtol,
            "atol": flow.atol,
            "max_steps": flow.max_steps,
            "fixed_steps": flow.fixed_steps,
            "fixed_solver": flow.fixed_solver,
        },
        "cond_log_r": flow.cond_log_r,
        "standardisation": {
            "x_mean": np.asarray(flow.x_mean).tolist(),
            "x_std": np.asarray(flow.x_std).tolist(),
            "c_mean": None if flow.c_mean is None else np.asarray(flow.c_mean).tolist(),
            "c_std": None if flow.c_std is None else np.asarray(flow.c_std).tolist(),
        },
    }
    with atomic_path(directory / "model.eqx") as tmp:
        eqx.tree_serialise_leaves(tmp, flow)
    write_json(directory / "hyperparameters.json", hyper)
    return directory


def load_flow(directory: str | Path) -> Flow:
    """Rebuild a flow saved by `save_flow` (no training config needed)."""
    directory = Path(directory)
    hp_path = directory / "hyperparameters.json"
    if not hp_path.is_file() or not (directory / "model.eqx").is_file():
        raise FileNotFoundError(
            f"{directory} is not a flow directory (needs model.eqx and hyperparameters.json)"
        )
    hyper = json.loads(hp_path.read_text())
    if hyper.get("schema") != FLOW_SCHEMA:
        raise ValueError(f"{hp_path}: schema {hyper.get('schema')!r}, expected {FLOW_SCHEMA!r}")
    dt = hyper["dtype"]
    field = ResNetField(**hyper["field"], dtype=dt, key=jax.random.key(0))
    st = hyper["standardisation"]

    def arr(v):
        return None if v is None else jnp.asarray(v, dt)

    wh = hyper.get("whitener")
    whitener = None if wh is None else ConditionalAffine(**wh, dtype=dt, key=jax.random.key(0))
    skeleton = Flow(
        field=field,
        whitener=whitener,
        x_mean=jnp.asarray(st["x_mean"], dt),
        x_std=jnp.asarray(st["x_std"], dt),
        c_mean=arr(st["c_mean"]),
        c_std=arr(st["c_std"]),
        cond_log_r=bool(hyper.get("cond_log_r", False)),
        **hyper["solver"],
    )
    return eqx.tree_deserialise_leaves(directory / "model.eqx", skeleton)


def read_catalog_arrays(
    path: str | Path, names: Sequence[str], *, optional: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """Read and validate datasets of a ``catalog.h5`` (e.g. ``/stars/x``, ``/stars/weight``).

    Checks: the file exists, required datasets exist, every array has the same number of
    rows, points are (N, 3), and no row holds NaN/inf. Errors name the dataset and the count
    of bad rows. A folder or a non-HDF5 file is a ValueError saying so. Missing optional datasets are left out of the result.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"catalogue {path} is a folder, expected an HDF5 file")
    if not path.is_file():
        raise FileNotFoundError(f"catalogue {path} does not exist")
    if not h5py.is_hdf5(path):
        raise ValueError(f"catalogue {path} is not an HDF5 file")
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        for name in [*names, *optional]:
            if name not in f:
                if name in optional:
                    continue
                raise KeyError(f"{path}: required dataset {name!r} is missing")
            a = np.asarray(f[name][()], dtype=np.float64)  # pyright: ignore[reportIndexIssue]  # h5py types f[...] as Group | Dataset | Datatype
            if name.rsplit("/", 1)[-1] in ("x", "v") and (a.ndim != 2 or a.shape[1] != 3):
                raise ValueError(f"{path}: dataset {name!r} must have shape (N, 3), got {a.shape}")
            if name.rsplit("/", 1)[-1] not in ("x", "v") and a.ndim != 1:
                raise ValueError(f"{path}: dataset {name!r} must have shape (N,), got {a.shape}")
            if len(a) == 0:
                raise ValueError(f"{path}: dataset {name!r} has 0 rows (no stars)")
            bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
            if bad.any():
                raise ValueError(f"{path}: dataset {name!r} has {int(bad.sum())} rows with NaN/inf")
            out[name] = a
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{path}: datasets have different numbers of rows: {lengths}")
    return out
