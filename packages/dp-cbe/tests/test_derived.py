"""v_c(R), M(<r), K_z(R, z), Σ(R, |z| < z_max) against closed forms and each other."""

from __future__ import annotations

import _analytic_potentials as ap
import dp_cbe
import numpy as np
import pytest
from _tiny_model import R_DATA, tiny_solution

MODELS = [ap.Plummer(), ap.Hernquist()]


@pytest.mark.parametrize("pot", MODELS, ids=["plummer", "hernquist"])
def test_enclosed_mass_both_methods(pot) -> None:
    r = np.array([0.5, 2.0, 5.0, 8.0])
    truth = pot.mass_enclosed(r)
    # Gauss's law on a spherical model: the sphere average is exact (float64 round-off).
    np.testing.assert_allclose(dp_cbe.enclosed_mass(pot, r), truth, rtol=1e-12)
    # ∫ρ dV with 64 Gauss–Legendre radii: ρr² is smooth (Plummer) or ∝ r near 0 (Hernquist),
    # so the quadrature error is far below 1e-8.
    np.testing.assert_allclose(dp_cbe.enclosed_mass(pot, r, method="density"), truth, rtol=1e-8)


@pytest.mark.parametrize("pot", MODELS, ids=["plummer", "hernquist"])
def test_circular_velocity_and_vertical_force(pot) -> None:
    R = np.array([0.5, 2.0, 8.0])
    vc = np.sqrt(ap.G * pot.mass_enclosed(R) / R)  # spherical: v_c² = GM(<R)/R
    np.testing.assert_allclose(dp_cbe.circular_velocity(pot, R), vc, rtol=1e-12)
    z = np.array([0.1, -0.5, 1.0])
    x = np.stack([R, np.zeros(3), z], axis=1)
    kz = pot.acceleration(x)[:, 2]  # spherical: independent of azimuth
    np.testing.assert_allclose(dp_cbe.vertical_force(pot, R, z), kz, rtol=1e-12)
    assert dp_cbe.vertical_force(pot, R[:, None], z[None, :]).shape == (3, 3)


def test_surface_density_plummer() -> None:
    pot = ap.Plummer()
    R, z_max = np.array([0.0, 1.0, 4.0]), 0.5
    c2 = pot.b**2 + R**2
    # ∫_{-Z}^{Z} (c² + z²)^{-5/2} dz = 2 Z (2Z² + 3c²) / (3 c⁴ (c² + Z²)^{3/2})
    integral = 2 * z_max * (2 * z_max**2 + 3 * c2) / (3 * c2**2 * (c2 + z_max**2) ** 1.5)
    truth = 3 * pot.m / (4 * np.pi * pot.b**3) * pot.b**5 * integral
    # 32 Gauss–Legendre nodes on a smooth integrand: round-off.
    np.testing.assert_allclose(dp_cbe.surface_density(pot, R, z_max), truth, rtol=1e-12)


def test_no_circular_orbit_is_nan() -> None:
    class Repulsive:
        def acceleration(self, x: np.ndarray) -> np.ndarray:
            return x.copy()

    assert np.isnan(dp_cbe.circular_velocity(Repulsive(), [1.0])).all()


def test_bad_input() -> None:
    pot = ap.Plummer()
    with pytest.raises(ValueError, match="method"):
        dp_cbe.enclosed_mass(pot, 1.0, method="jeans")
    with pytest.raises(ValueError, match="≥ 0"):
        dp_cbe.circular_velocity(pot, [-1.0])
    with pytest.raises(ValueError, match="z_max"):
        dp_cbe.surface_density(pot, 1.0, 0.0)


def test_fitted_model_gauss_and_density_agree() -> None:
    """ρ = ∇²Φ/4πG exactly for a fitted Φ, so the two M(<r) differ by quadrature only."""
    sol = tiny_solution()
    r = np.array([2.0, 4.0, R_DATA])
    gauss = sol.enclosed_mass(r)
    quad = sol.enclosed_mass(r, method="density")
    # float32 Laplacian (~1e-5 relative) and a 12×24 angular rule on a nearly spherical Φ.
    np.testing.assert_allclose(quad, gauss, rtol=1e-3)
    assert (gauss > 0).all() and np.all(np.diff(gauss) > 0)
    vc = sol.circular_velocity(r)
    assert np.isfinite(vc).all() and vc.shape == (3,)
    assert sol.surface_density(r, 1.0).shape == (3,)
    assert sol.vertical_force(r, 0.5).shape == (3,)
