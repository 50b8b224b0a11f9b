"""MockConfig is strict like every config of the project (issue 12.3): no coercion, finite
numbers unless declared otherwise, one-line errors naming the field, the dataclass API kept."""

from __future__ import annotations

import dataclasses
import math
import pickle
import typing

import numpy as np
import pytest
from dp_mock import MockConfig
from dp_mock._config import SYSTEMS

SMALL = {"n_observed": 200, "chunk_size": 2**12, "dust_grid": 8}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dust": "false"}, "MockConfig.dust must be true or false, got 'false'"),
        ({"dust": 0}, "MockConfig.dust must be true or false, got 0"),
        ({"n_observed": "16"}, "MockConfig.n_observed must be an integer ≥ 1, got '16'"),
        ({"seed": True}, "MockConfig.seed must be an integer ≥ 0, got True"),
        ({"b": math.inf}, "MockConfig.b must be a finite number > 0, got inf"),
        ({"m_max": math.nan}, "MockConfig.m_max must be a finite number, got nan"),
        ({"dust_grid": 6.0}, "MockConfig.dust_grid must be an even integer ≥ 4, got 6.0"),
        ({"anisotropy_radius": -math.inf}, "MockConfig.anisotropy_radius must be a number > 0"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        MockConfig.from_dict({**SMALL, **changes})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_ints_floats_and_numpy_scalars() -> None:
    cfg = MockConfig(**SMALL, b=4, gm=4_000_000, seed=np.int64(3))
    assert type(cfg.b) is float and type(cfg.gm) is float and type(cfg.seed) is int
    assert math.isinf(MockConfig(**SMALL).anisotropy_radius)  # inf is declared allowed here


def test_systems_declared_once() -> None:
    hint = typing.get_type_hints(MockConfig, include_extras=True)["system"]
    assert sorted(typing.get_args(hint)) == sorted(SYSTEMS)


def test_dataclass_api_still_works() -> None:
    cfg = MockConfig(**SMALL)
    assert dataclasses.fields(MockConfig)[0].default == 2**22  # plain defaults
    assert dataclasses.replace(cfg, seed=5) == cfg.replace(seed=5)
    assert hash(cfg) == hash(MockConfig(**SMALL)) and pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(ValueError, match=r"MockConfig\.seed"):
        dataclasses.replace(cfg, seed=-1)
