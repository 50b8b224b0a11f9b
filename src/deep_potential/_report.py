"""The report stage: metrics.json, report.md and the paper's figures in RUN_DIR/report/."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import _figures
from ._config import PipelineConfig
from ._diagnostics import ensemble_bias_variance, gradient_diagnostics, velocity_shape
from ._manifest import write_json_atomic
from ._markdown import write_report_md
from ._metrics import (
    binned,
    binned_both,
    gradient_residuals,
    method_residuals,
    remove_constant,
    safe_log,
    summary,
    uniform_ball,
)
from ._profiles import potential_profiles, profile_radii
from ._stages import catalog_r_max, derive_seed, has_truth

logger = logging.getLogger("deep_potential")


def _stars(catalog: Path) -> dict[str, np.ndarray]:
    import dp_mock

    return {k: np.asarray(v) for k, v in dp_mock.read_catalog(catalog).items()}


def make_report(
    config: PipelineConfig,
    out: Path,
    *,
    catalog: Path,
    flow_dirs: Mapping[str, Path],
    gradient_files: Mapping[str, Path],
    model_dirs: Mapping[str, Path],
    timings: Mapping[str, float],
    band_dirs: Mapping[str, Path] | None = None,
) -> dict[str, str]:
    """Evaluate every fitted potential (against the truth when the catalogue has it).

    Returns:
        Output name -> file name in ``out`` (metrics.json, report.md, the PNG figures).
    """
    import dp_cbe

    rep = config.report
    rng = np.random.default_rng(derive_seed(config.run.seed, "report"))
    truth = None
    if has_truth(catalog):
        import dp_mock

        truth = dp_mock.load_truth(catalog)
    r_max = catalog_r_max(config, catalog)
    x = uniform_ball(rng, rep.n_eval, r_max)
    s_true = None
    if truth is not None:
        s_true = np.asarray(truth.selection(x), dtype=np.float64)
        keep = s_true > rep.s_cut
        x, s_true = x[keep], s_true[keep]
    r = np.linalg.norm(x, axis=1)
    r_edges = np.linspace(0.0, r_max, rep.r_bins + 1)
    s_edges = np.logspace(np.log10(max(rep.s_cut, 1e-4)), 0.0, rep.s_bins + 1)
    models = {m: dp_cbe.load_model(d) for m, d in model_dirs.items()}
    metrics: dict[str, Any] = {
        "truth": truth is not None,
        "r_max_kpc": r_max,
        "s_cut": rep.s_cut,
        "n_eval_points": len(x),
        "r_bin_edges": r_edges.tolist(),
        "s_bin_edges": s_edges.tolist() if truth is not None else None,
        "methods": {},
        "timings_s": dict(timings),
        "notes": "Δln n and Δln S have their median removed (fields known up to a constant).",
    }
    fields: dict[str, dict[str, np.ndarray]] = {}
    for m, model in models.items():
        res = method_residuals(m, model, truth, x)
        fields[m] = res
        mm: dict[str, Any] = {"ln_rho_model": binned_both(res["ln_rho"], r, None, r_edges, None)}
        mm["frac_nonpositive_density"] = float(np.mean(~np.isfinite(res["ln_rho"])))
        for key in ("dlnrho", "acc_rel_err", "acc_ratio", "dln_n", "dln_s"):
            if key in res:
                mm[key] = binned_both(res[key], r, s_true, r_edges, s_edges)
        if truth is not None:
            g = gradient_residuals(dp_cbe.read_gradients(gradient_files[m]), truth)
            gm: dict[str, Any] = {"frac_outside_support": float(g["frac_outside_support"])}
            for key in ("grad_v_rel_err", "grad_x_rel_err"):
                if key in g:
                    gm[key] = {
                        "all": summary(g[key]),
                        "by_s": binned(g[key], g["s_true"], s_edges),
                    }
            mm["gradients"] = gm
        metrics["methods"][m] = mm
    if band_dirs and "conditional" in metrics["methods"]:
        metrics["methods"]["conditional"]["band"] = _band_metrics(
            band_dirs, x, r, s_true, r_edges, s_edges if truth is not None else None
        )
    metrics["convergence"] = {
        m: (model.history or {}).get("converged") for m, model in models.items()
    }
    # How each fit stopped (docs/formats.md): whether more steps could have helped.
    metrics["fit_status"] = {
        m: {k: (model.history or {}).get(k)
            for k in ("stop_reason", "steps", "best_step", "still_improving", "best_val")}
        for m, model in models.items()
    }  # fmt: skip
    with h5py.File(catalog, "r") as f:
        if "frame_text" in f.attrs:
            metrics["catalog_frame"] = str(f.attrs["frame_text"])
    files: dict[str, str] = {}
    stars = _stars(catalog)
    # v_c(R) and M(<r) of every fit (and the truth's closed forms): cheap, N_RADII radii.
    radii = profile_radii(np.linalg.norm(stars["x"], axis=1), r_max)
    metrics["profiles"], profile_errors = potential_profiles(models, truth, radii, r_edges)
    for m, err in profile_errors.items():
        metrics["methods"][m] |= err
    if "conditional" in models:  # where the stars' p(v|x) carries little shape signal
        metrics["velocity_shape"] = velocity_shape(
            stars["x"], stars["v"], seed=derive_seed(config.run.seed, "velocity_shape")
        )
    # The p(v|x) flow, loaded once for its summary, its residuals and the ensemble's spread.
    cond_flow = _load_flow(flow_dirs["conditional"]) if "conditional" in flow_dirs else None
    if cond_flow is not None:
        metrics["p_v_given_x_model"] = _flow_summary(cond_flow)
    if truth is not None:
        if cond_flow is None:
            raise KeyError("the report of a mock needs the conditional flow (flows/conditional)")
        metrics["p_v_given_x"] = _vdist_metrics(cond_flow, stars, truth, rng, rep.n_logp, s_edges)
        others = [d for n, d in flow_dirs.items() if n.startswith("conditional_")]
        if others:
            members = [cond_flow, *(_load_flow(d) for d in others)]
            metrics["p_v_given_x"]["ensemble"] = _ensemble_metrics(members, stars, truth, rng)
        dustfree = _is_dustfree(truth, x)
        metrics["dustfree"] = dustfree
        if dustfree and "conditional" in fields:
            metrics["dustfree"] = _dustfree_metrics(
                fields["conditional"], flow_dirs, truth, x, r, r_edges, rng, rep.n_logp
            )
    if rep.figures:
        files |= _draw_figures(config, out, metrics, truth, models, r_max, catalog)
    write_json_atomic(out / "metrics.json", metrics)
    files["metrics"] = "metrics.json"
    write_report_md(out / "report.md", config, metrics, files)
    files["report"] = "report.md"
    return files


def _band_metrics(
    band_dirs: Mapping[str, Path],
    x: np.ndarray,
    r: np.ndarray,
    s_true: np.ndarray | None,
    r_edges: np.ndarray,
    s_edges: np.ndarray | None,
) -> dict[str, Any]:
    """Error bands from the ensemble members' own conditional fits.

    At every evaluation point: the members' standard deviation of ln ρ (``lnrho_sigma``) and
    of the acceleration relative to the members' mean |a| (``acc_rel_sigma``), binned.
    """
    import dp_cbe

    ln_rho, acc = [], []
    for d in band_dirs.values():
        model = dp_cbe.load_model(d)
        ln_rho.append(safe_log(np.asarray(model.density(x), dtype=np.float64)))
        acc.append(np.asarray(model.acceleration(x), dtype=np.float64))
    ln_rho_k, acc_k = np.stack(ln_rho), np.stack(acc)
    sig_rho = np.std(ln_rho_k, axis=0, ddof=1)
    sig_acc = np.sqrt(np.sum(np.var(acc_k, axis=0, ddof=1), axis=1)) / np.linalg.norm(
        acc_k.mean(axis=0), axis=1
    )
    return {
        "members": list(band_dirs),
        "lnrho_sigma": binned_both(sig_rho, r, s_true, r_edges, s_edges),
        "acc_rel_sigma": binned_both(sig_acc, r, s_true, r_edges, s_edges),
    }


def _load_flow(flow_dir: Path) -> Any:
    """A fitted dp-flows flow (``dp_flows.load_flow``)."""
    import dp_flows

    return dp_flows.load_flow(flow_dir)


def _vdist_metrics(
    flow: Any,
    stars: Mapping[str, np.ndarray],
    truth: Any,
    rng: np.random.Generator,
    n: int,
    s_edges: np.ndarray,
) -> dict[str, Any]:
    """Δ ln p(v|x) = ln p_flow − ln p_true at a random subset of the observed stars, by S_true.

    ``flow`` is the fitted conditional flow p(v|x).
    """
    import dp_flows
    import jax

    idx = rng.choice(len(stars["x"]), size=min(n, len(stars["x"])), replace=False)
    xs, vs = stars["x"][idx], stars["v"][idx]
    lp = np.asarray(dp_flows.log_prob(flow, vs, condition=xs), dtype=np.float64)
    dlnp = lp - np.asarray(truth.log_p_v_given_x(xs, vs), dtype=np.float64)
    s = np.asarray(truth.selection(xs), dtype=np.float64)
    out: dict[str, Any] = {"dlnp": {"all": summary(dlnp), "by_s": binned(dlnp, s, s_edges)}}

    def grad_fn(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gv, gx = dp_flows.grad_log_prob(flow, v, condition=x, progress=False)
        assert gx is not None  # p(v|x) is a conditional flow
        return gx, gv

    def sample_fn(x: np.ndarray) -> np.ndarray:
        key = jax.random.key(int(rng.integers(2**31)))
        return dp_flows.sample(key, flow, len(x), condition=x, progress=False)

    # Where on the observed volume the flow's ∇ₓ ln p is wrong in a way the CBE fit cannot
    # absorb, and what acceleration it implies locally (see _diagnostics).
    out["diagnostics"] = gradient_diagnostics(
        grad_fn, truth, stars["x"], seed=int(rng.integers(2**31)), sample_fn=sample_fn,
        s_edges=[float(e) for e in s_edges],
    )  # fmt: skip
    return out


def _flow_summary(flow: Any) -> dict[str, Any]:
    """What the p(v|x) flow is: its whitening (chosen from the data by default) and size."""
    import dp_flows

    field = flow.field.hyperparameters() if isinstance(flow.field, dp_flows.ResNetField) else {}
    return {
        "whitening": "none" if flow.whitener is None else flow.whitener.mode,
        "log_radius_input": bool(flow.cond_log_r),
        "width": int(field.get("width", 0)),
        "depth": int(field.get("depth", 0)),
    }


def _ensemble_metrics(
    members: list[Any], stars: Mapping[str, np.ndarray], truth: Any, rng: np.random.Generator
) -> dict[str, Any]:
    """Bias vs seed-to-seed spread of the p(v|x) ensemble's ∇ₓ ln p (see _diagnostics).

    ``members`` are the ensemble's fitted conditional flows.
    """
    import dp_flows

    def grad_fn(flow: Any) -> Any:
        def fn(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            gv, gx = dp_flows.grad_log_prob(flow, v, condition=x, progress=False)
            assert gx is not None  # p(v|x) is a conditional flow
            return gx, gv

        return fn

    fns = [grad_fn(flow) for flow in members]
    return ensemble_bias_variance(fns, truth, stars["x"], seed=int(rng.integers(2**31)))


def _is_dustfree(truth: Any, x: np.ndarray) -> bool:
    ext = np.asarray(truth.extinction(x[: min(len(x), 2048)]), dtype=np.float64)
    return bool(np.all(np.abs(ext) < 1e-12))


def _dustfree_metrics(
    cond: Mapping[str, np.ndarray],
    flow_dirs: Mapping[str, Path],
    truth: Any,
    x: np.ndarray,
    r: np.ndarray,
    r_edges: np.ndarray,
    rng: np.random.Generator,
    n: int,
) -> dict[str, Any]:
    """Δln n, and (with a spatial flow of the observed stars) the derived S = n_obs / n."""
    out: dict[str, Any] = {"dln_n": binned_both(cond["dln_n"], r, None, r_edges, None)}
    if "spatial" in flow_dirs:
        import dp_flows

        idx = rng.choice(len(x), size=min(n, len(x)), replace=False)
        flow = dp_flows.load_flow(flow_dirs["spatial"])
        ln_nobs = np.asarray(dp_flows.log_prob(flow, x[idx]), dtype=np.float64)
        d = ln_nobs - cond["ln_n"][idx] - safe_log(truth.selection(x[idx]))
        out["dln_s_derived"] = binned_both(remove_constant(d)[0], r[idx], None, r_edges, None)
    return out


def _draw_figures(
    config: PipelineConfig,
    out: Path,
    metrics: Mapping[str, Any],
    truth: Any,
    models: Mapping[str, Any],
    r_max: float,
    catalog: Path,
) -> dict[str, str]:
    """Write the report's PNG figures into ``out``.

    Returns:
        Figure name (``fig1``, ...) -> file name in ``out``.
    """
    rep = config.report
    files: dict[str, str] = {}
    methods = list(models)
    if truth is not None:
        import dp_mock

        dp_mock.plot_truth(catalog, out / "fig1_mock.png", resolution=rep.plane_resolution)
        files["fig1"] = "fig1_mock.png"
        _figures.fig_residuals(metrics, methods, out / "fig2_residuals.png", rep.s_cut)
        files["fig2"] = "fig2_residuals.png"
        _figures.fig_vdist(metrics, methods, out / "fig5_vdist.png")
        files["fig5"] = "fig5_vdist.png"
        if isinstance(metrics.get("dustfree"), dict):
            _figures.fig_dustfree(metrics, out / "fig6_dustfree.png")
            files["fig6"] = "fig6_dustfree.png"
    fig3 = out / "fig3_planes.png"
    if _figures.fig_fields(
        models, truth, r_max, fig3, resolution=rep.plane_resolution, s_cut=rep.s_cut
    ):
        files["fig3"] = fig3.name
    if "velocity_shape" in metrics:
        _figures.fig_velocity_shape(metrics["velocity_shape"], out / "fig7_velocity_shape.png")
        files["fig7"] = "fig7_velocity_shape.png"
    profiles = {m: metrics["methods"][m]["ln_rho_model"] for m in methods}
    _figures.fig_profile(profiles, out / "density_profile.png")
    files["profile"] = "density_profile.png"
    _figures.fig_vc_mass(metrics["profiles"], out / "vc_mass_profile.png")
    files["vc_mass"] = "vc_mass_profile.png"
    return files
