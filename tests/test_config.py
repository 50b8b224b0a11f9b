"""Config validation: every typo or impossible value fails before any work, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from deep_potential import ConfigError, config_from_dict, load_config
from deep_potential._cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _base() -> dict:
    return {
        "run": {"seed": 3, "methods": ["selection", "conditional"]},
        "mock": {"preset": "demo", "n_observed": 4096},
        "flows": {"spatial": {"width": 16}, "conditional": {"width": 16, "n_epochs": 2}},
        "gradients": {"n": 1024},
        "cbe": {"n_steps": 200, "conditional": {"lam_nobs": 0.0}},
        "report": {"n_eval": 512},
    }


def test_valid_config_builds_package_configs() -> None:
    cfg = config_from_dict(_base())
    assert cfg.methods == ("selection", "conditional")
    assert cfg.flows_needed == ("conditional", "spatial")
    assert cfg.mock.n_observed == 4096
    assert cfg.mock.seed == 3  # the mock's seed follows [run] seed
    assert cfg.flow_conditional.n_epochs == 2
    # shared [cbe] keys reach every method; per-method tables override them
    assert cfg.cbe["selection"].n_steps == cfg.cbe["conditional"].n_steps == 200
    assert set(cfg.cbe) == {"selection", "conditional"}
    # unset: a quarter of the conditional method's positions uniform in the stars' volume
    assert cfg.gradients.uniform_fraction is None and cfg.gradients.uniform_support == "stars"
    assert cfg.gradients.uniform_fraction_for("conditional") == 0.25
    assert cfg.gradients.uniform_fraction_for("selection") == 0.0
    d = _base()
    d["gradients"] = {"n": 1024, "uniform_fraction": 0.0}
    assert config_from_dict(d).gradients.uniform_fraction_for("conditional") == 0.0


@pytest.mark.parametrize(
    ("section", "patch", "needle"),
    [
        (
            "flows",
            {"conditional": {"lerning_rate": 1e-3}},
            "unknown key 'lerning_rate' in [flows.conditional]",
        ),
        ("flows", {"spatial": {"width": -4}}, "[flows.spatial]"),
        ("flows", {"temporal": {}}, "unknown key 'temporal' in [flows]"),
        ("mock", {"n_observd": 10}, "unknown key 'n_observd' in [mock]"),
        ("mock", {"preset": "huge"}, "preset"),
        ("mock", {"r_max": -1.0}, "r_max"),
        ("cbe", {"n_stepz": 10}, "unknown key 'n_stepz' in [cbe]"),
        ("cbe", {"selection": {"alpha": "one"}}, "[cbe.selection]"),
        ("gradients", {"n": 0}, "key 'n' must be an integer ≥ 1, got 0"),
        ("gradients", {"uniform_fraction": 1.5}, "uniform_fraction"),
        ("gradients", {"uniform_support": "cube"}, "uniform_support"),
        ("gradients", {"n": 1.5}, "'n'"),
        (
            "gradients",
            {"velocities_per_position": 3},
            "n = 1024 must be a multiple of velocities_per_position = 3",
        ),
        (
            "cbe",
            {"conditional": {"ln_n_gradient": "profile"}},
            "[cbe.conditional]: ln_n_gradient = 'profile' needs [gradients] velocities_per_position",
        ),
        ("cbe", {"ln_n_gradient": "auto"}, "ln_n_gradient"),
        ("report", {"s_cut": 2.0}, "s_cut"),
        ("report", {"n_evl": 3}, "unknown key 'n_evl' in [report]"),
        ("run", {"methods": ["conditionl"]}, "unknown method 'conditionl'"),
        ("run", {"methods": []}, "methods"),
        ("run", {"seed": -1}, "seed"),
    ],
)
def test_bad_key_or_value_names_it(section: str, patch: dict, needle: str) -> None:
    d = _base()
    d[section] = {**d.get(section, {}), **patch}
    with pytest.raises(ConfigError) as e:
        config_from_dict(d)
    assert needle in str(e.value)


def test_unknown_section_and_exclusive_data(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown section \[flow\]"):
        config_from_dict({**_base(), "flow": {}})
    with pytest.raises(ConfigError, match="no such file"):
        config_from_dict({"data": {"catalog": str(tmp_path / "missing.h5")}})
    (tmp_path / "c.h5").write_bytes(b"")
    with pytest.raises(ConfigError, match="exclusive"):
        config_from_dict({**_base(), "data": {"catalog": str(tmp_path / "c.h5")}})


def test_cli_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[flows.conditional]\nlerning_rate = 1e-3\n")
    out = tmp_path / "run"
    assert main(["run", str(bad), "--out", str(out)]) == 2
    assert "unknown key 'lerning_rate' in [flows.conditional]" in capsys.readouterr().err
    assert not out.exists()  # nothing was created, let alone computed
    bad.write_text("[run\nseed = 1\n")
    assert main(["check", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name",
    [
        "demo.toml",
        "demo-hernquist.toml",
        "demo-om.toml",
        "demo-concentrated.toml",
        "demo-om-cusp.toml",
        "paper.toml",
        "paper-dustfree.toml",
    ],
)
def test_shipped_configs_validate(name: str) -> None:
    if not (CONFIGS / name).is_file():  # tests run from an installed wheel without the checkout
        pytest.skip(f"{CONFIGS / name} not present")
    cfg = load_config(CONFIGS / name)
    # The other-system configs check the conditional method alone; the rest compare all three.
    expected = (
        {"conditional"} if name.startswith("demo-") else {"vanilla", "selection", "conditional"}
    )
    assert set(cfg.methods) == expected


def test_bootstrap_needs_an_ensemble_and_resamples_each_member(monkeypatch, tmp_path) -> None:
    """[flows] conditional_bootstrap: refused without an ensemble; with one, every member
    trains on its own reproducible bootstrap resample (multinomial counts as weights)."""
    import dp_flows
    import numpy as np

    from deep_potential import _stages

    d = _base()
    d["flows"]["conditional_bootstrap"] = True
    with pytest.raises(ConfigError, match="conditional_members >= 2"):
        config_from_dict(d)
    d["flows"]["conditional_members"] = 2
    cfg = config_from_dict(d)
    assert cfg.conditional_bootstrap and cfg.conditional_flows == ("conditional", "conditional_m1")
    # unset: on for an ensemble, off for one flow; an explicit false keeps seeds alone
    del d["flows"]["conditional_bootstrap"]
    assert config_from_dict(d).conditional_bootstrap
    d["flows"]["conditional_bootstrap"] = False
    assert not config_from_dict(d).conditional_bootstrap
    assert not config_from_dict(_base()).conditional_bootstrap
    d["flows"]["conditional_bootstrap"] = True

    counts = _stages.bootstrap_counts(10_000, 5)
    assert counts.sum() == 10_000 and np.array_equal(counts, _stages.bootstrap_counts(10_000, 5))
    assert abs((counts == 0).mean() - np.exp(-1)) < 0.02  # a star is left out w.p. (1 - 1/n)^n
    assert not np.array_equal(counts, _stages.bootstrap_counts(10_000, 6))

    # fit_one_flow hands each member its own counts (the flow fit itself is stubbed out).
    seen: dict[str, np.ndarray] = {}
    monkeypatch.setattr(
        "dp_mock.read_catalog", lambda _: {"x": np.ones((50, 3)), "v": np.ones((50, 3))}
    )
    monkeypatch.setattr(dp_flows, "save_flow", lambda *a, **k: None)

    def fake_fit(data, *, condition=None, weights=None, seed, **kw):
        seen[str(seed)] = weights
        return None

    monkeypatch.setattr(dp_flows, "fit_flow", fake_fit)
    for name in cfg.conditional_flows:
        _stages.fit_one_flow(cfg, name, tmp_path / "c.h5", tmp_path / name)
    w0, w1 = seen.values()
    assert w0.sum() == w1.sum() == 50 and not np.array_equal(w0, w1)
