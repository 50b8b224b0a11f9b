"""Catalogue generation, selection, HDF5 round trip, load_truth, and failure behaviour."""

import json
import math

import h5py
import numba
import numpy as np
import pytest
from dp_mock import MockConfig, Truth, generate_catalog, load_truth, read_catalog, write_catalog
from dp_mock._catalog import draw_chunk
from dp_mock._seeds import chunk_key, star_chunk_seed
from dp_mock._selection import distance_modulus

SMALL = MockConfig(n_observed=3000, chunk_size=2**13, dust_grid=32, seed=4)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> str:
    return str(generate_catalog(SMALL, tmp_path_factory.mktemp("cat") / "c.h5", progress=False))


def test_catalog_contents(catalog):
    stars = read_catalog(catalog)
    n = SMALL.n_observed
    assert stars["x"].shape == (n, 3) and stars["v"].shape == (n, 3)
    for name in ("abs_mag", "app_mag", "extinction", "selection"):
        assert stars[name].shape == (n,)
    d = np.linalg.norm(stars["x"], axis=1)
    assert d.max() < SMALL.r_max
    assert np.all(stars["app_mag"] < SMALL.m_max)
    # m = M + μ + A to round-off.
    np.testing.assert_allclose(
        stars["app_mag"], stars["abs_mag"] + distance_modulus(d) + stars["extinction"], atol=1e-12
    )
    truth = load_truth(catalog)
    # The stored columns are the truth's functions at the stars (same kernels: bit-identical).
    np.testing.assert_array_equal(truth.extinction(stars["x"]), stars["extinction"])
    np.testing.assert_array_equal(truth.selection(stars["x"]), stars["selection"])
    assert np.all(np.sum(stars["v"] ** 2, axis=1) < -2 * truth.potential(stars["x"]))
    with h5py.File(catalog) as f:
        assert f.attrs["schema"] == "dp-catalog/1" and "kpc" in f.attrs["units"]
        assert f["truth/ln_dust"].shape == (32, 32, 32)
        assert json.loads(f["truth"].attrs["config"]) == SMALL.to_dict()
        n_drawn = int(f["truth"].attrs["n_drawn"])
    # Observed fraction vs ∫ n S: binomial error √(p(1−p)/N_drawn) plus the 2¹⁸-point MC error
    # of observed_fraction; 5 % relative is > 4σ of both at N_drawn ~ 2·10⁴.
    assert abs(n / n_drawn / truth.observed_fraction() - 1) < 0.05


def test_load_truth_round_trip(catalog):
    rebuilt = load_truth(catalog)
    fresh = Truth(SMALL)  # regenerates the dust from the seed
    rng = np.random.default_rng(0)
    x = rng.uniform(-6, 6, size=(200, 3))
    v = rng.normal(scale=200.0, size=(200, 3))
    assert rebuilt.r_max == SMALL.r_max
    for name in (
        "potential",
        "acceleration",
        "density",
        "number_density",
        "selection",
        "extinction",
    ):
        np.testing.assert_array_equal(getattr(rebuilt, name)(x), getattr(fresh, name)(x))
    for name in ("log_p_v_given_x", "grad_log_p_v_given_x", "grad_log_f"):
        a, b = getattr(rebuilt, name)(x, v), getattr(fresh, name)(x, v)
        for i, j in zip(np.atleast_1d(a), np.atleast_1d(b), strict=True):
            np.testing.assert_array_equal(i, j)


def test_selection_fraction_at_fixed_position():
    """The fraction of drawn stars placed at one position that pass M + μ + A < m_max is S(x).

    Uses the generator's own Gaussian variates and cut (budget = m_max − M − μ vs A)."""
    truth = Truth(SMALL)
    n = 200_000
    _, gauss = truth.plummer.sample_positions(chunk_key(99), n)
    for x0 in ([1.0, 2.0, -0.5], [3.0, -4.0, 2.0], [-5.5, 1.0, 4.0]):
        pos = np.array([x0])
        a0 = truth.extinction(pos)[0]
        budget = (
            SMALL.m_max
            - (SMALL.mag_mean + SMALL.mag_std * gauss)
            - distance_modulus(np.linalg.norm(pos, axis=1))[0]
        )
        frac = np.mean(a0 < budget)
        s = truth.selection(pos)[0]
        assert abs(frac - s) < 5 * math.sqrt(s * (1 - s) / n) + 1e-9  # 5σ binomial


def test_observed_stars_follow_n_times_s():
    """End to end: among all drawn stars, the observed count in bins of S equals Σ S (Poisson-
    binomial mean) within 5σ, σ² = Σ S(1 − S)."""
    truth = Truth(SMALL)
    n = 2**16
    part = draw_chunk(truth, 0, n)
    x_all, _ = truth.plummer.sample_positions(chunk_key(star_chunk_seed(SMALL.seed, 0)), n)
    np.testing.assert_array_equal(x_all[part["index"]], part["x"])
    s_all = truth.selection(x_all)
    observed = np.zeros(n, dtype=bool)
    observed[part["index"]] = True
    for lo, hi in [(0, 0.05), (0.05, 0.2), (0.2, 0.5), (0.5, 1.0)]:
        inb = (s_all >= lo) & (s_all < hi)
        expect, var = s_all[inb].sum(), (s_all[inb] * (1 - s_all[inb])).sum()
        assert abs(observed[inb].sum() - expect) < 5 * math.sqrt(var) + 1


