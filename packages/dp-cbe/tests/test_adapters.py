"""gala and galpy adapters: against those packages' own Plummer/Hernquist, around a fitted model,
and energy conservation of orbits integrated by gala and galpy in an adapted potential."""

from __future__ import annotations

import sys

import _analytic_potentials as ap
import dp_cbe
import numpy as np
import pytest
from _tiny_model import R_DATA, tiny_solution
from dp_cbe import _adapters

RNG = np.random.default_rng(7)
X = RNG.normal(size=(20, 3)) * 3.0  # kpc

# One body for both analytic models: (ours, gala class + kwargs, galpy class + kwargs).
# galpy's Hernquist normalises amp as twice the mass (ρ = amp/(4π a³)/((r/a)(1+r/a)³)).
MODELS = {
    "plummer": (ap.Plummer(), "PlummerPotential", "b", 1.0),
    "hernquist": (ap.Hernquist(), "HernquistPotential", "a", 2.0),
}


def _g_ratio() -> float:
    """G(dp-cbe) / G(astropy): gala and galpy convert masses with astropy's G."""
    import astropy.constants as const
    import astropy.units as u

    return ap.G / const.G.to_value(u.kpc * (u.km / u.s) ** 2 / u.Msun)


@pytest.mark.parametrize("name", list(MODELS))
def test_gala_matches_gala_builtin(name: str) -> None:
    gp = pytest.importorskip("gala.potential")
    import astropy.units as u
    from gala.units import galactic

    ours, cls, _, _ = MODELS[name]
    scale = ours.b if name == "plummer" else ours.a
    kw = {"b": scale} if name == "plummer" else {"c": scale}
    k = {key: v * u.kpc for key, v in kw.items()}
    ref = getattr(gp, cls)(m=ours.m * _g_ratio() * u.Msun, units=galactic, **k)
    wrapped = dp_cbe.to_gala(ours)
    q = X.T * u.kpc
    # Same closed forms in float64 through two unit conversions: round-off (1e-13 relative).
    for method in ("energy", "gradient", "acceleration", "hessian"):
        a, b = getattr(wrapped, method)(q), getattr(ref, method)(q)
        assert a.shape == b.shape
        np.testing.assert_allclose(a.to_value(b.unit), b.value, rtol=1e-12, atol=0)
    # gala's density uses the mass parameter, which carries the G ratio above.
    rho_ref = ref.density(q).to_value(u.Msun / u.kpc**3) / _g_ratio()
    np.testing.assert_allclose(wrapped.density(q).to_value(u.Msun / u.kpc**3), rho_ref, rtol=1e-12)


@pytest.mark.parametrize("name", list(MODELS))
def test_galpy_matches_galpy_builtin(name: str) -> None:
    potential = pytest.importorskip("galpy.potential")
    import astropy.units as u

    ours, cls, scale_name, amp_factor = MODELS[name]
    ro, vo = 8.0, 220.0
    scale = ours.b if name == "plummer" else ours.a
    ref = getattr(potential, cls)(amp=amp_factor * ours.m * _g_ratio() * u.Msun,
                                  **{scale_name: scale * u.kpc}, ro=ro, vo=vo)  # fmt: skip
    wrapped = dp_cbe.to_galpy(ours, ro=ro, vo=vo)
    R = np.linspace(0.05, 1.0, 7)
    z = np.linspace(-0.4, 0.5, 7)
    phi = np.linspace(0.0, 5.0, 7)
    for fn in ("evaluatePotentials", "evaluateRforces", "evaluatezforces", "evaluateR2derivs",
               "evaluatez2derivs", "evaluateRzderivs", "evaluatephitorques"):  # fmt: skip
        a = getattr(potential, fn)(wrapped, R, z, phi=phi, use_physical=False)
        b = getattr(potential, fn)(ref, R, z, phi=phi, use_physical=False)
        # Round-off; the torque of a spherical potential is 0 in galpy and ~1e-16 here.
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    # Natural units have G = 1: both sides are G·ρ, so no G ratio here.
    a = potential.evaluateDensities(wrapped, R, z, phi=phi, use_physical=False)
    b = potential.evaluateDensities(ref, R, z, phi=phi, use_physical=False)
    np.testing.assert_allclose(a, b, rtol=1e-11)
    scalar = potential.evaluatePotentials(wrapped, 0.5, 0.1, phi=0.3, use_physical=False)
    assert isinstance(scalar, float)


