"""Catalogue generation: draw stars in chunks until exactly N are observed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import _kernels
from ._config import MockConfig
from ._io import write_catalog
from ._seeds import YIELD_PROBE_SEED, chunk_key, star_chunk_seed
from ._truth import Truth

_MAX_CHUNKS = 1_000_000
_MIN_EXPECTED_FRACTION = 1e-5
"""Refuse a mock whose expected fraction of observed stars is below this (hopeless yield)."""
_DRAW_MARGIN = 20
"""Stop with an error after drawing this many times the stars the expected fraction needs."""
_N_PROBE = 2**14


def expected_observed_fraction(truth: Truth) -> float:
    """Cheap estimate of ∫ n S d³x: mean selection probability at 2¹⁴ tracer positions.

    Its own fixed stream, so it never changes which stars a catalogue holds. Relative error
    ~ 1 % where the fraction is not tiny; it is the probability, not a 0/1 draw, that is
    averaged, so fractions far below 1/2¹⁴ still come out positive and ordered.
    """
    x, _ = truth.system.sample_positions(chunk_key(YIELD_PROBE_SEED), _N_PROBE)
    return float(np.mean(truth.selection(x)))


def draw_chunk(truth: Truth, chunk: int, n: int) -> dict[str, np.ndarray]:
    """Draw chunk ``chunk`` of ``n`` stars and keep the observed ones, in drawing order.

    Stars too faint even without dust (M + μ ≥ m_max) are dropped before any extinction is
    computed; the rays of the others stop as soon as the extinction exceeds their magnitude
    budget m_max − M − μ. Velocities are drawn only for the observed stars.

    Returns:
        dict with ``index`` (position in the chunk, int64), ``x``, ``v``, ``abs_mag``,
        ``app_mag``, ``extinction``, ``selection`` for the observed stars.
    """
    cfg = truth.config
    key = chunk_key(star_chunk_seed(cfg.seed, chunk))
    x, gauss = truth.system.sample_positions(key, n)
    mu, budget = np.empty(n), np.empty(n)
    _kernels.magnitude_budget(x, gauss, cfg.mag_mean, cfg.mag_std, cfg.m_max, mu, budget)
    bright = np.flatnonzero(budget > 0)
    if truth.dust is not None:
        a = truth.dust.extinction(x[bright], budget=budget[bright])
        seen = a < budget[bright]
        index, a = bright[seen], a[seen]
    else:
        index, a = bright, np.zeros(len(bright))
    xs = x[index]
    abs_mag = cfg.mag_mean + cfg.mag_std * gauss[index]
    return {
        "index": index,
        "x": xs,
        "v": truth.system.sample_velocities(key, index, xs),
        "abs_mag": abs_mag,
        "app_mag": abs_mag + mu[index] + a,
        "extinction": a,
        "selection": truth.magnitudes.probability(xs, a if truth.dust is not None else None),
    }


def generate_catalog(
    config: MockConfig,
    out_path: str | Path,
    *,
    seed: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate a mock catalogue and write it atomically to ``out_path`` (catalog.h5).

    Stars are drawn in chunks of ``config.chunk_size`` until exactly ``config.n_observed`` are
    observed; the catalogue is a pure function of the configuration and seed.

    Args:
        config: the mock's parameters.
        out_path: destination file (written to a temporary file, then renamed).
        seed: overrides ``config.seed`` (the stored configuration holds the seed used).
        progress: show a tqdm progress bar of observed stars.

    Returns:
        The path written.

    Example:
        >>> import os, tempfile
        >>> from dp_mock import MockConfig, generate_catalog, read_catalog
        >>> out = os.path.join(tempfile.mkdtemp(), "cat.h5")
        >>> path = generate_catalog(MockConfig(n_observed=1000), out, progress=False)
        >>> read_catalog(path)["x"].shape
        (1000, 3)
    """
    if seed is not None:
        config = config.replace(seed=int(seed))
    truth = Truth(config)
    fraction = expected_observed_fraction(truth)
    if not fraction >= _MIN_EXPECTED_FRACTION:
        raise ValueError(
            f"this mock observes essentially nothing: the expected fraction of drawn stars that "
            f"pass the selection is {fraction:.2e} (need >= {_MIN_EXPECTED_FRACTION:g}); lower "
            f"dust_mean ({config.dust_mean}) or raise m_max ({config.m_max})"
        )
    max_drawn = _DRAW_MARGIN * config.n_observed / fraction
    max_chunks = min(_MAX_CHUNKS, max(2, math.ceil(max_drawn / config.chunk_size)))
    parts: list[dict[str, np.ndarray]] = []
    n_have = 0
    n_drawn = 0
    with tqdm(total=config.n_observed, disable=not progress, unit="star", desc="observed") as bar:
        for chunk in range(max_chunks):
            part = draw_chunk(truth, chunk, config.chunk_size)
            need = config.n_observed - n_have
            if len(part["index"]) >= need:
                part = {k: a[:need] for k, a in part.items()}
                n_drawn += int(part["index"][-1]) + 1
            else:
                n_drawn += config.chunk_size
            parts.append(part)
            n_have += len(part["index"])
            bar.update(len(part["index"]))
            if n_have == config.n_observed:
                break
        else:
            raise RuntimeError(
                f"only {n_have} of {config.n_observed} stars observed after drawing {n_drawn} "
                f"({max_chunks} chunks), {_DRAW_MARGIN}x the number the expected observed "
                f"fraction {fraction:.2e} needs; the selection is harsher than estimated"
            )
    stars = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "index"}
    truth_attrs = {"config": json.dumps(config.to_dict()), "n_drawn": n_drawn}
    ln_dust = None if truth.dust is None else truth.dust.ln_dust
    return write_catalog(
        out_path, stars, truth_attrs=truth_attrs, ln_dust=ln_dust, dust_extent=config.dust_extent
    )
