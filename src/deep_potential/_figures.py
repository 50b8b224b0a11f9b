"""The report's PNG figures (object-oriented matplotlib, no global pyplot state).

Fig. 1, the mock's truth, is dp-mock's own (``dp_mock.plot_truth``); every other figure is here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from . import _metrics
from ._manifest import atomic_write

COLORS = {"vanilla": "tab:red", "selection": "tab:orange", "conditional": "tab:blue"}
LABELS = {
    "dlnrho": r"$\Delta \ln \rho$",
    "acc_rel_err": r"$|\Delta a| / |a|$",
    "dln_n": r"$\Delta \ln n$ (const. removed)",
    "dln_s": r"$\Delta \ln S$ (const. removed)",
    "dlnp": r"$\Delta \ln p(v|x)$",
    "grad_v_rel_err": r"$|\Delta \nabla_v \ln p| / |\nabla_v \ln p|$",
    "grad_x_rel_err": r"$|\Delta \nabla_x \ln f| / |\nabla_x \ln f|$",
}


def _band(ax: Any, bins: Sequence[Mapping[str, Any]], color: str, label: str, log_x: bool) -> None:
    lo = np.array([b["lo"] for b in bins])
    hi = np.array([b["hi"] for b in bins])
    mid = np.sqrt(lo * hi) if log_x else 0.5 * (lo + hi)
    med = np.array([b["median"] for b in bins])
    ax.fill_between(
        mid, [b["p16"] for b in bins], [b["p84"] for b in bins], color=color, alpha=0.25, lw=0
    )
    ax.plot(mid, med, "o-", color=color, label=label, ms=3)
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())


def _sigma_band(
    ax: Any, bins: Sequence[Mapping[str, Any]], sigma: Sequence[Mapping[str, Any]], color: str
) -> None:
    """Dashed median ± σ lines: σ is the per-bin median of the members' spread."""
    mid = np.array([0.5 * (b["lo"] + b["hi"]) for b in bins])
    med = np.array([b["median"] for b in bins])
    sig = np.array([b["median"] for b in sigma])
    ax.plot(mid, med + sig, "--", color=color, lw=1, label="ensemble ±1σ")
    ax.plot(mid, med - sig, "--", color=color, lw=1)


def _log_y(ax: Any) -> None:
    """Log y axis when the plotted curves have positive values (else a warning and no plot)."""
    ys = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
    ys = [y[np.isfinite(y)] for y in ys]
    if ys and all(y.size and y.min() > 0 for y in ys):
        ax.set_yscale("log")


def _ref_lines(ax: Any, signed: bool) -> None:
    if signed:
        ax.axhline(0, color="k", lw=0.8)
        for y in (-0.1, 0.1):
            ax.axhline(y, color="k", lw=0.6, ls=":")
    else:
        ax.axhline(0.1, color="k", lw=0.6, ls=":")


def save(fig: Figure, path: Path) -> Path:
    """Save ``fig`` to ``path`` atomically (its format from the suffix)."""
    fmt = path.suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=110,
                                                      bbox_inches="tight"))  # fmt: skip


