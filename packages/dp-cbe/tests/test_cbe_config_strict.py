"""FitConfig is strict: no coercion, finite numbers, declared ranges, one-line errors naming
the field (issue 12.3), and the dataclass API the pipeline relies on."""

from __future__ import annotations

import dataclasses
import math
import pickle
import typing

import dp_cbe
import numpy as np
import pytest
from dp_cbe._frame import FRAMES

FitConfig = dp_cbe.FitConfig


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # bool("false") is True: the log loss was silently switched ON
        ({"log_loss": "false"}, "FitConfig.log_loss must be true or false, got 'false'"),
        ({"early_stop": 0}, "FitConfig.early_stop must be true or false, got 0"),
        # infinities and NaN used to pass `> 0` / `>= 0` checks and crash (or disable) later
        ({"alpha": math.inf}, "FitConfig.alpha must be a finite number > 0, got inf"),
        ({"weight_decay": math.inf}, "FitConfig.weight_decay must be a finite number ≥ 0, got inf"),
        ({"grad_clip": math.nan}, "FitConfig.grad_clip must be a finite number ≥ 0, got nan"),
        ({"learning_rate": math.nan}, "FitConfig.learning_rate must be a finite number > 0"),
        # the same rule as dp_flows.FlowConfig.width: no fractional or string integers
        ({"phi_width": 2.5}, "FitConfig.phi_width must be an integer ≥ 1, got 2.5"),
        ({"n_steps": "100"}, "FitConfig.n_steps must be an integer ≥ 1 (or None), got '100'"),
        ({"batch_size": True}, "FitConfig.batch_size must be an integer ≥ 1, got True"),
        ({"n_devices": 0}, "FitConfig.n_devices must be an integer ≥ 1 (or None), got 0"),
        ({"alpha": True}, "FitConfig.alpha must be a finite number > 0, got True"),
        ({"lr_decay": 0.0}, "FitConfig.lr_decay must be a finite number in (0, 1], got 0.0"),
        ({"frame": "rotating"}, "FitConfig.frame must be one of ['none', 'boost'"),
        ({"residual_loss": "L2"}, "FitConfig.residual_loss must be one of ['asinh', 'l2']"),
        ({"checkpoint_every": 300, "eval_every": 200}, "FitConfig.checkpoint_every must be a "),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_field(changes: dict, message: str) -> None:
    for build in (lambda: FitConfig(**changes), lambda: FitConfig.from_dict(changes)):
        with pytest.raises(ValueError) as err:
            build()
        assert str(err.value).startswith(message)
        assert "\n" not in str(err.value)


def test_ints_are_numbers_and_numpy_scalars_count() -> None:
    cfg = FitConfig(alpha=2, lam=0, n_steps=np.int32(200), eval_every=np.int64(100))
    assert cfg.alpha == 2.0 and type(cfg.alpha) is float and type(cfg.lam) is float
    assert type(cfg.n_steps) is int and type(cfg.eval_every) is int
    assert cfg.resolved(exact=False, group_size=1).loss_settings().alpha == 2.0
    with pytest.raises(ValueError, match="resolve the config first"):
        cfg.loss_settings()  # residual_loss is automatic until resolved


def test_frames_declared_once() -> None:
    """The field's allowed values are exactly the frames `dp_cbe._frame` implements."""
    hint = typing.get_type_hints(FitConfig, include_extras=True)["frame"]
    assert typing.get_args(hint) == FRAMES


def test_dataclass_api_still_works() -> None:
    cfg = FitConfig(n_steps=10, eval_every=5, checkpoint_every=10)
    assert dataclasses.fields(FitConfig)[0].name == "phi_width"
    assert dataclasses.fields(FitConfig)[0].default == 64  # plain defaults, not FieldInfo
    assert dataclasses.replace(cfg, alpha=2.0).alpha == 2.0
    assert dataclasses.asdict(cfg) == cfg.to_dict() and "final_lr_fraction" in cfg.to_dict()
    assert hash(cfg) == hash(FitConfig(n_steps=10, eval_every=5, checkpoint_every=10))
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.alpha = 3.0  # type: ignore[misc]
