"""`PotentialSolution`: a fitted model evaluated in physical units; model directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._fields import ScalarField, grad_and_laplacian
from ._io import atomic_write
from ._losses import METHODS, CBEModel
from ._units import POTENTIAL_UNIT, density_from_laplacian

MODEL_SCHEMA = "dp-cbe-model/1"
EVAL_BATCH = 4096


def build_model(hyper: dict[str, Any], *, key: jax.Array | None = None) -> CBEModel:
    """Rebuild a `CBEModel` skeleton from its hyperparameters (random weights)."""
    key = jax.random.PRNGKey(0) if key is None else key
    k_phi, k_aux = jax.random.split(key)
    phi = ScalarField(**_field_kwargs(hyper["phi"]), key=k_phi)
    aux = None
    if hyper["aux"] is not None:
        aux = ScalarField(**_field_kwargs(hyper["aux"]), key=k_aux)
    return CBEModel(phi=phi, aux=aux, method=hyper["method"])


def _field_kwargs(h: dict[str, Any]) -> dict[str, Any]:
    out = dict(h)
    out["in_mean"] = tuple(out["in_mean"])
    return out


@eqx.filter_jit
def _phi_batch(model: CBEModel, x: Array) -> tuple[Array, Array, Array]:
    return jax.vmap(lambda p: grad_and_laplacian(model.phi, p))(x)


@eqx.filter_jit
def _aux_batch(model: CBEModel, x: Array) -> Array:
    assert model.aux is not None
    return jax.vmap(model.aux)(x)


class PotentialSolution:
    """A fitted potential (and ln n or ln S), evaluated on (n, 3) positions in kpc.

    Evaluation runs jitted in fixed-size batches of 4096 points (one compile per quantity).

    Attributes:
        method: ``vanilla``, ``selection`` or ``conditional``.
        model: the underlying `CBEModel` (internal units: kpc, 100 km/s, G = 1).
        hyperparameters: everything needed to rebuild the model skeleton.
        history: training history (may be empty).

    Example:
        >>> sol = dp_cbe.load_model("model_dir")  # doctest: +SKIP
        >>> rho = sol.density(np.array([[1.0, 0.0, 0.0]]))  # M☉/kpc³
    """

    def __init__(
        self, model: CBEModel, hyperparameters: dict[str, Any], history: dict | None = None
    ) -> None:
        if model.method not in METHODS:
            raise ValueError(f"unknown method {model.method!r}")
        self.model = model
        self.method: str = model.method
        self.hyperparameters = hyperparameters
        self.history = history or {}

    def _batched(self, fn: Any, x: ArrayLike) -> list[np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != 3:
            raise ValueError(f"positions must have shape (n, 3), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("positions contain NaN/inf")
        n = x.shape[0]
        chunks: list[list[np.ndarray]] = []
        for start in range(0, n, EVAL_BATCH):
            part = x[start : start + EVAL_BATCH]
            pad = np.zeros((EVAL_BATCH, 3), np.float32)
            pad[: len(part)] = part
            out = fn(self.model, jnp.asarray(pad))
            out = out if isinstance(out, tuple) else (out,)
            chunks.append([np.asarray(o, np.float64)[: len(part)] for o in out])
        if not chunks:
            return [np.zeros((0,)), np.zeros((0, 3)), np.zeros((0,))]
        return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]

    def potential(self, x: ArrayLike) -> Float[np.ndarray, " n"]:
        """Φ(x) in (km/s)², up to an additive constant; x (n, 3) in kpc."""
        return self._batched(_phi_batch, x)[0] * POTENTIAL_UNIT

    def acceleration(self, x: ArrayLike) -> Float[np.ndarray, "n 3"]:
        """−∇Φ(x) in (km/s)²/kpc; x (n, 3) in kpc."""
        return -self._batched(_phi_batch, x)[1] * POTENTIAL_UNIT

    def density(self, x: ArrayLike) -> Float[np.ndarray, " n"]:
        """ρ = ∇²Φ/(4πG) in M☉/kpc³ (exact autodiff Laplacian); x (n, 3) in kpc."""
        return density_from_laplacian(self._batched(_phi_batch, x)[2])

    def ln_n(self, x: ArrayLike) -> Float[np.ndarray, " n"]:
        """ln n(x) of the tracers, up to a constant (conditional only); x (n, 3) in kpc."""
        if self.method != "conditional":
            raise AttributeError(
                f"ln_n is only available for method 'conditional', not {self.method!r}"
            )
        return self._batched(_aux_batch, x)[0]

    def ln_selection(self, x: ArrayLike) -> Float[np.ndarray, " n"]:
        """ln S(x), up to a constant (selection only); x (n, 3) in kpc."""
        if self.method != "selection":
            raise AttributeError(
                f"ln_selection is only available for method 'selection', not {self.method!r}"
            )
        return self._batched(_aux_batch, x)[0]

    def save(self, directory: str | Path) -> Path:
        """Write ``model.eqx`` + ``hyperparameters.json`` (+ ``history.json``), atomically."""
        return save_model(self.model, self.hyperparameters, directory, history=self.history)


def save_model(
    model: CBEModel, hyper: dict[str, Any], directory: str | Path, *, history: dict | None = None
) -> Path:
    """Save a model directory (atomic writes of each file)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / "model.eqx", lambda p: eqx.tree_serialise_leaves(p, model))
    text = json.dumps(hyper, indent=2, sort_keys=True)
    atomic_write(directory / "hyperparameters.json", lambda p: p.write_text(text))
    if history:
        hist = json.dumps(history)
        atomic_write(directory / "history.json", lambda p: p.write_text(hist))
    return directory


def load_model(directory: str | Path) -> PotentialSolution:
    """Load a model directory written by `fit` or `PotentialSolution.save`.

    Raises:
        FileNotFoundError: ``model.eqx`` or ``hyperparameters.json`` is missing.
        ValueError: the hyperparameters have an unknown schema.
    """
    directory = Path(directory)
    for name in ("model.eqx", "hyperparameters.json"):
        if not (directory / name).exists():
            raise FileNotFoundError(f"{directory}: missing {name} (not a dp-cbe model directory)")
    hyper = json.loads((directory / "hyperparameters.json").read_text())
    if hyper.get("schema") != MODEL_SCHEMA:
        raise ValueError(f"{directory}: schema {hyper.get('schema')!r}, expected {MODEL_SCHEMA!r}")
    model = eqx.tree_deserialise_leaves(directory / "model.eqx", build_model(hyper))
    hist_path = directory / "history.json"
    history = json.loads(hist_path.read_text()) if hist_path.exists() else {}
    return PotentialSolution(model, hyper, history)