def fig_residuals(
    metrics: Mapping[str, Any], methods: Sequence[str], path: Path, s_cut: float
) -> Path:
    """Fig. 2: Δln ρ vs r and vs S_true (median, 16/84 % band), per method; then Δln n / Δln S
    and the acceleration error vs r."""
    nm = len(methods)
    fig = Figure(layout="constrained", figsize=(4.0 * nm, 11.0))
    axes = fig.subplots(4, nm, squeeze=False, sharey="row")
    for j, m in enumerate(methods):
        mm = metrics["methods"][m]
        c = COLORS[m]
        ax = axes[0, j]
        _band(ax, mm["dlnrho"]["by_r"], c, m, False)
        if "band" in mm:  # the ensemble's error band: ±1σ of the members' own fits
            _sigma_band(ax, mm["dlnrho"]["by_r"], mm["band"]["lnrho_sigma"]["by_r"], c)
            ax.legend(fontsize=7)
        ax.set(title=m, xlabel="r [kpc]", ylabel=LABELS["dlnrho"] + f" (S>{s_cut:g})")
        _ref_lines(ax, True)
        if m == "conditional":  # where the stars' p(v|x) is near Gaussian (Fig. 7)
            for lo, hi in metrics.get("velocity_shape", {}).get("near_gaussian_kpc", []):
                ax.axvspan(lo, hi, color="tab:red", alpha=0.12, lw=0)
        ax = axes[1, j]
        _band(ax, mm["dlnrho"]["by_s"], c, m, True)
        ax.set(xlabel=r"$S_\mathrm{true}$", ylabel=LABELS["dlnrho"])
        _ref_lines(ax, True)
        ax = axes[2, j]
        key = "dln_n" if "dln_n" in mm else "dln_s" if "dln_s" in mm else None
        if key:
            _band(ax, mm[key]["by_r"], c, key, False)
            ax.set(xlabel="r [kpc]", ylabel=LABELS[key])
            _ref_lines(ax, True)
        else:
            ax.text(
                0.5,
                0.5,
                "no n or S network\n(vanilla: S given)",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set(xlabel="r [kpc]")
        ax = axes[3, j]
        _band(ax, mm["acc_rel_err"]["by_r"], c, m, False)
        ax.set(xlabel="r [kpc]", ylabel=LABELS["acc_rel_err"])
        _log_y(ax)
        _ref_lines(ax, False)
    for ax in axes[0]:
        ax.set_ylim(-1, 1)
    fig.suptitle("Fig. 2 - recovered density, tracer density / selection, acceleration")
    return save(fig, path)


def _plane_images(maps: Mapping[str, np.ndarray], extent: float, path: Path, title: str) -> Path:
    """Images in the z = 0 plane, one panel per map (NaN outside); names starting with Δ get a
    symmetric diverging colour scale."""
    names = list(maps)
    ncol = min(3, len(names))
    nrow = -(-len(names) // ncol)
    fig = Figure(layout="constrained", figsize=(4.2 * ncol, 3.6 * nrow))
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        img = maps[name]
        diff = name.startswith("Δ")
        finite = img[np.isfinite(img)]
        if diff:
            lim = float(np.nanpercentile(np.abs(finite), 98)) if finite.size else 1.0
            kw = {"cmap": "RdBu_r", "vmin": -max(lim, 0.05), "vmax": max(lim, 0.05)}
        else:
            kw = {"cmap": "viridis"}
            if finite.size:
                kw |= {
                    "vmin": float(np.percentile(finite, 1)),
                    "vmax": float(np.percentile(finite, 99)),
                }
        im = ax.imshow(img, origin="lower", extent=(-extent, extent, -extent, extent), **kw)
        fig.colorbar(im, ax=ax, shrink=0.85)
        ax.set(title=name, xlabel="x [kpc]", ylabel="y [kpc]")
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    fig.suptitle(title)
    return save(fig, path)


def fig_fields(
    models: Mapping[str, Any],
    truth: Any | None,
    r_max: float,
    path: Path,
    *,
    resolution: int,
    s_cut: float,
) -> Path | None:
    """Fig. 3: the recovered ln S (selection method) and ln n (conditional method) in the z = 0
    plane, against the truth when it is known.

    With the truth each field gets three panels: the true map, the model shifted by the median
    difference (the fields are known up to a constant) and that difference where
    S_true > ``s_cut`` (the evaluated region, docs/design.md §8); without it, the model alone.

    Args:
        models: fitted dp-cbe potentials by method; only ``selection`` (its ``ln_selection``)
            and ``conditional`` (its ``ln_n``) have a field to show.
        truth: the mock's ``dp_mock.Truth``, or None.
        r_max: half-width of the maps (kpc).
        path: the PNG to write.
        resolution: pixels per side.
        s_cut: the selection threshold of the difference maps.

    Returns:
        ``path``, or None when no model has a field to show (nothing written).
    """
    pts, mask, _ = _metrics.plane_grid(r_max, resolution)

    def img(values: np.ndarray) -> np.ndarray:
        a = np.full(mask.shape, np.nan)
        a[mask] = values
        return a

    true_maps: dict[str, np.ndarray] = {}
    seen = np.ones(len(pts), dtype=bool)
    if truth is not None:
        true_maps = {
            "selection": _metrics.safe_log(truth.selection(pts)),
            "conditional": _metrics.safe_log(truth.number_density(pts)),
        }
        seen = np.exp(true_maps["selection"]) > s_cut
    maps: dict[str, np.ndarray] = {}
    for method, field, name in (("selection", "ln_selection", "S"), ("conditional", "ln_n", "n")):
        if method not in models:
            continue
        model = np.asarray(getattr(models[method], field)(pts), dtype=np.float64)
        if truth is None:
            maps[f"ln {name}_model"] = img(model)
            continue
        true = true_maps[method]
        diff = np.where(seen, model - true, np.nan)
        maps[f"ln {name}_true"] = img(true)
        maps[f"ln {name}_model (+const)"] = img(model - np.nanmedian(model - true))
        maps[f"Δln {name} (S_true > {s_cut:g})"] = img(
            np.where(seen, _metrics.remove_constant(diff)[0], np.nan)
        )
    if not maps:
        return None
    return _plane_images(maps, r_max, path, "Fig. 3 - S and n in the z = 0 plane")


def fig_vdist(metrics: Mapping[str, Any], methods: Sequence[str], path: Path) -> Path:
    """Fig. 5: p(v|x) log-density residuals and DF-gradient errors vs S_true."""
    fig = Figure(layout="constrained", figsize=(13, 3.8))
    axes = fig.subplots(1, 3, squeeze=False)[0]
    pv = metrics.get("p_v_given_x", {})
    if "dlnp" in pv:
        _band(axes[0], pv["dlnp"]["by_s"], COLORS["conditional"], "conditional flow", True)
    axes[0].set(xlabel=r"$S_\mathrm{true}$ at the star", ylabel=LABELS["dlnp"])
    _ref_lines(axes[0], True)
    for m in methods:
        g = metrics["methods"][m].get("gradients", {})
        for ax, key in ((axes[1], "grad_v_rel_err"), (axes[2], "grad_x_rel_err")):
            if key in g:
                _band(ax, g[key]["by_s"], COLORS[m], m, True)
    axes[1].set(xlabel=r"$S_\mathrm{true}$", ylabel=LABELS["grad_v_rel_err"])
    axes[2].set(xlabel=r"$S_\mathrm{true}$", ylabel=LABELS["grad_x_rel_err"])
    for ax in axes[1:]:
        _log_y(ax)
        _ref_lines(ax, False)
        ax.legend(fontsize=8)
    fig.suptitle("Fig. 5 - velocity distribution and DF-gradient residuals vs selection")
    return save(fig, path)


def fig_velocity_shape(shape: Mapping[str, Any], path: Path) -> Path:
    """Fig. 7: the stars' radial and tangential velocity kurtosis by radius (data only), with
    the near-Gaussian zone (3 ± margin) where the conditional method sees little shape."""
    fig = Figure(layout="constrained", figsize=(6.5, 3.8))
    ax = fig.subplots()
    r = np.asarray(shape["r_mid"])
    m = float(shape["margin"])
    ax.axhspan(3.0 - m, 3.0 + m, color="0.85", label=f"near Gaussian (|κ − 3| < {m:g})")
    ax.axhline(3.0, color="0.5", lw=0.8)
    for key, label, c in (("kappa_r", r"$\kappa_r$", "tab:blue"),
                          ("kappa_t", r"$\kappa_t$", "tab:green")):  # fmt: skip
        ax.errorbar(r, shape[key], yerr=shape[key + "_err"], fmt="o-", ms=3, color=c,
                    label=label, capsize=2)  # fmt: skip
    for lo, hi in shape["near_gaussian_kpc"]:
        ax.axvspan(lo, hi, color="tab:red", alpha=0.12)
    ax.set(xlabel="r [kpc]", ylabel="velocity kurtosis of the stars")
    ax.legend(fontsize=8)
    fig.suptitle("Fig. 7 - shape of p(v|x): red, where the conditional method sees little")
    return save(fig, path)


def fig_dustfree(metrics: Mapping[str, Any], path: Path) -> Path:
    """Fig. 6: the dust-free run - Δln n and the derived Δln S (= ln n_obs - ln n) vs r."""
    fig = Figure(layout="constrained", figsize=(9, 3.8))
    axes = fig.subplots(1, 2, squeeze=False)[0]
    df = metrics["dustfree"]
    for ax, key, label in (
        (axes[0], "dln_n", LABELS["dln_n"]),
        (axes[1], "dln_s_derived", r"derived $\Delta \ln S$"),
    ):
        if key in df:
            _band(ax, df[key]["by_r"], COLORS["conditional"], key, False)
        else:  # S = n_obs / n needs the spatial flow, which only the selection method trains
            msg = 'needs the spatial flow n_obs(x):\nadd "selection" to [run] methods'
            ax.text(0.5, 0.5, msg, ha="center", va="center", transform=ax.transAxes)
        ax.set(xlabel="r [kpc]", ylabel=label)
        _ref_lines(ax, True)
    fig.suptitle("Fig. 6 - dust-free mock: tracer density and derived selection")
    return save(fig, path)


def fig_profile(profiles: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Recovered ln ρ vs r per method (the report's figure when there is no truth)."""
    fig = Figure(layout="constrained", figsize=(5.5, 4))
    ax = fig.subplots()
    for m, p in profiles.items():
        _band(ax, p["by_r"], COLORS[m], m, False)
    ax.set(xlabel="r [kpc]", ylabel=r"$\ln \rho_\mathrm{model}$ [M$_\odot$/kpc$^3$]")
    ax.legend()
    return save(fig, path)


def fig_vc_mass(profiles: Mapping[str, Any], path: Path) -> Path:
    """v_c(R) at z = 0 and M(<r) of every fit, the truth dashed when known.

    With the truth a second row shows the relative errors (model − true)/true, where a few per
    cent are visible that the curves themselves would hide.
    """
    r = np.asarray(profiles["r_kpc"], dtype=float)
    vc, mass = profiles["v_c_kms"], profiles["mass_msun"]
    methods = [m for m in vc if m != "truth"]
    truth = "truth" in vc
    fig = Figure(layout="constrained", figsize=(10, 7.0 if truth else 3.8))
    axes = fig.subplots(2 if truth else 1, 2, squeeze=False, sharex="col")
    for j, (curves, label) in enumerate(
        ((vc, r"$v_c(R)$ [km/s], $z = 0$"), (mass, r"$M(<r)$ [M$_\odot$]"))
    ):
        ax = axes[0, j]
        for m in methods:
            ax.plot(r, np.asarray(curves[m], dtype=float), "-", color=COLORS.get(m, "tab:gray"),
                    label=m)  # fmt: skip
        if truth:
            ax.plot(r, np.asarray(curves["truth"], dtype=float), "--", color="k", label="truth")
        ax.set(ylabel=label, xlabel="" if truth else ("R [kpc]" if j == 0 else "r [kpc]"))
        if j == 1:
            _log_y(ax)
        ax.legend(fontsize=8)
        if truth:
            ax = axes[1, j]
            true = np.asarray(curves["truth"], dtype=float)
            for m in methods:
                with np.errstate(invalid="ignore", divide="ignore"):
                    err = np.asarray(curves[m], dtype=float) / true - 1.0
                ax.plot(r, err, "-", color=COLORS.get(m, "tab:gray"), label=m)
            _ref_lines(ax, True)
            ax.set(xlabel="R [kpc]" if j == 0 else "r [kpc]",
                   ylabel=r"$v_c / v_{c,\mathrm{true}} - 1$" if j == 0
                   else r"$M / M_\mathrm{true} - 1$")  # fmt: skip
    fig.suptitle("Circular velocity and enclosed mass of the fitted potentials")
    return save(fig, path)
