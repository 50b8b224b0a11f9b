"""MockConfig's system keys, presets, catalogues and Truth for every system, and old catalogues."""

import json
import math

import h5py
import numpy as np
import pytest
from dp_mock import (
    HernquistSphere,
    MockConfig,
    PlummerSphere,
    Truth,
    generate_catalog,
    load_truth,
    preset,
    read_catalog,
)
from dp_mock._cli import main

SMALL = MockConfig(n_observed=2000, chunk_size=2**13, dust_grid=32, seed=4)
VARIANTS = {
    "plummer": {},
    "hernquist": {"system": "hernquist", "b": 2.0, "gm": 2.0e6},
    "plummer-om": {"b": 4.0, "gm": 4.0e6, "anisotropy_radius": 3.5},
    "hernquist-om": {"system": "hernquist", "b": 2.0, "gm": 2.0e6, "anisotropy_radius": 1.0},
}


def test_system_keys_validated():
    for value in ("nfw", 3, None):
        with pytest.raises(ValueError, match=r"MockConfig.system must be one of \['hernquist'"):
            MockConfig.from_dict({"system": value})
    for value in (0.0, -2.0, float("nan")):
        with pytest.raises(ValueError, match=r"MockConfig\.anisotropy_radius must be a number > 0"):
            MockConfig.from_dict({"anisotropy_radius": value})
    with pytest.raises(ValueError, match=r"MockConfig\.anisotropy_radius must be a number > 0"):
        MockConfig.from_dict({"anisotropy_radius": "inf"})
    # Below the positivity limit of the DF: the error names the key and the limit.
    with pytest.raises(ValueError, match=r"MockConfig.anisotropy_radius: .* >= 0.75 b = 3 kpc"):
        MockConfig.from_dict({"b": 4.0, "anisotropy_radius": 2.0})
    with pytest.raises(ValueError, match=r"MockConfig.anisotropy_radius: .* >= 0.2024 a"):
        MockConfig.from_dict({"system": "hernquist", "b": 2.0, "anisotropy_radius": 0.3})
    cfg = MockConfig.from_dict({"system": "hernquist", "anisotropy_radius": 5})  # int accepted
    assert cfg.anisotropy_radius == 5.0 and isinstance(cfg.anisotropy_radius, float)


def test_to_dict_round_trip_and_old_dicts(tmp_path):
    """Default system keys are left out of to_dict (old stored configs are unchanged); any
    dict without them (an old catalogue's) builds the isotropic Plummer sphere."""
    default = MockConfig()
    assert "system" not in default.to_dict() and "anisotropy_radius" not in default.to_dict()
    old = {k: v for k, v in default.to_dict().items()}
    assert MockConfig.from_dict(old) == default
    for overrides in VARIANTS.values():
        cfg = SMALL.replace(**overrides)
        assert MockConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
        assert "Infinity" not in json.dumps(cfg.to_dict())
    toml = tmp_path / "om.toml"
    toml.write_text('system = "hernquist"\nb = 2.0\nanisotropy_radius = inf\n')
    cfg = MockConfig.from_toml(toml)
    assert cfg.system == "hernquist" and math.isinf(cfg.anisotropy_radius)


def test_presets():
    hq, om = preset("demo-hernquist"), preset("demo-om")
    demo = preset("demo")
    for cfg in (hq, om):
        # Same size, dust and magnitude limit as the demo.
        assert (cfg.n_observed, cfg.chunk_size, cfg.dust, cfg.dust_grid, cfg.m_max) == (
            demo.n_observed,
            demo.chunk_size,
            demo.dust,
            demo.dust_grid,
            demo.m_max,
        )
    assert (hq.system, hq.b, hq.gm, hq.anisotropy_radius) == ("hernquist", 2.0, 2.0e6, math.inf)
    assert (om.system, om.b, om.gm, om.anisotropy_radius) == ("plummer", 4.0, 4.0e6, 3.5)
    # demo-hernquist: ρ falls by 10³ between 0.5 kpc and r_max; demo-om: β(r_max) > 0.8.
    h = hq.spherical_system()
    ratio = h.density(np.array([[0.5, 0, 0]]))[0] / h.density(np.array([[hq.r_max, 0, 0]]))[0]
    assert 500 < ratio < 2000
    assert om.spherical_system().anisotropy(np.array([om.r_max]))[0] > 0.8
    with pytest.raises(ValueError, match="'demo-hernquist', 'demo-om'"):
        preset("demo-nfw")


