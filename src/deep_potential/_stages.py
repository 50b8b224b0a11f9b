"""The work of each pipeline stage, through the packages' public APIs and files only."""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from jaxtyping import Float

from ._config import PipelineConfig

if TYPE_CHECKING:  # at run time imported where needed: `import deep_potential` stays free of JAX
    import dp_cbe
    from jaxtyping import ArrayLike

logger = logging.getLogger("deep_potential")

STAGES: tuple[str, ...] = ("mock", "flows", "gradients", "potentials", "report")
#: which flows each method's gradient set is drawn from (besides the conditional flow)
SPATIAL_FLOW_OF = {"vanilla": "spatial_weighted", "selection": "spatial", "conditional": None}


def derive_seed(seed: int, name: str) -> int:
    """A per-unit seed in [0, 2**31) from the master seed and the unit's name (reproducible)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def has_truth(catalog: Path) -> bool:
    """Whether a catalogue carries a ``/truth`` group (a dp-mock catalogue)."""
    with h5py.File(catalog, "r") as f:
        return "truth" in f


def catalog_r_max(config: PipelineConfig, catalog: Path) -> float:
    """The volume's radius (kpc): the truth's r_max, ``[data] r_max`` or the farthest star."""
    if config.data is not None and config.data.r_max is not None:
        return float(config.data.r_max)
    if has_truth(catalog):
        import dp_mock

        return float(dp_mock.load_truth(catalog).r_max)
    with h5py.File(catalog, "r") as f:
        x = np.asarray(f["stars/x"])
    return float(np.sqrt((x**2).sum(axis=1)).max())


def make_mock(config: PipelineConfig, out: Path) -> dict[str, str]:
    """Generate the mock catalogue into ``out/catalog.h5``."""
    import dp_mock

    assert config.mock is not None  # None only when [data] replaces the mock
    path = dp_mock.generate_catalog(config.mock, out / "catalog.h5", progress=True)
    dp_mock.read_catalog(path)  # validates shapes and finiteness
    return {"catalog": Path(path).name}


def vanilla_weights(stars: Mapping[str, np.ndarray], clip: float) -> np.ndarray:
    """Per-star weights of the vanilla spatial flow: ``/stars/weight`` or 1/S_true, clipped."""
    if "weight" in stars:
        w = np.asarray(stars["weight"], dtype=np.float64)
    elif "selection" in stars:
        s = np.asarray(stars["selection"], dtype=np.float64)
        w = 1.0 / np.maximum(s, 1.0 / clip)
    else:
        raise KeyError("vanilla needs /stars/weight or /stars/selection in the catalogue")
    return np.minimum(w, clip)


def bootstrap_counts(n: int, seed: int) -> np.ndarray:
    """How often each of n stars is drawn in a bootstrap resample of size n (float64 weights).

    A star drawn k times weighs k, which is the resample itself for a flow fitted by a
    weighted likelihood; about 37 % of the stars weigh 0.
    """
    rng = np.random.default_rng([seed, 0xB007])
    return np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)


def fit_one_flow(config: PipelineConfig, name: str, catalog: Path, out: Path) -> dict[str, str]:
    """Fit flow ``name`` (conditional | spatial | spatial_weighted) and save it to out/model."""
    import dp_flows
    import dp_mock

    stars = dp_mock.read_catalog(catalog)
    x = np.asarray(stars["x"], dtype=np.float64)
    v = np.asarray(stars["v"], dtype=np.float64)
    seed = derive_seed(config.run.seed, f"flows/{name}")
    if name in config.conditional_flows:
        kw: dict[str, Any] = {"condition": x}
        if config.conditional_bootstrap:
            kw["weights"] = bootstrap_counts(
                len(x), derive_seed(config.run.seed, f"bootstrap/{name}")
            )
        data, cfg = v, config.flow_conditional
    else:
        kw = {}
        if name == "spatial_weighted":
            kw["weights"] = vanilla_weights(stars, config.vanilla_weight_clip)
        data, cfg = x, config.flow_spatial
    flow = dp_flows.fit_flow(data, config=cfg, seed=seed, out_dir=out / "work", progress=True, **kw)
    dp_flows.save_flow(flow, out / "model")
    return {"model": "model"}


def draw_gradients(
    config: PipelineConfig, method: str, flow_dirs: Mapping[str, Path], catalog: Path, out: Path
) -> dict[str, str]:
    """Sample DF gradients for ``method`` from its flows into ``out/gradients.h5``."""
    import dp_cbe
    import dp_flows
    import dp_mock

    from ._gradients import make_gradients

    g = config.gradients
    members = [dp_flows.load_flow(flow_dirs[n]) for n in config.conditional_flows]
    spatial_name = SPATIAL_FLOW_OF[method]
    spatial = dp_flows.load_flow(flow_dirs[spatial_name]) if spatial_name else None
    positions = None
    if spatial is None:  # p(v|x) at the observed stars' positions
        positions = np.asarray(dp_mock.read_catalog(catalog)["x"], dtype=np.float64)
    grads = make_gradients(
        method,
        conditional=members if len(members) > 1 else members[0],
        spatial=spatial,
        n=g.n,
        seed=derive_seed(config.run.seed, f"gradients/{method}"),
        positions=positions,
        uniform_fraction=g.uniform_fraction_for(method),
        r_max=catalog_r_max(config, catalog),
        uniform_support=g.uniform_support if positions is not None else "ball",
        velocities_per_position=g.velocities_per_position if method == "conditional" else 1,
        batch_size=g.batch_size,
        progress=True,
    )
    outputs = {"gradients": "gradients.h5"}
    if g.oracle:
        gs = oracle_gradients(grads.x, grads.v, grads.density, dp_mock.load_truth(catalog),
                              group_size=grads.group_size)  # fmt: skip
    else:
        gs = grads.gradient_set()
        if method == "conditional" and config.band_fits:
            # Each member's own gradients at the same points: their fits give the error band.
            for k, name in enumerate(config.band_fits):
                dp_cbe.write_gradients(out / f"{name}.h5", grads.member_set(k))
                outputs[name] = f"{name}.h5"
    dp_cbe.write_gradients(out / "gradients.h5", gs)
    return outputs


def oracle_gradients(
    x: Float[ArrayLike, "n 3"],
    v: Float[ArrayLike, "n 3"],
    density: str,
    truth: Any,
    h: float = 1e-3,
    group_size: int = 1,
) -> dp_cbe.GradientSet:
    """The mock's exact gradients of ``density`` (``f``, ``f_obs``, ``p_v_given_x``) at (x, v).

    Samples outside the truth's support (ln p(v|x) = −inf, or within 2h of r_max) are dropped
    (with ``group_size`` > 1, the whole group of velocities at that position). For
    ``f_obs`` the x-gradient adds ∇ln S_true by central differences of step ``h`` kpc (S_true
    is continuous: the extinction integral is exact per dust cell).
    """
    import dp_cbe

    from ._metrics import in_support

    x, v = np.asarray(x), np.asarray(v)
    ok = in_support(truth, x, v, margin=2 * h)
    if group_size > 1:
        ok = np.repeat(ok.reshape(-1, group_size).all(axis=1), group_size)
    x, v = x[ok], v[ok]
    if density == "p_v_given_x":
        dx, dv = truth.grad_log_p_v_given_x(x, v)
    else:
        dx, dv = truth.grad_log_f(x, v)
        if density == "f_obs":
            dx = np.asarray(dx) + np.stack(
                [
                    (np.log(truth.selection(x + h * e)) - np.log(truth.selection(x - h * e)))
                    / (2 * h)
                    for e in np.eye(3)
                ],
                axis=1,
            )
    logger.info("oracle gradients: %d of %d samples inside the truth's support", ok.sum(), len(ok))
    return dp_cbe.GradientSet(x, v, np.asarray(dx), np.asarray(dv), density,
                              group_size=group_size, exact=True)  # fmt: skip


def fit_potential(
    config: PipelineConfig,
    method: str,
    gradients: Path,
    out: Path,
    *,
    seed_name: str | None = None,
) -> dict[str, str]:
    """Fit the CBE potential of ``method`` to a gradient set and save it to out/model.

    ``seed_name`` names the unit whose seed the fit uses (default: the method).
    """
    import dp_cbe

    gs = dp_cbe.read_gradients(gradients)
    # A fit that hits its step ceiling unconverged warns; the run records it (the model's
    # history says converged = false, and the report flags it) instead of failing.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", dp_cbe.ConvergenceWarning)
        sol = dp_cbe.fit(
            gs,
            method,
            config=config.cbe[method],
            seed=derive_seed(config.run.seed, f"potentials/{seed_name or method}"),
            out_dir=out / "work",
            progress=True,
        )
    for w in caught:
        if issubclass(w.category, dp_cbe.ConvergenceWarning):
            logger.warning("%s", w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    sol.save(out / "model")
    return {"model": "model"}
