"""The report's circular velocity v_c(R) and enclosed mass M(<r) of every fitted potential.

The quantities come from dp-cbe's derived-quantity functions (`dp_cbe.circular_velocity`,
`dp_cbe.enclosed_mass`), which take any object with ``acceleration(x)``: the fitted models and,
for a check of the quadrature, the truth itself. The truth's own curves are dp-mock's closed
forms (`Truth.circular_velocity`, `Truth.enclosed_mass`), so a comparison measures the fit and
not a shared quadrature.

Both are spherical/azimuthal averages about the origin: v_c averages the radial force over
azimuths in the z = 0 plane, M(<r) is Gauss's law over the whole sphere of radius r. For a
mock (a sphere about the origin, stars all round it) that is where the data are. For a survey
volume that does not surround the origin (Gaia around the Sun), most of each circle or sphere
lies outside the data and the curves there are the network's extrapolation: the radii start at
the stars' 1st-percentile radius so at least radii below every star are not reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from jaxtyping import Float

from . import _metrics as M

N_RADII = 64
"""Radii of the curves. Cost: 16 + 12·24 = 304 force evaluations per radius and model (19 456
for 64 radii), a fraction of the field residuals' ``[report] n_eval`` points and derivatives."""
VC_N_PHI = 16  # azimuths of v_c's force average (dp-cbe's default)
MASS_N_THETA, MASS_N_PHI = 12, 24  # Gauss's-law sphere quadrature (dp-cbe's default)


def profile_radii(
    star_r: Float[np.ndarray, " n"], r_max: float, n: int = N_RADII
) -> Float[np.ndarray, " n"]:
    """``n`` radii (kpc), evenly spaced from the stars' 1st-percentile radius to ``r_max``.

    The lower end is clipped to at least r_max/n so that no radius is 0 (v_c and M are 0 there
    and a relative error is undefined).
    """
    r_lo = float(np.percentile(star_r, 1.0)) if len(star_r) else 0.0
    r_lo = min(max(r_lo, r_max / n), r_max)
    return np.linspace(r_lo, r_max, n)


def potential_profiles(
    models: Mapping[str, Any],
    truth: Any | None,
    radii: Float[np.ndarray, " n"],
    r_edges: Float[np.ndarray, " k"],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """v_c(R) at z = 0 and M(<r) of each model, and (with truth) their relative errors.

    Args:
        models: method → potential-like (``acceleration``).
        truth: a dp-mock ``Truth`` (closed-form ``circular_velocity``/``enclosed_mass``) or None.
        radii: radii (kpc), used both as cylindrical R for v_c and spherical r for M.
        r_edges: the report's radial bin edges (kpc) for the binned errors.

    Returns:
        ``profiles`` (for metrics.json: ``r_kpc``, ``v_c_kms`` and ``mass_msun``, each
        method → list and ``truth`` → list when known) and, per method, the binned relative
        errors ``v_c_rel_err`` and ``mass_rel_err`` ((model − true)/true, ``{"all", "by_r"}``),
        empty without truth.
    """
    import dp_cbe

    radii = np.asarray(radii, dtype=np.float64)
    vc: dict[str, list[float]] = {}
    mass: dict[str, list[float]] = {}
    errors: dict[str, dict[str, Any]] = {}
    if truth is not None:
        vc_true = np.asarray(truth.circular_velocity(radii), dtype=np.float64)
        m_true = np.asarray(truth.enclosed_mass(radii), dtype=np.float64)
        vc["truth"], mass["truth"] = vc_true.tolist(), m_true.tolist()
    for name, model in models.items():
        v = np.asarray(dp_cbe.circular_velocity(model, radii, n_phi=VC_N_PHI), np.float64)
        m = np.asarray(
            dp_cbe.enclosed_mass(model, radii, n_theta=MASS_N_THETA, n_phi=MASS_N_PHI),
            np.float64,
        )
        vc[name], mass[name] = v.tolist(), m.tolist()
        if truth is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                ev, em = v / vc_true - 1.0, m / m_true - 1.0
            errors[name] = {
                "v_c_rel_err": {"all": M.summary(ev), "by_r": M.binned(ev, radii, r_edges)},
                "mass_rel_err": {"all": M.summary(em), "by_r": M.binned(em, radii, r_edges)},
            }
    notes = (
        "v_c(R) at z = 0, azimuthally averaged radial force (dp_cbe.circular_velocity, "
        f"n_phi = {VC_N_PHI}); M(<r) by Gauss's law over the sphere (dp_cbe.enclosed_mass, "
        f"{MASS_N_THETA} x {MASS_N_PHI} directions)"
        + ("; truth: dp-mock's closed forms. " if truth is not None else ". ")
        + "Both are averages about the origin: where the stars do not surround it the "
        "curves are extrapolations."
    )
    profiles = {"r_kpc": radii.tolist(), "v_c_kms": vc, "mass_msun": mass, "notes": notes}
    return profiles, errors
