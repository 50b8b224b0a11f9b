"""FitConfig: strict from_dict, impossible values, TOML, to_dict round trip."""

from __future__ import annotations

from pathlib import Path

import dp_cbe
import pytest


def test_from_dict_round_trip_and_unknown_key() -> None:
    cfg = dp_cbe.FitConfig(n_steps=10, eval_every=5, checkpoint_every=10)
    assert dp_cbe.FitConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"FitConfig: unknown key.*bogus"):
        dp_cbe.FitConfig.from_dict({"bogus": 1})


@pytest.mark.parametrize(
    "bad",
    [{"batch_size": 0}, {"alpha": -1.0}, {"val_fraction": 1.0}, {"l_max": -1},
     {"phi_width": 2.5}, {"checkpoint_every": 300, "eval_every": 200}],
)  # fmt: skip
def test_impossible_values(bad: dict) -> None:
    with pytest.raises(ValueError, match="FitConfig"):
        dp_cbe.FitConfig.from_dict(bad)


def test_toml(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[fit]\nn_steps = 40\nlog_loss = true\nlearning_rate = 1e-3\n")
    cfg = dp_cbe.FitConfig.from_toml(p)
    assert cfg.n_steps == 40 and cfg.log_loss and cfg.learning_rate == 1e-3
    p.write_text("n_stepz = 4\n")
    with pytest.raises(ValueError, match="n_stepz"):
        dp_cbe.FitConfig.from_toml(p)