class _OffCentre:
    """A non-axisymmetric analytic potential: two Plummer spheres, one off-centre."""

    def __init__(self) -> None:
        self.a, self.b = ap.Plummer(1e11, 3.0), ap.Plummer(3e10, 1.0)
        self.o = np.array([1.0, 0.5, 0.3])

    def potential(self, x: np.ndarray) -> np.ndarray:
        return self.a.potential(x) + self.b.potential(x - self.o)

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        return self.a.acceleration(x) + self.b.acceleration(x - self.o)

    def hessian(self, x: np.ndarray) -> np.ndarray:
        return self.a.hessian(x) + self.b.hessian(x - self.o)

    def density(self, x: np.ndarray) -> np.ndarray:
        return self.a.density(x) + self.b.density(x - self.o)


def test_galpy_cylindrical_derivatives_non_axisymmetric() -> None:
    """Every cylindrical force and second derivative against central differences of Φ."""
    potential = pytest.importorskip("galpy.potential")
    w = dp_cbe.to_galpy(_OffCentre(), ro=8.0, vo=220.0)
    R, z, phi = 0.4, 0.15, 0.7
    h = 1e-4  # natural units; O(h²) truncation and 1e-16/h² round-off in second differences

    def f(dr: float = 0, dz: float = 0, dp: float = 0) -> float:
        return potential.evaluatePotentials(w, R + dr, z + dz, phi=phi + dp, use_physical=False)

    def d1(**k: float) -> float:
        (key, step), = k.items()  # fmt: skip
        return (f(**{key: step}) - f(**{key: -step})) / (2 * step)

    def d2(k1: str, k2: str) -> float:
        return (f(**{k1: h, k2: h}) - f(**{k1: h, k2: -h}) - f(**{k1: -h, k2: h})
                + f(**{k1: -h, k2: -h})) / (4 * h * h)  # fmt: skip

    ev = {n: getattr(potential, n) for n in dir(potential) if n.startswith("evaluate")}
    args = (w, R, z)
    kw = {"phi": phi, "use_physical": False}
    np.testing.assert_allclose(ev["evaluateRforces"](*args, **kw), -d1(dr=h), rtol=1e-7)
    np.testing.assert_allclose(ev["evaluatezforces"](*args, **kw), -d1(dz=h), rtol=1e-7)
    np.testing.assert_allclose(ev["evaluatephitorques"](*args, **kw), -d1(dp=h), rtol=1e-6)
    for fn, k1, k2 in (("evaluateR2derivs", "dr", "dr"), ("evaluatez2derivs", "dz", "dz"),
                       ("evaluateRzderivs", "dr", "dz"), ("evaluatephi2derivs", "dp", "dp"),
                       ("evaluateRphiderivs", "dr", "dp"), ("evaluatephizderivs", "dp", "dz")):  # fmt: skip
        if k1 == k2:
            step = {k1: h}
            num = (f(**{k1: 2 * h}) - 2 * f() + f(**{k1: -2 * h})) / (4 * h * h)
            del step
        else:
            num = d2(k1, k2)
        # Second differences with h = 1e-4 of Φ ~ 1: round-off ~1e-16/1e-8 = 1e-8 absolute.
        np.testing.assert_allclose(ev[fn](*args, **kw), num, rtol=1e-5, atol=1e-6)


def test_adapters_reproduce_fitted_model() -> None:
    """Around a fitted model, both adapters return sol's own numbers (unit conversions only)."""
    sol = tiny_solution()
    x = RNG.uniform(-R_DATA / 2, R_DATA / 2, size=(50, 3))
    phi, acc = sol.potential(x), sol.acceleration(x)
    if "gala" in _installed():
        import astropy.units as u

        g = sol.to_gala()
        v2 = (u.km / u.s) ** 2
        np.testing.assert_allclose(g.energy(x.T * u.kpc).to_value(v2), phi, rtol=1e-12)
        np.testing.assert_allclose(g.acceleration(x.T * u.kpc).to_value(v2 / u.kpc).T, acc,
                                   rtol=1e-12, atol=1e-12 * np.abs(acc).max())  # fmt: skip
        np.testing.assert_allclose(g.hessian(x.T * u.kpc).to_value(v2 / u.kpc**2),
                                   np.moveaxis(sol.hessian(x), 0, -1), rtol=1e-12, atol=1e-9)  # fmt: skip
    if "galpy" in _installed():
        from galpy.potential import evaluatePotentials, evaluatezforces

        ro, vo = 8.0, 220.0
        gpot = sol.to_galpy(ro=ro, vo=vo)
        R, z, ph = np.hypot(x[:, 0], x[:, 1]) / ro, x[:, 2] / ro, np.arctan2(x[:, 1], x[:, 0])
        kw = {"phi": ph, "use_physical": False}
        np.testing.assert_allclose(evaluatePotentials(gpot, R, z, **kw) * vo**2, phi, rtol=1e-12)
        np.testing.assert_allclose(evaluatezforces(gpot, R, z, **kw) * vo**2 / ro, acc[:, 2],
                                   rtol=1e-12, atol=1e-12 * np.abs(acc).max())  # fmt: skip
    if not _installed():
        pytest.skip("neither gala nor galpy is installed")


