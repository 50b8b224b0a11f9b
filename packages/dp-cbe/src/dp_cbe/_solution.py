"""`PotentialSolution`: a fitted model evaluated in physical units; model directories."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import numpy as np
from jaxtyping import ArrayLike, Float

from . import _adapters, _derived, _expansion
from ._evaluate import BatchEvaluator, JaxPotential, JaxScalar
from ._fields import ScalarField
from ._frame import frame_physical, init_frame
from ._io import atomic_write
from ._losses import METHODS, CBEModel

MODEL_SCHEMA = "dp-cbe-model/1"


def build_model(hyper: dict[str, Any], *, key: jax.Array | None = None) -> CBEModel:
    """Rebuild a `CBEModel` skeleton from its hyperparameters (random weights)."""
    key = jax.random.PRNGKey(0) if key is None else key
    k_phi, k_aux = jax.random.split(key)
    phi = ScalarField(**_field_kwargs(hyper["phi"]), key=k_phi)
    aux = None
    if hyper["aux"] is not None:
        aux = ScalarField(**_field_kwargs(hyper["aux"]), key=k_aux)
    frame = init_frame(hyper.get("frame", "none"))
    return CBEModel(phi=phi, aux=aux, method=hyper["method"], frame=frame)


def _field_kwargs(h: dict[str, Any]) -> dict[str, Any]:
    out = dict(h)
    out["in_mean"] = tuple(out["in_mean"])
    return out


class PotentialSolution:
    """A fitted potential (and ln n or ln S), evaluated on (n, 3) positions in kpc.

    Evaluation computes only what is asked for (the Laplacian only for ``density``), jitted per
    quantity in batches padded to the next power of two (≤ 4096 points per call), so a
    one-point call costs one point. ``as_jax()`` gives the same functions as pure JAX.

    Attributes:
        method: ``vanilla``, ``selection`` or ``conditional``.
        model: the underlying `CBEModel` (internal units: kpc, 100 km/s, G = 1).
        hyperparameters: everything needed to rebuild the model skeleton.
        history: training history (may be empty).

    Example:
        A fitted model comes from ``dp_cbe.fit`` or ``dp_cbe.load_model("model_dir")``; here a
        tiny untrained one (random weights) shows the calls:

        >>> hyper = {"method": "vanilla", "aux": None,
        ...          "phi": {"width": 8, "depth": 1, "in_mean": [0.0, 0.0, 0.0]}}
        >>> sol = PotentialSolution(build_model(hyper), hyper)
        >>> sol.density(np.array([[1.0, 0.0, 0.0]])).shape  # M☉/kpc³
        (1,)
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

    def _evaluator(self, which: str = "phi") -> BatchEvaluator:
        """Batched evaluator of Φ (``phi``) or of ln n / ln S (``aux``), rebuilt if the model
        attribute was replaced."""
        cache = self.__dict__.setdefault("_evaluators", {})
        key = (which, id(self.model))
        if key not in cache:
            if len(cache) > 4:
                cache.clear()
            if which == "phi":
                cache[key] = BatchEvaluator(JaxPotential(self.model.phi))
            else:
                assert self.model.aux is not None
                cache[key] = BatchEvaluator(JaxScalar(self.model.aux))
        return cache[key]

    def potential(self, x: ArrayLike) -> Float[np.ndarray, " n"]:
        """Φ(x) in (km/s)², up to an additive constant; x (n, 3) in kpc."""
        return self._evaluator()("potential", x)[0]

    def acceleration(self, x: ArrayLike) -> Float[np.ndarray, "n 3"]:
        """−∇Φ(x) in (km/s)²/kpc; x (n, 3) in kpc."""
        return self._evaluator()("acceleration", x)[0]

    def potential_and_acceleration(
        self, x: ArrayLike
    ) -> tuple[Float[np.ndarray, " n"], Float[np.ndarray, "n 3"]]:
        """(Φ, −∇Φ) from one pass; x (n, 3) in kpc."""
        phi, acc = self._evaluator()("potential_and_acceleration", x)
        return phi, acc

    def hessian(self, x: ArrayLike) -> Float[np.ndarray, "n 3 3"]:
        """∂²Φ/∂x_i∂x_j in (km/s)²/kpc² (no Laplacian pass); x (n, 3) in kpc."""
        return self._evaluator()("hessian", x)[0]

    def density(self, x: ArrayLike) -> Float[np.ndarray, " n"]:
        """ρ = ∇²Φ/(4πG) in M☉/kpc³ (exact autodiff Laplacian); x (n, 3) in kpc."""
        return self._evaluator()("density", x)[0]

    def as_jax(self) -> JaxPotential:
        """Φ as pure JAX one-point functions in physical units, for jitted user code.

        Returns a `JaxPotential` (an equinox module): ``potential(x)``, ``acceleration(x)``,
        ``potential_and_acceleration(x)``, ``hessian(x)``, ``density(x)`` on ONE point (3,) in
        kpc; ``jax.vmap`` it for batches. Parameters are float32, as trained.
        """
        return JaxPotential(self.model.phi)

    def circular_velocity(self, R: ArrayLike, **kwargs: Any) -> Float[np.ndarray, " n"]:
        """v_c(R) in km/s at cylindrical radii R (kpc); see `dp_cbe.circular_velocity`."""
        return _derived.circular_velocity(self, R, **kwargs)

    def enclosed_mass(self, r: ArrayLike, **kwargs: Any) -> Float[np.ndarray, " n"]:
        """M(<r) in M☉ (Gauss's law by default); see `dp_cbe.enclosed_mass`."""
        return _derived.enclosed_mass(self, r, **kwargs)

    def vertical_force(self, R: ArrayLike, z: ArrayLike, **kwargs: Any) -> np.ndarray:
        """K_z(R, z) = −∂Φ/∂z in (km/s)²/kpc; see `dp_cbe.vertical_force`."""
        return _derived.vertical_force(self, R, z, **kwargs)

    def surface_density(self, R: ArrayLike, z_max: float, **kwargs: Any) -> np.ndarray:
        """Σ(R, |z| < z_max) in M☉/kpc²; see `dp_cbe.surface_density`."""
        return _derived.surface_density(self, R, z_max, **kwargs)

    def multipole_expansion(self, *, r_max: float, **kwargs: Any) -> _expansion.MultipoleExpansion:
        """Multipole expansion of the fitted density; see `dp_cbe.multipole_expansion`."""
        return _expansion.multipole_expansion(self, r_max=r_max, **kwargs)

    def to_gala(self, units: Any = None) -> Any:
        """A gala potential (needs ``dp-cbe[gala]``); see `dp_cbe.to_gala`."""
        return _adapters.to_gala(self, units=units)

    def to_galpy(self, ro: float = 8.0, vo: float = 220.0) -> Any:
        """A galpy potential (needs ``dp-cbe[galpy]``); see `dp_cbe.to_galpy`."""
        return _adapters.to_galpy(self, ro=ro, vo=vo)

    def ln_n(self, x: ArrayLike) -> Float[np.ndarray, " n"]:
        """ln n(x) of the tracers, up to a constant (conditional only); x (n, 3) in kpc."""
        if self.method != "conditional":
            raise AttributeError(
                f"ln_n is only available for method 'conditional', not {self.method!r}"
            )
        return self._evaluator("aux")("value", x)[0]

    def ln_selection(self, x: ArrayLike) -> Float[np.ndarray, " n"]:
        """ln S(x), up to a constant (selection only); x (n, 3) in kpc."""
        if self.method != "selection":
            raise AttributeError(
                f"ln_selection is only available for method 'selection', not {self.method!r}"
            )
        return self._evaluator("aux")("value", x)[0]

    @property
    def frame(self) -> dict[str, Any]:
        """The fitted frame in which the DF is stationary (`FitConfig.frame`): ``kind``,
        ``u0`` (3,) in km/s and ``omega`` (3,) in km/s/kpc, zeros where not fitted. The moving
        frame's velocity field relative to the data frame is u(x) = u0 + omega × x."""
        kind = self.hyperparameters.get("frame", "none")
        return frame_physical(self.model.frame, kind)

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
    if model.frame is not None:  # the fitted values, for reading (model.eqx holds them too)
        fitted = frame_physical(model.frame, hyper.get("frame", "none"))
        hyper = dict(hyper, fitted_frame={"u0_km_s": fitted["u0"].tolist(),
                                          "omega_km_s_kpc": fitted["omega"].tolist()})  # fmt: skip
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


