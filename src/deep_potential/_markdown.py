"""report.md: the run's accuracy tables, its accuracy targets, timings and figure links."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._config import PipelineConfig
from ._manifest import atomic_write

G_PC3 = 1e-9  # M☉/kpc³ -> M☉/pc³


def _f(v: float, nd: int = 3) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.{nd}f}"


def _table(rows: list[Mapping[str, Any]], label: str, unit: str = "") -> list[str]:
    out = [f"| {label} | n | median | 16 % | 84 % |", "|---|---|---|---|---|"]
    for b in rows:
        out.append(
            f"| {b['lo']:.3g}–{b['hi']:.3g}{unit} | {b['n']} | {_f(b['median'])} | "
            f"{_f(b['p16'])} | {_f(b['p84'])} |"
        )
    return out


def goal_check(metrics: Mapping[str, Any]) -> list[str]:
    """The conditional method's accuracy targets, met or missed.

    (1) |median Δln ρ| < 0.10 (the density within about 10 %) in every radial bin with
    S_true > cut: without a selection function the method should hold that accuracy out to the
    edge of the volume, not only where stars are plentiful. (2) No worse than the
    selection-function method in the outer half of the radial bins, where the selection
    function's fine angular structure is hardest to learn and the conditional method has the
    most to gain."""
    ms = metrics["methods"]
    if "conditional" not in ms or "dlnrho" not in ms["conditional"]:
        return []
    cond = [abs(b["median"]) for b in ms["conditional"]["dlnrho"]["by_r"] if b["n"]]
    ok1 = all(c < 0.10 for c in cond)
    lines = [
        f"- conditional: max over radial bins of |median Δln ρ| = {max(cond):.3f} "
        f"→ {'meets' if ok1 else 'misses'} the < 0.10 target"
    ]
    if "selection" in ms:
        sel = [abs(b["median"]) for b in ms["selection"]["dlnrho"]["by_r"] if b["n"]]
        outer = range(len(cond) // 2, min(len(cond), len(sel)))
        ok2 = all(cond[i] <= sel[i] for i in outer)
        lines.append(
            f"- outer bins: conditional |median Δln ρ| ≤ selection's in "
            f"{sum(cond[i] <= sel[i] for i in outer)}/{len(outer)} bins "
            f"→ {'meets' if ok2 else 'misses'} the target"
        )
    return lines


def _profile_section(metrics: Mapping[str, Any]) -> list[str]:
    """v_c and M(<r): relative errors by radius against the truth, or values at the bin edges.

    Without the truth the curves are tabulated at the outer edge of each radial bin that the
    curves reach (linear interpolation between the profile radii)."""
    prof = metrics["profiles"]
    methods = [m for m in prof["v_c_kms"] if m != "truth"]
    L = ["## Circular velocity and enclosed mass", ""]
    if metrics["truth"]:
        for m in methods:
            ev, em = metrics["methods"][m]["v_c_rel_err"], metrics["methods"][m]["mass_rel_err"]
            L += [
                f"{m}: v_c(R) / v_c,true − 1 median {_f(ev['all']['median'])} (16/84 %: "
                f"{_f(ev['all']['p16'])}/{_f(ev['all']['p84'])}); M(<r) / M_true − 1 median "
                f"{_f(em['all']['median'])} (16/84 %: {_f(em['all']['p16'])}/"
                f"{_f(em['all']['p84'])}).",
                "",
                "| r [kpc] | radii | median Δv_c/v_c | median ΔM/M |",
                "|---|---|---|---|",
            ]
            for bv, bm in zip(ev["by_r"], em["by_r"], strict=True):
                L.append(f"| {bv['lo']:.3g}–{bv['hi']:.3g} | {bv['n']} | {_f(bv['median'])} | "
                         f"{_f(bm['median'])} |")  # fmt: skip
            L.append("")
    else:
        r = prof["r_kpc"]
        at = [e for e in metrics["r_bin_edges"] if r[0] <= e <= r[-1]]
        head = [f"v_c {m} [km/s]" for m in methods] + [f"M(<r) {m} [M☉]" for m in methods]
        L += [f"| r [kpc] | {' | '.join(head)} |", "|---" * (len(head) + 1) + "|"]
        for e in at:
            vals = [float(np.interp(e, r, prof["v_c_kms"][m])) for m in methods]
            vals += [float(np.interp(e, r, prof["mass_msun"][m])) for m in methods]
            L.append(f"| {e:.3g} | " + " | ".join(f"{v:.4g}" for v in vals) + " |")
        L.append("")
    L += [prof["notes"], ""]
    return L


def _convergence_warning(metrics: Mapping[str, Any]) -> list[str]:
    """Lines on the fits that stopped at their step ceiling unconverged, split by whether more
    steps could help (the validation loss still falling) or not (it bottomed out earlier and
    the model is that step's)."""
    status = metrics.get("fit_status") or {}
    bad = [k for k, ok in (metrics.get("convergence") or {}).items() if ok is False]
    past_minimum = [k for k in bad if (status.get(k) or {}).get("still_improving") is False]
    still_falling = [k for k in bad if k not in past_minimum]
    out = []
    if still_falling:
        out += [
            f"**Warning: the potential fit(s) {', '.join(still_falling)} hit their step "
            "ceiling while the validation loss was still falling** (see each model's "
            "history.json); raise `[cbe] n_steps`.",
            "",
        ]
    if past_minimum:
        when = ", ".join(
            f"{k} at step {status[k].get('best_step')} of {status[k].get('steps')}"
            for k in past_minimum
        )
        out += [
            f"Note: the potential fit(s) {', '.join(past_minimum)} did not meet the stopping "
            f"rule, but their validation loss had reached its minimum long before the ceiling "
            f"({when}); "
            "each model is the one at that minimum, and more steps would not change it (more "
            "gradient samples, `[gradients] n`, would).",
            "",
        ]
    return out


def _shape_warning(metrics: Mapping[str, Any]) -> list[str]:
    """The near-Gaussian radii of the stars' p(v|x) (`velocity_shape`), as a warning."""
    vs = metrics.get("velocity_shape")
    if not vs or not vs["near_gaussian_kpc"]:
        return []
    where = ", ".join(f"{lo:.2g}–{hi:.2g} kpc" for lo, hi in vs["near_gaussian_kpc"])
    return [
        f"**Warning: at r = {where} the stars' velocity distribution is close to Gaussian** "
        f"(radial and tangential kurtosis within {vs['margin']:g} of 3; Fig. 7). There the "
        "conditional method cannot tell the force from the density gradient locally, so its "
        "ρ and Φ rest on their values around; expect larger errors there.",
        "",
    ]


def write_report_md(
    path: Path, config: PipelineConfig, metrics: Mapping[str, Any], files: Mapping[str, str]
) -> None:
    """Write the human-readable report next to metrics.json."""
    L = ["# Deep Potential run report", ""]
    src = f"catalogue `{config.data.catalog}`" if config.data else "dp-mock catalogue"
    L += [
        f"Methods: {', '.join(config.methods)}; data: {src}; seed {config.run.seed}.",
        f"Evaluation: {metrics['n_eval_points']} points uniform in r < {metrics['r_max_kpc']:.3g} kpc"
        + (
            f" with S_true > {metrics['s_cut']:g}."
            if metrics["truth"]
            else " (no truth in the catalogue: recovered fields only)."
        ),
        "",
    ]
    if metrics.get("catalog_frame"):
        L += [f"Frame of the catalogue (deep-potential ingest): {metrics['catalog_frame']}", ""]
    L += _convergence_warning(metrics)
    L += _shape_warning(metrics)
    if metrics["truth"]:
        L += ["## Accuracy targets", "", *goal_check(metrics), ""]
    for m, mm in metrics["methods"].items():
        L += [f"## {m}", ""]
        if metrics["truth"]:
            a = mm["dlnrho"]["all"]
            L += [
                f"Overall Δln ρ median {_f(a['median'])} (16/84 %: {_f(a['p16'])}/{_f(a['p84'])}); "
                f"|Δa|/|a| median {mm['acc_rel_err']['all']['median']:.3g}; "
                f"non-positive model density at {100 * mm['frac_nonpositive_density']:.2f} % of points.",
                "",
                "Δln ρ by radius:",
                "",
                *_table(mm["dlnrho"]["by_r"], "r", " kpc"),
                "",
                "Δln ρ by S_true:",
                "",
                *_table(mm["dlnrho"]["by_s"], "S_true"),
                "",
                "|Δa|/|a| by radius:",
                "",
                *_table(mm["acc_rel_err"]["by_r"], "r", " kpc"),
                "",
            ]
            for key, name in (("dln_n", "Δln n"), ("dln_s", "Δln S")):
                if key in mm:
                    L += [
                        f"{name} (median removed) by radius:",
                        "",
                        *_table(mm[key]["by_r"], "r", " kpc"),
                        "",
                    ]
            gms = mm.get("gradients", {})
            if "frac_outside_support" in gms:
                L += [
                    f"Gradient samples outside the truth's support (unbound or r > r_max): "
                    f"{100 * gms['frac_outside_support']:.2f} %.",
                    "",
                ]
            for key, g in gms.items():
                if not isinstance(g, dict):
                    continue
                L += [
                    f"Gradient-set {key}: median {g['all']['median']:.3g}, "
                    f"84 % {g['all']['p84']:.3g}.",
                    "",
                ]
        else:
            rows = mm["ln_rho_model"]["by_r"]
            L += [
                "Recovered density (median over points in the bin):",
                "",
                "| r [kpc] | ρ [M☉/pc³] | 16 % | 84 % |",
                "|---|---|---|---|",
            ]
            for b in rows:
                e = [
                    math.exp(b[k]) * G_PC3 if b["n"] else float("nan")
                    for k in ("median", "p16", "p84")
                ]
                L.append(f"| {b['lo']:.3g}–{b['hi']:.3g} | {e[0]:.4g} | {e[1]:.4g} | {e[2]:.4g} |")
            L.append("")
    if metrics.get("profiles"):
        L += _profile_section(metrics)
    pm = metrics.get("p_v_given_x_model")
    if pm:
        L += [
            "## p(v|x) flow",
            "",
            f"{pm['width']}×{pm['depth']} vector field; whitening `{pm['whitening']}`"
            + (" with the log-radius input" if pm["log_radius_input"] else "")
            + " (chosen from the held-out stars' likelihood unless set in the config).",
            "",
        ]
    pv = metrics.get("p_v_given_x")
    if pv:
        a = pv["dlnp"]["all"]
        L += [
            "## p(v|x)",
            "",
            f"Δln p(v|x) at observed stars: median {_f(a['median'])}, "
            f"16/84 % {_f(a['p16'])}/{_f(a['p84'])}.",
            "",
            *_table(pv["dlnp"]["by_s"], "S_true"),
            "",
        ]
    if isinstance(metrics.get("dustfree"), dict):
        L += ["## Dust-free mock (Fig. 6)", ""]
        for key, b in metrics["dustfree"].items():
            L += [f"{key} by radius:", "", *_table(b["by_r"], "r", " kpc"), ""]
    L += ["## Stage wall times", "", "| unit | seconds |", "|---|---|"]
    L += [f"| {k} | {v:.1f} |" for k, v in metrics["timings_s"].items()]
    L += ["", "(times of skipped units are those of the run that computed them)", ""]
    figs = [f for k, f in files.items() if f.endswith(".png")]
    if figs:
        L += ["## Figures", ""] + [f"![{f}]({f})" for f in figs] + [""]
    text = "\n".join(L)
    atomic_write(path, lambda tmp: tmp.write_text(text))