@pytest.mark.parametrize("name", ["demo", "demo-hernquist", "demo-om"])
def test_preset_observed_fraction(name):
    """The demos observe a sizeable fraction of the drawn stars (docstring: 14–50 %)."""
    assert Truth(preset(name)).observed_fraction() > 0.1


@pytest.fixture(scope="module", params=list(VARIANTS))
def catalog(request, tmp_path_factory):
    cfg = SMALL.replace(**VARIANTS[request.param])
    path = generate_catalog(cfg, tmp_path_factory.mktemp("cat") / "c.h5", progress=False)
    return cfg, path


def test_catalog_and_truth_every_system(catalog):
    cfg, path = catalog
    stars = read_catalog(path)
    truth = load_truth(path)
    expected = HernquistSphere if cfg.system == "hernquist" else PlummerSphere
    assert type(truth.system) is expected and truth.config == cfg
    assert truth.system.anisotropy_radius == cfg.anisotropy_radius
    x, v = stars["x"], stars["v"]
    assert np.linalg.norm(x, axis=1).max() < cfg.r_max
    assert np.all(np.sum(v**2, axis=1) < -2 * truth.potential(x))
    np.testing.assert_array_equal(truth.selection(x), stars["selection"])
    # Rebuilt truth (from the file) equals the truth built from the configuration.
    fresh = Truth(cfg)
    for name in ("potential", "density", "number_density", "log_p_v_given_x", "grad_log_f"):
        args = (x,) if name in ("potential", "density", "number_density") else (x, v)
        for a, b in zip(
            np.atleast_1d(getattr(truth, name)(*args)),
            np.atleast_1d(getattr(fresh, name)(*args)),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
    with h5py.File(path) as f:
        n_drawn = int(f["truth"].attrs["n_drawn"])
    # Observed fraction vs ∫ n S: binomial error √(p(1−p)/N_drawn) (N_drawn ≥ 4000 here) plus
    # the 2¹⁸-point MC error of observed_fraction; 10 % relative is > 4σ.
    assert abs(len(x) / n_drawn / truth.observed_fraction() - 1) < 0.1


def test_truth_plummer_alias():
    truth = Truth(SMALL)
    assert truth.plummer is truth.system and isinstance(truth.system, PlummerSphere)
    hq = Truth(SMALL.replace(**VARIANTS["hernquist"]))
    with pytest.raises(AttributeError, match=r"use Truth\.system"):
        _ = hq.plummer


def test_truth_enclosed_mass_and_circular_velocity_closed_forms():
    """Truth's M(<r) and v_c are the textbook closed forms: Plummer M r³/(r² + b²)^(3/2),
    Hernquist M r²/(r + a)², and v_c² = G M(<r)/r (float64 round-off apart)."""
    r = np.array([0.1, 1.0, 4.0, 8.0, 20.0])
    for variant, closed in (
        ("plummer", lambda m, b: m * r**3 / (r**2 + b**2) ** 1.5),
        ("hernquist", lambda m, a: m * r**2 / (r + a) ** 2),
    ):
        cfg = SMALL.replace(**VARIANTS[variant], dust=False)
        truth = Truth(cfg)
        mass = cfg.gm / truth.system.G
        np.testing.assert_allclose(truth.enclosed_mass(r), closed(mass, cfg.b), rtol=1e-13)
        np.testing.assert_allclose(
            truth.circular_velocity(r), np.sqrt(cfg.gm * closed(1.0, cfg.b) / r), rtol=1e-13
        )


def test_default_truth_is_the_old_plummer_closed_form():
    """A configuration without the new keys gives the isotropic Plummer truth in its original
    closed forms, bit for bit (the expressions below are the pre-family implementation)."""
    truth = Truth(MockConfig.from_dict({k: v for k, v in SMALL.to_dict().items()}))
    b, gm = SMALL.b, SMALL.gm
    rng = np.random.default_rng(1)
    x = rng.uniform(-7, 7, (2000, 3))
    r2 = np.einsum("ij,ij->i", x, x)
    psi = gm / np.sqrt(r2 + b**2)
    v = rng.normal(size=(2000, 3))
    v *= (0.9 * np.sqrt(2 * psi) * rng.uniform(size=2000) / np.linalg.norm(v, axis=1))[:, None]
    neg_e = psi - 0.5 * np.einsum("ij,ij->i", v, v)
    acc = -gm * x / ((r2 + b**2) ** 1.5)[:, None]
    log_norm = math.log(4.0 * math.pi * 2.0**1.5 * 7.0 * math.pi / 512.0) + 5.0 * np.log(psi)
    np.testing.assert_array_equal(truth.potential(x), -gm / np.sqrt(r2 + b**2))
    np.testing.assert_array_equal(truth.acceleration(x), acc)
    np.testing.assert_array_equal(truth.log_p_v_given_x(x, v), 3.5 * np.log(neg_e) - log_norm)
    d_dx, d_dv = truth.grad_log_f(x, v)
    np.testing.assert_array_equal(d_dx, 3.5 * acc / neg_e[:, None])
    np.testing.assert_array_equal(d_dv, -3.5 * v / neg_e[:, None])
    p_dx, _ = truth.grad_log_p_v_given_x(x, v)
    np.testing.assert_array_equal(p_dx, d_dx - 5.0 * acc / psi[:, None])


def test_truth_sample_velocities_and_moments():
    """Exact draws at positions uniform in the volume: reproducible, bound, and with the
    velocity_moments of their radius (per-star ratios, 5 standard errors)."""
    truth = Truth(SMALL.replace(**VARIANTS["plummer-om"], dust=False))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (60_000, 3)) * truth.r_max
    x = x[np.linalg.norm(x, axis=1) < truth.r_max]
    v = truth.sample_velocities(7, x)
    assert v.shape == x.shape
    np.testing.assert_array_equal(v, truth.sample_velocities(7, x))
    np.testing.assert_array_equal(v[:100], truth.sample_velocities(7, x[:100]))  # row-wise
    assert not np.array_equal(v, truth.sample_velocities(8, x))
    assert np.all(np.sum(v**2, axis=1) < -2 * truth.potential(x))
    r = np.linalg.norm(x, axis=1)
    v_r = np.sum(v * x, axis=1) / r
    sigma_r2, sigma_t2, _ = truth.velocity_moments(r)
    for z in (v_r**2 / sigma_r2, (np.sum(v**2, axis=1) - v_r**2) / (2 * sigma_t2)):
        assert abs(z.mean() - 1) < 5 * z.std() / math.sqrt(len(z))
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        truth.sample_velocities(-1, x)
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        truth.sample_velocities(0, x[:, :2])


def test_cli_new_presets(tmp_path):
    toml = tmp_path / "small.toml"
    toml.write_text("dust_grid = 32\nchunk_size = 8192\n")
    for name in ("demo-hernquist", "demo-om"):
        out = tmp_path / f"{name}.h5"
        argv = ["generate", "--preset", name, "--config", str(toml), "--n-observed", "300"]
        assert main([*argv, "--out", str(out), "--quiet"]) == 0
        assert load_truth(out).config.replace(
            n_observed=2**17, dust_grid=128, chunk_size=2**19
        ) == (preset(name))
