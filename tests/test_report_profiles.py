"""The report's v_c(R) and M(<r): dp-cbe's quadratures against dp-mock's closed forms."""

from __future__ import annotations

import json
from pathlib import Path

import dp_mock
import numpy as np
import pytest

from deep_potential import _figures, _markdown, _profiles

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
R_EDGES = np.linspace(0.0, 8.0, 5)


class _Scaled:
    """A potential-like whose force is the truth's times (1 + eps): v_c scales by √(1 + eps)
    and M(<r) by (1 + eps) exactly (v_c² and Gauss's law are linear in the force)."""

    def __init__(self, truth: object, eps: float) -> None:
        self.truth, self.eps = truth, eps

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        return (1.0 + self.eps) * np.asarray(self.truth.acceleration(x))  # type: ignore[attr-defined]


@pytest.fixture(scope="module", params=["demo", "demo-hernquist", "demo-om"])
def truth(request: pytest.FixtureRequest) -> object:
    return dp_mock.Truth(dp_mock.preset(request.param).replace(dust=False))


def _profiles_of(truth: object, eps: float) -> tuple[dict, dict]:
    radii = _profiles.profile_radii(np.linspace(0.0, 8.0, 1001), 8.0)
    models = {"conditional": truth, "selection": _Scaled(truth, eps)}
    return _profiles.potential_profiles(models, truth, radii, R_EDGES)


def test_truth_as_model_has_no_error_and_scaled_force_has_the_closed_form_error(truth) -> None:
    eps = 0.05
    prof, err = _profiles_of(truth, eps)
    assert len(prof["r_kpc"]) == _profiles.N_RADII
    # The force of a sphere is radial and equal on every circle and sphere: the azimuthal mean
    # and the Gauss–Legendre sphere rule are exact up to round-off (measured ≲ 1e-14).
    for key in ("v_c_rel_err", "mass_rel_err"):
        e = err["conditional"][key]
        assert abs(e["all"]["p16"]) < 1e-12 and abs(e["all"]["p84"]) < 1e-12
        assert sum(b["n"] for b in e["by_r"]) == _profiles.N_RADII
    # A force (1 + eps) times the truth's: v_c / v_c,true − 1 = √(1 + eps) − 1, M ratio − 1 = eps.
    ev, em = err["selection"]["v_c_rel_err"], err["selection"]["mass_rel_err"]
    for b in ev["by_r"]:
        assert b["median"] == pytest.approx(np.sqrt(1 + eps) - 1, abs=1e-12)
    for b in em["by_r"]:
        assert b["median"] == pytest.approx(eps, abs=1e-12)
    # The truth's curves are dp-mock's closed forms; the profile is JSON-ready.
    r = np.asarray(prof["r_kpc"])
    np.testing.assert_array_equal(prof["v_c_kms"]["truth"], truth.circular_velocity(r))
    np.testing.assert_array_equal(prof["mass_msun"]["truth"], truth.enclosed_mass(r))
    json.dumps({"profiles": prof, "errors": err})


def test_radii_start_at_the_stars_and_never_at_zero() -> None:
    r = _profiles.profile_radii(np.linspace(5.0, 11.0, 1001), 11.0, 32)
    # 1st percentile of a uniform grid on [5, 11] is 5.06: no radius below the stars
    assert r[0] == pytest.approx(5.06) and r[-1] == 11.0 and len(r) == 32
    r = _profiles.profile_radii(np.zeros(10), 8.0, 16)  # all stars at the centre
    assert r[0] == pytest.approx(0.5) and np.all(np.diff(r) > 0)


def test_figure_and_markdown_with_and_without_truth(truth, tmp_path: Path) -> None:
    prof, err = _profiles_of(truth, 0.05)
    metrics = {
        "truth": True,
        "r_bin_edges": R_EDGES.tolist(),
        "profiles": prof,
        "methods": {m: dict(e) for m, e in err.items()},
    }
    _figures.fig_vc_mass(prof, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG_MAGIC
    text = "\n".join(_markdown._profile_section(metrics))
    assert "Circular velocity and enclosed mass" in text and "+0.050" in text  # M error = eps
    # Without truth: values at the bin edges the curves reach, no error columns.
    bare = {k: {m: v for m, v in c.items() if m != "truth"} if isinstance(c, dict) else c
            for k, c in prof.items()}  # fmt: skip
    metrics = {"truth": False, "r_bin_edges": R_EDGES.tolist(), "profiles": bare, "methods": {}}
    _figures.fig_vc_mass(bare, tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:8] == PNG_MAGIC
    lines = _markdown._profile_section(metrics)
    rows = [ln for ln in lines if ln.startswith("| 2 |") or ln.startswith("| 8 |")]
    assert len(rows) == 2 and "Δv_c" not in "\n".join(lines)
    v8 = float(rows[1].split("|")[2])  # v_c of "conditional" (the truth) at r = 8 kpc, 4 digits
    assert v8 == pytest.approx(float(truth.circular_velocity(np.array([8.0]))[0]), rel=1e-3)


def test_convergence_lines_tell_a_fit_still_falling_from_one_past_its_minimum() -> None:
    """The report asks for more steps only where the validation loss was still falling; a fit
    whose minimum came long before the ceiling gets a note naming that step instead. A history
    without ``still_improving`` (older runs) gets the conservative warning."""
    metrics = {
        "convergence": {"vanilla": True, "selection": False, "conditional": False},
        "fit_status": {
            "vanilla": {"stop_reason": "converged", "steps": 3000, "best_step": 2750,
                        "still_improving": False},
            "selection": {"stop_reason": "n_steps", "steps": 6000, "best_step": 6000,
                          "still_improving": True},
            "conditional": {"stop_reason": "n_steps", "steps": 6000, "best_step": 1500,
                            "still_improving": False},
        },
    }  # fmt: skip
    text = "\n".join(_markdown._convergence_warning(metrics))
    assert "fit(s) selection hit their step ceiling while the validation loss" in text
    assert "conditional at step 1500 of 6000" in text and "vanilla" not in text
    del metrics["fit_status"]
    text = "\n".join(_markdown._convergence_warning(metrics))
    assert "fit(s) selection, conditional hit their step ceiling" in text
    assert _markdown._convergence_warning({"convergence": {"vanilla": True}}) == []
