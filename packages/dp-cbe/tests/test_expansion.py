"""Multipole expansion: force accuracy against the source, convergence in l_max, continuity."""

from __future__ import annotations

import _analytic_potentials as ap
import dp_cbe
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tiny_model import R_DATA, tiny_solution


class _OffCentre:
    """Non-spherical: a Plummer sphere plus a smaller one displaced from the origin."""

    def __init__(self) -> None:
        self.a, self.b = ap.Plummer(1e11, 3.0), ap.Plummer(3e10, 1.0)
        self.o = np.array([1.0, 0.5, 0.3])

    def potential(self, x: np.ndarray) -> np.ndarray:
        return self.a.potential(x) + self.b.potential(x - self.o)

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        return self.a.acceleration(x) + self.b.acceleration(x - self.o)

    def density(self, x: np.ndarray) -> np.ndarray:
        return self.a.density(x) + self.b.density(x - self.o)


@pytest.mark.parametrize("pot", [ap.Plummer(), ap.Hernquist()], ids=["plummer", "hernquist"])
def test_spherical_models_to_float32(pot) -> None:
    exp = dp_cbe.multipole_expansion(pot, r_max=R_DATA, l_max=2, check_points=2048)
    # A spherical model is exact at l = 0; the cubic-Hermite radial interpolation on 64 nodes
    # and the float32 tables leave ~1e-5 relative force error (measured: median 5e-6).
    assert exp.accuracy["median"] < 2e-5 and exp.accuracy["max"] < 2e-4, exp.accuracy
    # match_potential restores the additive constant (mass beyond r_max) too.
    x = np.random.default_rng(0).normal(size=(32, 3))
    np.testing.assert_allclose(exp.potential(x), pot.potential(x), rtol=1e-5)


def test_convergence_in_l_max_off_centre() -> None:
    pot = _OffCentre()
    errs = [dp_cbe.multipole_expansion(pot, r_max=R_DATA, l_max=deg, check_points=2048)
            .accuracy["rms_rel"] for deg in (0, 4, 8)]  # fmt: skip
    # Measured rms relative errors ≈ 0.26, 0.014, 6e-4: each step of 4 in l gains > 10×.
    assert errs[0] > 10 * errs[1] > 100 * errs[2], errs
    assert errs[2] < 2e-3, errs


def test_fitted_model_expansion_matches_acceleration() -> None:
    sol = tiny_solution()
    exp = sol.multipole_expansion(r_max=R_DATA, l_max=6, check_points=4096)
    # The stated accuracy (docs/interfaces.md): l_max = 6, 64 radial nodes on this nearly
    # spherical fitted Φ give a median relative force error ~1e-5, 90th percentile < 1e-4.
    assert exp.accuracy["median"] < 1e-4 and exp.accuracy["p90"] < 1e-3, exp.accuracy
    # Independent check at fresh points, against sol.acceleration directly.
    rng = np.random.default_rng(5)
    x = rng.uniform(-R_DATA / 2, R_DATA / 2, size=(256, 3))
    a, b = exp.acceleration(x), sol.acceleration(x)
    rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
    assert np.median(rel) < 1e-4, np.median(rel)
    # Φ is continuous across r_max (vacuum continuation outside): over 2e-3 kpc it changes by
    # |a|·2e-3 only. (The radial force is not: the tidal terms c_lm (r/r_max)^l continue as
    # (r_max/r)^(l+1), a surface layer at r_max; only the monopole force is continuous.)
    u = np.array([[0.6, 0.0, 0.8]])
    inside, outside = exp.potential(u * (R_DATA - 1e-3)), exp.potential(u * (R_DATA + 1e-3))
    a_out = np.linalg.norm(exp.acceleration(u * (R_DATA + 1e-3)))
    assert abs(inside[0] - outside[0]) < 1.5 * 2e-3 * a_out + 1e-6 * abs(inside[0])
    # Far away the monopole dominates: Φ → const − GM(<r_max)/r.
    far = np.array([[0.0, 0.0, 1e3]])
    assert np.linalg.norm(exp.acceleration(far)) < 1e-3 * a_out


def test_expansion_as_jax_and_adapters() -> None:
    exp = dp_cbe.multipole_expansion(ap.Plummer(), r_max=R_DATA, l_max=0, check_points=0)
    assert exp.accuracy == {}
    jp = exp.as_jax()
    x = jnp.array([[1.0, 2.0, 0.5]])
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(jp.acceleration))(x)),
                               exp.acceleration(np.asarray(x)), rtol=2e-6)  # fmt: skip
    assert exp.hessian(np.asarray(x)).shape == (1, 3, 3)
    # ∇²Φ of the expansion is the interpolated density: ~1e-3 from cubic Hermite in r.
    np.testing.assert_allclose(exp.density(np.asarray(x)), ap.Plummer().density(np.asarray(x)),
                               rtol=1e-2)  # fmt: skip


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="r_max"):
        dp_cbe.multipole_expansion(ap.Plummer(), r_max=0.0)
    with pytest.raises(ValueError, match="l_max"):
        dp_cbe.multipole_expansion(ap.Plummer(), r_max=1.0, l_max=-1)
