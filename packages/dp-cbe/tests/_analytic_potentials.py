"""Analytic potentials with the interface dp-cbe's adapters consume (written here, float64).

``potential(x)`` (km/s)², ``acceleration(x)`` (km/s)²/kpc, ``hessian(x)`` (km/s)²/kpc²,
``density(x)`` M☉/kpc³, on (n, 3) positions in kpc; ``mass_enclosed(r)`` M☉ for the tests of
the derived quantities. G = 4.300917e-6 kpc (km/s)²/M☉.
"""

from __future__ import annotations

import numpy as np

G = 4.300917e-6


class Plummer:
    """Φ = −GM/√(r² + b²)."""

    def __init__(self, m: float = 1.0e11, b: float = 3.0) -> None:
        self.m, self.b = m, b

    def potential(self, x: np.ndarray) -> np.ndarray:
        return -G * self.m / np.sqrt(np.sum(x**2, axis=1) + self.b**2)

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        s2 = np.sum(x**2, axis=1, keepdims=True) + self.b**2
        return -G * self.m * x / s2**1.5

    def hessian(self, x: np.ndarray) -> np.ndarray:
        s2 = np.sum(x**2, axis=1) + self.b**2
        eye = np.eye(3)[None]
        outer = x[:, :, None] * x[:, None, :]
        return G * self.m * (eye / s2[:, None, None] ** 1.5 - 3 * outer / s2[:, None, None] ** 2.5)

    def density(self, x: np.ndarray) -> np.ndarray:
        r2 = np.sum(x**2, axis=1)
        return 3 * self.m / (4 * np.pi * self.b**3) * (1 + r2 / self.b**2) ** -2.5

    def mass_enclosed(self, r: np.ndarray) -> np.ndarray:
        return self.m * r**3 / (r**2 + self.b**2) ** 1.5


class Hernquist:
    """Φ = −GM/(r + a)."""

    def __init__(self, m: float = 1.0e11, a: float = 2.0) -> None:
        self.m, self.a = m, a

    def potential(self, x: np.ndarray) -> np.ndarray:
        return -G * self.m / (np.linalg.norm(x, axis=1) + self.a)

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(x, axis=1, keepdims=True)
        return -G * self.m * x / (r * (r + self.a) ** 2)

    def hessian(self, x: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(x, axis=1)[:, None, None]
        eye = np.eye(3)[None]
        xx = x[:, :, None] * x[:, None, :]
        # Φ'(r) = GM/(r+a)², Φ''(r) = −2GM/(r+a)³; H = Φ''·x̂x̂ᵀ + Φ'/r·(I − x̂x̂ᵀ)
        d1 = G * self.m / (r + self.a) ** 2
        d2 = -2 * G * self.m / (r + self.a) ** 3
        return d2 * xx / r**2 + d1 / r * (eye - xx / r**2)

    def density(self, x: np.ndarray) -> np.ndarray:
        r = np.linalg.norm(x, axis=1)
        return self.m * self.a / (2 * np.pi * r * (r + self.a) ** 3)

    def mass_enclosed(self, r: np.ndarray) -> np.ndarray:
        return self.m * r**2 / (r + self.a) ** 2
