"""Unit conventions: public kpc, km/s, M☉; internal kpc, 100 km/s, G = 1.

The paper's loss hyperparameters α = β = 1 are meant for internal units in which the mock's
typical CBE residual |r| and 4πGρ are O(1). Everything the public API accepts or returns is in
physical units; the networks see and produce internal units only.
"""

from __future__ import annotations

import math
from typing import TypeVar

T = TypeVar("T")  # a NumPy or JAX array (or float)

G: float = 4.300917e-6
"""Gravitational constant in kpc (km/s)² / M☉."""

VELOCITY_UNIT: float = 100.0
"""Internal velocity unit in km/s (length unit: 1 kpc)."""

MASS_UNIT: float = VELOCITY_UNIT**2 / G
"""Internal mass unit in M☉ (≈ 2.325e9), so that G = 1 internally."""

POTENTIAL_UNIT: float = VELOCITY_UNIT**2
"""Internal potential unit in (km/s)²; accelerations: (km/s)²/kpc per internal unit."""

DENSITY_UNIT: float = MASS_UNIT
"""Internal density unit in M☉/kpc³ (length unit is 1 kpc)."""

FOUR_PI: float = 4.0 * math.pi


def velocity_to_internal(v: T) -> T:
    """Velocity (km/s) → internal units (100 km/s)."""
    return v / VELOCITY_UNIT  # type: ignore[operator]


def dlnf_dv_to_internal(d: T) -> T:
    """∂ln f/∂v in (km/s)⁻¹ → internal units (100 km/s)⁻¹."""
    return d * VELOCITY_UNIT  # type: ignore[operator]


def density_from_laplacian(lap: T) -> T:
    """Internal ∇²Φ → physical density ρ = ∇²Φ/(4πG) in M☉/kpc³."""
    return lap / FOUR_PI * DENSITY_UNIT  # type: ignore[operator]