def _installed() -> set[str]:
    import importlib.util

    return {m for m in ("gala", "galpy") if importlib.util.find_spec(m) is not None}


def _period(sol: dp_cbe.PotentialSolution, r: float) -> float:
    """Circular orbital period at radius r in Myr (1 kpc/(km/s) = 977.8 Myr)."""
    return 2 * np.pi * r / float(sol.circular_velocity([r])[0]) * 977.792


def test_gala_orbit_conserves_energy_in_fitted_model() -> None:
    pytest.importorskip("gala.potential")
    import astropy.units as u
    import gala.dynamics as gd
    import gala.potential as gp
    from gala.integrate import LeapfrogIntegrator
    from gala.units import galactic

    sol = tiny_solution()
    r0 = 4.0
    vc = float(sol.circular_velocity([r0])[0])
    w0 = gd.PhaseSpacePosition(pos=[r0, 0, 0.5] * u.kpc, vel=[0, 0.8 * vc, 20] * u.km / u.s)
    period = _period(sol, r0)
    n_steps = 4000  # 10 periods, 400 leapfrog steps each
    kw = {"dt": 10 * period / n_steps, "n_steps": n_steps, "Integrator": LeapfrogIntegrator}
    orbit = sol.to_gala().integrate_orbit(w0, **kw)
    e = orbit.energy().to_value((u.km / u.s) ** 2).ravel()
    r = np.linalg.norm(orbit.xyz.to_value(u.kpc), axis=0)
    assert r.max() < R_DATA  # the orbit stays in the data volume
    # Leapfrog's energy error oscillates with amplitude ~(Ω dt)²/8 ≈ (2π/400)²/8 ≈ 3e-5 and
    # does not grow; the float32 Φ adds ~1e-6.
    drift = np.abs(e - e[0]).max() / abs(e[0])
    assert drift < 1e-4, drift
    # The same integrator in the wrapped analytic Plummer and in gala's own (C) Plummer gives
    # the same orbit to round-off accumulated over 4000 steps.
    ours = ap.Plummer()
    ref = gp.PlummerPotential(m=ours.m * _g_ratio() * u.Msun, b=ours.b * u.kpc, units=galactic)
    a = dp_cbe.to_gala(ours).integrate_orbit(w0, **kw).xyz.to_value(u.kpc)
    b = ref.integrate_orbit(w0, cython_if_possible=False, **kw).xyz.to_value(u.kpc)
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_galpy_orbit_conserves_energy_in_fitted_model() -> None:
    pytest.importorskip("galpy.potential")
    from galpy.orbit import Orbit
    from galpy.potential import evaluatePotentials

    sol = tiny_solution()
    ro, vo = 8.0, 220.0
    pot = sol.to_galpy(ro=ro, vo=vo)
    r0 = 4.0
    vc = float(sol.circular_velocity([r0])[0])
    o = Orbit([r0 / ro, 0.05, 0.8 * vc / vo, 0.5 / ro, 20 / vo, 0.0], ro=ro, vo=vo)
    t_nat = 10 * _period(sol, r0) / 977.792 / ro * vo  # Myr → natural time units
    ts = np.linspace(0, t_nat, 1001)
    o.integrate(ts, pot, method="odeint")
    R, z, phi = o.R(ts, use_physical=False), o.z(ts, use_physical=False), o.phi(ts)
    v2 = o.vR(ts, use_physical=False) ** 2 + o.vT(ts, use_physical=False) ** 2
    v2 = v2 + o.vz(ts, use_physical=False) ** 2
    e = 0.5 * v2 + evaluatePotentials(pot, R, z, phi=phi, use_physical=False)
    # galpy's odeint runs at rtol = atol = 1e-8 (measured 3e-7 over one period here), and the
    # float32 Φ adds ~1e-6: the drift over 10 periods stays below 1e-5.
    drift = np.abs(e - e[0]).max() / abs(e[0])
    assert drift < 1e-5, drift


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gala.potential", None)
    monkeypatch.setitem(sys.modules, "galpy.potential", None)
    _adapters._gala_class.cache_clear()
    _adapters._galpy_class.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"dp-cbe\[gala\]"):
            dp_cbe.to_gala(ap.Plummer())
        with pytest.raises(ImportError, match=r"dp-cbe\[galpy\]"):
            dp_cbe.to_galpy(ap.Plummer())
    finally:
        _adapters._gala_class.cache_clear()
        _adapters._galpy_class.cache_clear()