UP_TO_A_CONSTANT = ("potential", "ln_n", "ln_selection")
"""Fields known only up to an additive constant: their member spread is taken after removing
each member's mean over the evaluated points."""


def model_fields(sol: PotentialSolution, x: ArrayLike) -> dict[str, np.ndarray]:
    """``potential`` ((km/s)², (n,)), ``acceleration`` ((km/s)²/kpc, (n, 3)), ``density``
    (M☉/kpc³, (n,)) and ``ln_n`` (conditional) or ``ln_selection`` (selection) at x (n, 3) kpc."""
    out = {"potential": sol.potential(x), "acceleration": sol.acceleration(x),
           "density": sol.density(x)}  # fmt: skip
    if sol.method == "conditional":
        out["ln_n"] = sol.ln_n(x)
    if sol.method == "selection":
        out["ln_selection"] = sol.ln_selection(x)
    return out


class EnsembleFields(NamedTuple):
    """The fields of an ensemble of fitted potentials at n points (see `evaluate_ensemble`).

    Attributes:
        value: field name → the main model's values, or the members' mean without one.
        std: field name → the members' sample standard deviation (ddof = 1), same shape and
            units as ``value``; for ``potential``, ``ln_n`` and ``ln_selection`` (known up to
            a constant) after removing each member's mean over the n points.
        n_members: the number of members.
    """

    value: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    n_members: int