def test_reproducible_and_thread_independent(tmp_path):
    cfg = SMALL.replace(n_observed=1500)
    a = read_catalog(generate_catalog(cfg, tmp_path / "a.h5", progress=False))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        b = read_catalog(generate_catalog(cfg, tmp_path / "b.h5", progress=False))
    finally:
        numba.set_num_threads(before)
    c = read_catalog(generate_catalog(cfg, tmp_path / "c.h5", seed=5, progress=False))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["x"], c["x"])
    with h5py.File(tmp_path / "c.h5") as f:
        assert json.loads(f["truth"].attrs["config"])["seed"] == 5


def test_dust_free(tmp_path):
    cfg = SMALL.replace(dust=False, m_max=20.0, n_observed=1000)
    path = generate_catalog(cfg, tmp_path / "free.h5", progress=False)
    stars = read_catalog(path)
    assert np.all(stars["extinction"] == 0)
    truth = load_truth(path)
    x = stars["x"]
    s = cfg.selection().probability(x)
    np.testing.assert_array_equal(truth.selection(x), s)
    # m_max = 20 without dust: S(8 kpc) = Φ_N((20 − 5 − 14.515)/2) ≈ 0.596.
    s8 = truth.selection(np.array([[0.0, 0.0, 7.999]]))[0]
    assert abs(s8 - 0.5965) < 1e-3


def _write_ok(path, **over):
    stars = {"x": np.zeros((4, 3)), "v": np.ones((4, 3)), "selection": np.ones(4)}
    stars.update(over)
    return write_catalog(path, stars)


def test_read_catalog_validates(tmp_path):
    p = _write_ok(tmp_path / "ok.h5")
    assert read_catalog(p)["selection"].shape == (4,)
    with h5py.File(p, "a") as f:
        f["stars/x"][1, 2] = np.nan
        f["stars/x"][3, 0] = np.inf
    with pytest.raises(ValueError, match=r"/stars/x has 2 non-finite rows of 4"):
        read_catalog(p)
    with h5py.File(p, "a") as f:
        del f["stars/v"]
    with pytest.raises(KeyError, match="/stars/v is missing"):
        read_catalog(p)
    p2 = _write_ok(tmp_path / "ok2.h5")
    with h5py.File(p2, "a") as f:
        del f["stars/selection"]
        f["stars/selection"] = np.ones(3)
    with pytest.raises(ValueError, match=r"/stars/selection has shape \(3,\), expected \(4,\)"):
        read_catalog(p2)


def test_nothing_half_written(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="non-finite"):
        _write_ok(tmp_path / "bad.h5", v=np.full((4, 3), np.nan))
    assert list(tmp_path.iterdir()) == []

    original = h5py.Group.create_dataset

    def failing(self, name, *args, **kwargs):
        if name == "selection":
            raise OSError("disk full (simulated)")
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(OSError, match="simulated"):
        generate_catalog(SMALL.replace(n_observed=100), tmp_path / "c.h5", progress=False)
    assert list(tmp_path.iterdir()) == []  # no catalogue, no temp file


def test_truth_selection_anywhere():
    truth = Truth(SMALL)
    far = np.array([[0.0, 0.0, 30.0], [9.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    s = truth.selection(far)
    assert s[0] == 0 and s[1] == 0 and 0 < s[2] < 1  # zero beyond r_max, even outside the box


def test_write_catalog_extra_attrs_and_datasets(tmp_path) -> None:
    # The ingest of a real survey writes its provenance through the same writer.
    x = np.random.default_rng(0).normal(size=(5, 3))
    path = write_catalog(tmp_path / "c.h5", {"x": x, "v": 10 * x},
                                 attrs={"frame_text": "Galactocentric"},
                                 extra={"ingest/source_id": np.arange(5)})  # fmt: skip
    with h5py.File(path) as f:
        assert f.attrs["schema"] == "dp-catalog/1" and f.attrs["frame_text"] == "Galactocentric"
        assert list(f["ingest/source_id"][()]) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(read_catalog(path)["x"], x)
    with pytest.raises(ValueError, match="schema"):
        write_catalog(tmp_path / "d.h5", {"x": x, "v": x}, attrs={"schema": "mine"})
    with pytest.raises(ValueError, match="under /stars or /truth"):
        write_catalog(tmp_path / "d.h5", {"x": x, "v": x}, extra={"stars/id": np.ones(5)})
    assert not (tmp_path / "d.h5").exists()
