"""FlowConfig is strict: no coercion, finite numbers, declared ranges, one-line errors naming
the field, one name per knob (issue 12.3), and the dataclass API the pipeline relies on."""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest
from dp_flows import FlowConfig


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # each of these passed the old checks and crashed later, after the mock had run
        ({"width": "16"}, "FlowConfig.width must be an integer ≥ 1, got '16'"),
        ({"width": 16.5}, "FlowConfig.width must be an integer ≥ 1, got 16.5"),
        ({"width": 2.5}, "FlowConfig.width must be an integer ≥ 1, got 2.5"),
        ({"n_epochs": 2.5}, "FlowConfig.n_epochs must be an integer ≥ 1 (or None), got 2.5"),
        (
            {"weight_decay": math.inf},
            "FlowConfig.weight_decay must be a finite number ≥ 0, got inf",
        ),
        # ...or silently changed what is trained: bool("no") is True (OT on for p(v|x)), and
        # grad_clip = nan made `grad_clip > 0` false (no clipping)
        ({"ot": "no"}, "FlowConfig.ot must be true or false (or None), got 'no'"),
        ({"grad_clip": math.nan}, "FlowConfig.grad_clip must be a finite number ≥ 0, got nan"),
        # bool is not an int, int is not a bool
        ({"depth": True}, "FlowConfig.depth must be an integer ≥ 1, got True"),
        ({"cond_log_r": 1}, "FlowConfig.cond_log_r must be true or false"),
        ({"cond_log_r": "false"}, "FlowConfig.cond_log_r must be true or false"),
        ({"learning_rate": "1e-3"}, "FlowConfig.learning_rate must be a finite number > 0"),
        ({"time_embedding_dim": 7}, "FlowConfig.time_embedding_dim must be an even integer ≥ 2"),
        ({"ema_decay": 1.0}, "FlowConfig.ema_decay must be a finite number in [0, 1), got 1.0"),
        ({"fixed_solver": "rk45"}, "FlowConfig.fixed_solver must be one of ['rk4', 'midpoint'"),
        ({"time_power": 0}, "FlowConfig.time_power must be a finite number in [0.25, 16], got 0"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_field(changes: dict, message: str) -> None:
    for build in (lambda: FlowConfig(**changes), lambda: FlowConfig.from_dict(changes),
                  lambda: FlowConfig().replace(**changes)):  # fmt: skip
        with pytest.raises(ValueError) as err:
            build()
        assert str(err.value).startswith(message)
        assert "\n" not in str(err.value)


def test_ints_are_numbers_and_numpy_scalars_count() -> None:
    cfg = FlowConfig(learning_rate=1, weight_decay=0, width=np.int64(32), rtol=np.float32(0.5))
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    assert isinstance(cfg.weight_decay, float) and isinstance(cfg.width, int)
    assert type(cfg.width) is int and type(cfg.rtol) is float and cfg.rtol == 0.5
    assert FlowConfig(ot=False).ot is False and FlowConfig(ot=None).ot is None


def test_one_name_per_knob_and_the_old_name_says_the_new_one() -> None:
    assert FlowConfig(final_lr_fraction=0.1).final_lr_fraction == 0.1  # as in dp_cbe.FitConfig
    assert "lr_final_fraction" not in FlowConfig().to_dict()
    with pytest.raises(ValueError, match=r"'lr_final_fraction' is now 'final_lr_fraction'"):
        FlowConfig.from_dict({"lr_final_fraction": 0.1})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['widht'\]; valid keys: .*'width'"):
        FlowConfig(widht=3)  # type: ignore[call-arg]


def test_dataclass_api_still_works() -> None:
    cfg = FlowConfig(width=32)
    assert dataclasses.is_dataclass(cfg)
    assert [f.name for f in dataclasses.fields(FlowConfig)][:2] == ["width", "depth"]
    assert dataclasses.fields(FlowConfig)[0].default == 128  # plain defaults, not FieldInfo
    assert dataclasses.replace(cfg, depth=2) == FlowConfig(width=32, depth=2)
    assert dataclasses.asdict(cfg) == cfg.to_dict()
    assert FlowConfig.from_dict(cfg.to_dict()) == cfg
    assert hash(cfg) == hash(FlowConfig(width=32)) and cfg != FlowConfig()
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.width = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"FlowConfig\.depth"):
        dataclasses.replace(cfg, depth=0)