def evaluate_ensemble(
    members: Sequence[PotentialSolution | str | Path],
    x: ArrayLike,
    *,
    main: PotentialSolution | str | Path | None = None,
) -> EnsembleFields:
    """Fields at x (n, 3) kpc with their spread over an ensemble of fits (the error band).

    Each field of `model_fields` (Φ, −∇Φ, ρ, ln n or ln S) comes with its standard deviation
    across ``members`` (sample, ddof = 1). Φ, ln n and ln S are known up to a constant, which
    each fit chooses freely: their spread is taken after removing each member's mean over the
    n points, so it measures how the fields' shapes differ (and depends on the point set;
    at a single point it is 0).

    Args:
        members: at least 2 fitted models (solutions or model directories), all of one method.
        x: (n, 3) positions in kpc.
        main: the model whose values are reported (e.g. the fit to the ensemble's mean
            gradients); None reports the members' mean. Not counted among the members.

    Returns:
        `EnsembleFields` with ``value`` and ``std`` per field, and ``n_members``.

    Raises:
        ValueError: fewer than 2 members (no spread to estimate), or members (and the main
            model) of different methods.

    Example:
        Two tiny untrained models (random weights); fitted ones come from ``load_model``:

        >>> hyper = {"method": "vanilla", "aux": None,
        ...          "phi": {"width": 8, "depth": 1, "in_mean": [0.0, 0.0, 0.0]}}
        >>> a, b = (PotentialSolution(build_model(hyper, key=jax.random.PRNGKey(k)), hyper)
        ...         for k in (1, 2))
        >>> x = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])  # kpc
        >>> ens = evaluate_ensemble([a, b], x)
        >>> ens.std["acceleration"].shape, ens.n_members  # (km/s)²/kpc
        ((2, 3), 2)
        >>> bool(np.allclose(ens.std["density"], np.abs(a.density(x) - b.density(x)) / 2**0.5))
        True
    """
    if len(members) < 2:
        raise ValueError(
            f"an ensemble's spread needs at least 2 members, got {len(members)}; evaluate a "
            "single model without members"
        )
    sols = [m if isinstance(m, PotentialSolution) else load_model(m) for m in members]
    ref = (
        None if main is None else main if isinstance(main, PotentialSolution) else load_model(main)
    )
    methods = {s.method for s in sols} | ({ref.method} if ref is not None else set())
    if len(methods) > 1:
        raise ValueError(f"the ensemble mixes methods {sorted(methods)}; give models of one method")
    fields = [model_fields(s, x) for s in sols]
    value = model_fields(ref, x) if ref is not None else {}
    std = {}
    for name in fields[0]:
        stack = np.stack([f[name] for f in fields])  # (members, n, ...)
        if name not in value:
            value[name] = stack.mean(axis=0)
        if name in UP_TO_A_CONSTANT:
            stack = stack - stack.mean(axis=1, keepdims=True)
        std[name] = stack.std(axis=0, ddof=1)
    return EnsembleFields(value, std, len(sols))
