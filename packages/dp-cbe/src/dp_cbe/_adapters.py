"""Adapters to the orbit integrators people use: gala and galpy potentials around any potential.

Both consume a *potential-like* object: ``potential(x)`` ((km/s)²), ``acceleration(x)``
((km/s)²/kpc), ``hessian(x)`` ((km/s)²/kpc², (n, 3, 3)) and ``density(x)`` (M☉/kpc³) on (n, 3)
Galactocentric Cartesian positions in kpc — a `PotentialSolution`, a `MultipoleExpansion` or
an analytic model. gala and galpy are optional: ``pip install "dp-cbe[gala]"`` or
``"dp-cbe[galpy]"``; without them these functions raise an ImportError that names the extra.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._units import G


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"this adapter needs {extra}, which is not installed: "
            f'pip install "dp-cbe[{extra}]" (or pip install {extra})'
        ) from err


@functools.cache
def _gala_class() -> type:
    gp = _require("gala.potential", "gala")
    import astropy.units as u

    class DeepPotentialGala(gp.PotentialBase):
        """A gala potential evaluating a dp-cbe potential-like object (pure Python level).

        Args:
            source: potential-like object in kpc, km/s, M☉.
            units: a gala `UnitSystem` (default ``gala.units.galactic``).
        """

        def __init__(self, source: Any, units: Any = None) -> None:
            if units is None:
                from gala.units import galactic  # pyright: ignore[reportMissingImports]  # the optional [gala] extra

                units = galactic
            self._source = source
            super().__init__(units=units)
            us = self.units
            kpc, v2 = u.kpc, (u.km / u.s) ** 2
            self._length = float((1.0 * us["length"]).to_value(kpc))  # gala length → kpc
            self._phi = float((1.0 * v2).decompose(us).value)  # pyright: ignore[reportAttributeAccessIssue]  # astropy types number * unit as a unit; it is a Quantity
            self._acc = float((1.0 * v2 / kpc).decompose(us).value)  # pyright: ignore[reportAttributeAccessIssue]  # astropy types number * unit as a unit; it is a Quantity
            self._hess = float((1.0 * v2 / kpc**2).decompose(us).value)  # pyright: ignore[reportAttributeAccessIssue]  # astropy types number * unit as a unit; it is a Quantity
            self._rho = float((1.0 * u.Msun / kpc**3).decompose(us).value)  # pyright: ignore[reportAttributeAccessIssue]  # astropy types number * unit as a unit; it is a Quantity

        def _kpc(self, q: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(q, dtype=np.float64) * self._length

        def _energy(self, q: np.ndarray, t: Any = 0.0) -> np.ndarray:  # q (n, 3)
            return np.asarray(self._source.potential(self._kpc(q))) * self._phi

        def _gradient(self, q: np.ndarray, t: Any = 0.0) -> np.ndarray:  # q (3, n)
            return -np.asarray(self._source.acceleration(self._kpc(q.T))).T * self._acc

        def _hessian(self, q: np.ndarray, t: Any = 0.0) -> np.ndarray:  # q (n, 3) → (n, 3, 3)
            return np.asarray(self._source.hessian(self._kpc(q))) * self._hess

        def _density(self, q: np.ndarray, t: Any = 0.0) -> np.ndarray:  # q (n, 3)
            return np.asarray(self._source.density(self._kpc(q))) * self._rho

        def replicate(self, **kwargs: Any) -> DeepPotentialGala:
            return type(self)(self._source, units=kwargs.get("units", self.units))

    return DeepPotentialGala


def to_gala(pot: Any, units: Any = None) -> Any:
    """Wrap a potential-like object as a gala potential (``gala.potential.PotentialBase``).

    The result has gala's ``energy``, ``gradient``, ``acceleration``, ``hessian``,
    ``density``, ``circular_velocity``, ``integrate_orbit`` … in the unit system ``units``
    (default ``gala.units.galactic``: kpc, Myr, M☉). It is a Python-level potential, so gala
    integrates orbits in it with its Python integrators (``cython_if_possible`` does not
    apply); each step costs one batched call of ``pot.acceleration`` over all orbits.

    Example:
        Skipped in doctests: it needs a fitted model directory and the optional gala.

        >>> pot = dp_cbe.load_model("potential/").to_gala()  # doctest: +SKIP
        >>> orbit = pot.integrate_orbit(w0, dt=1.0, n_steps=5000)  # doctest: +SKIP

    Raises:
        ImportError: gala is not installed (``pip install "dp-cbe[gala]"``).
    """
    return _gala_class()(pot, units=units)


class _Cylindrical:
    """(R, z, φ) in galpy natural units → Cartesian kpc, with one-entry caches of the source's
    acceleration and Hessian (galpy asks for F_R, F_z and the torque at the same point)."""

    def __init__(self, source: Any, ro: float, vo: float) -> None:
        self.source, self.ro, self.vo = source, ro, vo
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def points(self, R: Any, z: Any, phi: Any) -> tuple[np.ndarray, tuple[int, ...], tuple]:
        R, z, phi = np.broadcast_arrays(
            np.asarray(R, np.float64), np.asarray(z, np.float64), np.asarray(phi, np.float64)
        )
        x = np.stack([R * np.cos(phi), R * np.sin(phi), z], axis=-1).reshape(-1, 3) * self.ro
        c, s = np.cos(phi).ravel(), np.sin(phi).ravel()
        return x, R.shape, (R.ravel(), c, s)

    def cached(self, name: str, x: np.ndarray) -> np.ndarray:
        hit = self._cache.get(name)
        if hit is not None and hit[0].shape == x.shape and np.array_equal(hit[0], x):
            return hit[1]
        value = np.asarray(getattr(self.source, name)(x), np.float64)
        self._cache[name] = (x.copy(), value)
        return value

    def forces(
        self, R: Any, z: Any, phi: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
        """F_R, F_z, torque −∂Φ/∂φ (natural units) and the output shape."""
        x, shape, (r, c, s) = self.points(R, z, phi)
        a = self.cached("acceleration", x) * (self.ro / self.vo**2)
        f_r = a[:, 0] * c + a[:, 1] * s
        f_phi = -a[:, 0] * s + a[:, 1] * c
        return f_r, a[:, 2], r * f_phi, shape

    def second(self, R: Any, z: Any, phi: Any) -> dict[str, np.ndarray]:
        """Cylindrical second derivatives of Φ (natural units)."""
        x, shape, (r, c, s) = self.points(R, z, phi)
        h = self.cached("hessian", x) * (self.ro**2 / self.vo**2)
        a = self.cached("acceleration", x) * (self.ro / self.vo**2)
        e_r = np.stack([c, s, np.zeros_like(c)], axis=1)
        e_p = np.stack([-s, c, np.zeros_like(c)], axis=1)
        e_z = np.broadcast_to(np.array([0.0, 0.0, 1.0]), e_r.shape)

        def q(e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
            return np.einsum("ni,nij,nj->n", e1, h, e2)

        dphi_dr = -np.sum(a * e_r, axis=1)
        dphi_dphi_over_r = -np.sum(a * e_p, axis=1)
        return {
            "R2": q(e_r, e_r),
            "z2": q(e_z, e_z),
            "Rz": q(e_r, e_z),
            "phi2": r**2 * q(e_p, e_p) - r * dphi_dr,
            "Rphi": dphi_dphi_over_r + r * q(e_r, e_p),
            "phiz": r * q(e_p, e_z),
            "shape": np.asarray(shape),
        }


def _shaped(v: np.ndarray, shape: tuple[int, ...]) -> Any:
    v = v.reshape(shape)
    return float(v) if v.ndim == 0 else v


@functools.cache
def _galpy_class() -> type:
    potential = _require("galpy.potential", "galpy")

    class DeepPotentialGalpy(potential.Potential):
        """A galpy potential evaluating a dp-cbe potential-like object (Python level).

        Args:
            source: potential-like object in kpc, km/s, M☉.
            ro, vo: galpy's distance (kpc) and velocity (km/s) scales.
        """

        def __init__(self, source: Any, ro: float = 8.0, vo: float = 220.0) -> None:
            potential.Potential.__init__(self, amp=1.0, ro=ro, vo=vo)
            self.isNonAxi = True
            self.hasC = False
            self.hasC_dxdv = False
            self._dp = _Cylindrical(source, float(self._ro), float(self._vo))

        def _evaluate(self, R: Any, z: Any, phi: Any = 0.0, t: Any = 0.0) -> Any:
            x, shape, _ = self._dp.points(R, z, phi)
            return _shaped(np.asarray(self._dp.source.potential(x)) / self._dp.vo**2, shape)

        def _Rforce(self, R: Any, z: Any, phi: Any = 0.0, t: Any = 0.0) -> Any:
            f_r, _, _, shape = self._dp.forces(R, z, phi)
            return _shaped(f_r, shape)

        def _zforce(self, R: Any, z: Any, phi: Any = 0.0, t: Any = 0.0) -> Any:
            _, f_z, _, shape = self._dp.forces(R, z, phi)
            return _shaped(f_z, shape)

        def _phitorque(self, R: Any, z: Any, phi: Any = 0.0, t: Any = 0.0) -> Any:
            _, _, tq, shape = self._dp.forces(R, z, phi)
            return _shaped(tq, shape)

        def _dens(self, R: Any, z: Any, phi: Any = 0.0, t: Any = 0.0) -> Any:
            x, shape, _ = self._dp.points(R, z, phi)
            rho = np.asarray(self._dp.source.density(x)) * G * self._dp.ro**2 / self._dp.vo**2
            return _shaped(rho, shape)

        def _second(self, key: str, R: Any, z: Any, phi: Any) -> Any:
            d = self._dp.second(R, z, phi)
            return _shaped(d[key], tuple(d["shape"]))

        def _R2deriv(self, R: Any, z: Any, phi: Any = 0.0, t: Any = 0.0) -> Any:
            return self._second("R2", R, z, phi)

        def _z2deriv(self, R: Any, z: Any, phi: Any = 0.0, t: Any = 0.0) -> Any:
            return self._second("z2", R, z, phi)

        def _Rzderiv(self, R: Any, z: Any, phi: Any = 0.0, t: Any = 0.0) -> Any:
            return self._second("Rz", R, z, phi)

        def _phi2deriv(self, R: Any, z: Any, phi: Any = 0.0, t: Any = 0.0) -> Any:
            return self._second("phi2", R, z, phi)

        def _Rphideriv(self, R: Any, z: Any, phi: Any = 0.0, t: Any = 0.0) -> Any:
            return self._second("Rphi", R, z, phi)

        def _phizderiv(self, R: Any, z: Any, phi: Any = 0.0, t: Any = 0.0) -> Any:
            return self._second("phiz", R, z, phi)

    return DeepPotentialGalpy


def to_galpy(pot: Any, ro: float = 8.0, vo: float = 220.0) -> Any:
    """Wrap a potential-like object as a galpy ``Potential`` in galpy's natural units.

    Positions are in units of ``ro`` kpc, velocities of ``vo`` km/s, G = 1 (so the density is
    ∇²Φ/4π in those units); pass ``ro``/``vo`` to galpy's ``Orbit`` too. The potential is
    non-axisymmetric and Python-level: integrate orbits with a Python method (``"odeint"``,
    ``"dop853"``, ``"leapfrog"``); each force call is one batched ``pot.acceleration``.

    Example:
        Skipped in doctests: it needs a fitted model and the optional galpy.

        >>> from galpy.orbit import Orbit  # doctest: +SKIP
        >>> gp = sol.to_galpy(ro=8.0, vo=220.0)  # doctest: +SKIP
        >>> o = Orbit([1.0, 0.1, 1.1, 0.0, 0.1, 0.0], ro=8.0, vo=220.0)  # doctest: +SKIP
        >>> o.integrate(np.linspace(0, 20, 2001), gp, method="dop853")  # doctest: +SKIP

    Raises:
        ImportError: galpy is not installed (``pip install "dp-cbe[galpy]"``).
    """
    return _galpy_class()(pot, ro=ro, vo=vo)
