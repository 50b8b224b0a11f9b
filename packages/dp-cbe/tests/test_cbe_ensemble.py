"""Error bands: `evaluate_ensemble` and `dp-cbe evaluate --member`, the members' spread."""

from __future__ import annotations

from pathlib import Path

import dp_cbe
import h5py
import jax
import numpy as np
import pytest
from dp_cbe._cli import main
from dp_cbe._solution import MODEL_SCHEMA, build_model, model_fields

FIELD = {"width": 8, "depth": 1, "in_mean": [0.0, 0.0, 0.0]}
N = 7  # points


def _model(key: int, method: str = "conditional") -> dp_cbe.PotentialSolution:
    """A tiny untrained model (random weights): any smooth Φ and ln n serve here."""
    hyper = {"schema": MODEL_SCHEMA, "method": method, "phi": FIELD,
             "aux": None if method == "vanilla" else FIELD}  # fmt: skip
    return dp_cbe.PotentialSolution(build_model(hyper, key=jax.random.PRNGKey(key)), hyper)


def _x() -> np.ndarray:
    return np.random.default_rng(0).uniform(-3.0, 3.0, size=(N, 3))  # kpc


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    # float64 arithmetic (mean, square, sqrt) on the same float64 inputs: round-off only.
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


def test_two_members_spread_is_half_their_difference_times_root_two() -> None:
    a, b, x = _model(1), _model(2), _x()
    fa, fb = (model_fields(m, x) for m in (a, b))
    ens = dp_cbe.evaluate_ensemble([a, b], x)
    assert ens.n_members == 2
    assert set(ens.value) == set(ens.std) == {"potential", "acceleration", "density", "ln_n"}
    for name, shape in [("potential", (N,)), ("acceleration", (N, 3)), ("density", (N,)),
                        ("ln_n", (N,))]:  # fmt: skip
        assert ens.value[name].shape == ens.std[name].shape == shape, name
        _close(ens.value[name], (fa[name] + fb[name]) / 2)  # no main model: the members' mean
    # Sample std (ddof = 1) of two values: |a − b|/√2.
    for name in ("acceleration", "density"):
        _close(ens.std[name], np.abs(fa[name] - fb[name]) / np.sqrt(2))
    # Φ and ln n are known up to a constant: each member's mean over the points is removed.
    for name in ("potential", "ln_n"):
        da, db = fa[name] - fa[name].mean(), fb[name] - fb[name].mean()
        _close(ens.std[name], np.abs(da - db) / np.sqrt(2))
        assert ens.std[name].max() < np.abs(fa[name] - fb[name]).max()  # the offsets are gone
    # Identical members: zero spread, exactly.
    same = dp_cbe.evaluate_ensemble([a, a], x)
    assert all(not s.any() for s in same.std.values())


def test_main_model_gives_the_values_and_is_not_a_member() -> None:
    a, b, c, x = _model(1), _model(2), _model(3), _x()
    ens = dp_cbe.evaluate_ensemble([a, b], x, main=c)
    for name, v in model_fields(c, x).items():
        np.testing.assert_array_equal(ens.value[name], v)
    np.testing.assert_array_equal(
        ens.std["density"], dp_cbe.evaluate_ensemble([a, b], x).std["density"]
    )
    assert ens.n_members == 2


def test_one_member_or_mixed_methods_are_refused() -> None:
    x = _x()
    with pytest.raises(ValueError, match="at least 2 members, got 1"):
        dp_cbe.evaluate_ensemble([_model(1)], x)
    with pytest.raises(ValueError, match=r"mixes methods \['conditional', 'selection'\]"):
        dp_cbe.evaluate_ensemble([_model(1), _model(2, "selection")], x)
    with pytest.raises(ValueError, match="mixes methods"):
        dp_cbe.evaluate_ensemble([_model(1), _model(2)], x, main=_model(3, "vanilla"))


def test_evaluate_cli_writes_the_spread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = [_model(k).save(tmp_path / f"m{k}") for k in (1, 2, 3)]
    x = _x()
    points = tmp_path / "points.h5"
    with h5py.File(points, "w") as fh:
        fh["x"] = x
    out = tmp_path / "fields.h5"
    args = ["evaluate", str(dirs[0]), str(points), "--out", str(out)]
    assert main([*args, "--member", str(dirs[1]), "--member", str(dirs[2])]) == 0
    assert "spread of 2 members" in capsys.readouterr().out
    ens = dp_cbe.evaluate_ensemble(dirs[1:], x, main=dirs[0])
    with h5py.File(out) as fh:
        fields = ("potential", "acceleration", "density", "ln_n")
        assert set(fh) == {"x", *fields, *(f"{k}_std" for k in fields)}
        assert fh.attrs["n_members"] == 2
        assert fh["acceleration_std"].shape == (N, 3) and fh["ln_n_std"].shape == (N,)
        for k in fields:  # the same models at the same points: the same bits
            np.testing.assert_array_equal(fh[k][()], ens.value[k])
            np.testing.assert_array_equal(fh[f"{k}_std"][()], ens.std[k])
        np.testing.assert_array_equal(fh["density"][()], dp_cbe.load_model(dirs[0]).density(x))
    # Without members: no spread, n_members = 0.
    assert main(args) == 0
    with h5py.File(out) as fh:
        assert fh.attrs["n_members"] == 0 and not any(k.endswith("_std") for k in fh)
    # One member: a one-line error, nothing written.
    out.unlink()
    capsys.readouterr()
    assert main([*args, "--member", str(dirs[1])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least 2 members" in err and not out.exists()
