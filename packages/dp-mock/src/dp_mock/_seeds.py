"""The seed tree: how a mock's one integer seed becomes every random stream it draws from.

- the dust field: ``SeedSequence(seed, spawn_key=(0,))`` (``dust_seed``), fed to NumPy's
  ``default_rng`` by ``gaussian_random_field``;
- chunk ``c`` of the stars: ``SeedSequence(seed, spawn_key=(1, c))`` (``star_chunk_seed``),
  reduced to one 64-bit kernel key (``chunk_key``); inside the Numba kernels star ``i`` of the
  chunk draws from a counter-based stream keyed by (chunk key, i, stream), so a catalogue does
  not depend on the thread count;
- ``AbstractSphericalSystem.sample(seed, n)`` and ``Truth.sample_velocities(seed, x)``: the key
  of ``SeedSequence(seed)`` itself, star i = row i;
- two fixed streams, independent of any mock's seed, for Monte Carlo estimates that must never
  change which stars a catalogue holds (``OBSERVED_FRACTION_SEED``, ``YIELD_PROBE_SEED``).
"""

from __future__ import annotations

import numpy as np

OBSERVED_FRACTION_SEED = 12345
"""Seed of the tracer positions behind ``Truth.observed_fraction`` (∫ n S d³x)."""
YIELD_PROBE_SEED = 0xF4AC
"""Seed of the cheap probe of the observed fraction that guards catalogue generation."""


def dust_seed(seed: int) -> np.random.SeedSequence:
    """The SeedSequence of the dust field of a mock with this seed."""
    return np.random.SeedSequence(seed, spawn_key=(0,))


def star_chunk_seed(seed: int, chunk: int) -> np.random.SeedSequence:
    """The SeedSequence of chunk ``chunk`` of the stars of a mock with this seed."""
    return np.random.SeedSequence(seed, spawn_key=(1, chunk))


def chunk_key(seed: int | np.random.SeedSequence) -> np.uint64:
    """A 64-bit kernel key drawn from a seed (int or SeedSequence)."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.uint64(ss.generate_state(1, np.uint64)[0])
