"""Damaged checkpoints restart the fit (files moved aside, a WARNING); another fit's refuses."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import _cbe_oracle as oracle
import dp_cbe
import numpy as np
import pytest
from dp_cbe import _ckpt

# Tiny fits: the point is the checkpoint machinery; they stop at n_steps long before the
# stopping rule can hold, so their ConvergenceWarning is expected.
pytestmark = pytest.mark.filterwarnings("ignore::dp_cbe.ConvergenceWarning")
TINY = dict(phi_width=16, phi_depth=1, n_width=16, n_depth=1, batch_size=128, n_steps=40,
            eval_every=20, checkpoint_every=20, val_batches=2, warmup_steps=5)  # fmt: skip


@pytest.fixture(scope="module")
def gradients() -> dp_cbe.GradientSet:
    return dp_cbe.GradientSet(**oracle.gradients("conditional", 3, 1024))


@pytest.fixture(scope="module")
def finished(gradients: dp_cbe.GradientSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished fit's folder: model and its last checkpoint (step 40)."""
    out = tmp_path_factory.mktemp("fit") / "model"
    dp_cbe.fit(gradients, config=dp_cbe.FitConfig(**TINY), out_dir=out, progress=False)
    return out


def _state(ckpt: Path) -> Path:
    return ckpt / json.loads((ckpt / "state.json").read_text())["file"]


def _truncate(ckpt: Path) -> Path:
    state = _state(ckpt)
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    return state


def _garbage(ckpt: Path) -> Path:
    (ckpt / "state.json").write_bytes(b'{"step": 4\x00\xff garbage')
    return ckpt / "state.json"


def _missing_keys(ckpt: Path) -> Path:
    saved = json.loads((ckpt / "state.json").read_text())
    del saved["history"], saved["rule"]
    (ckpt / "state.json").write_text(json.dumps(saved))
    return ckpt / "state.json"


def _delete_state(ckpt: Path) -> Path:
    state = _state(ckpt)
    state.unlink()
    return state


@pytest.mark.parametrize("damage", [_truncate, _garbage, _missing_keys, _delete_state])
def test_damaged_checkpoint_is_moved_aside_and_the_fit_restarts(
    gradients: dp_cbe.GradientSet,
    finished: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], Path],
) -> None:
    out = tmp_path / "model"
    shutil.copytree(finished, out)
    ckpt = out / "checkpoint"
    named = damage(ckpt)
    left = {p.name: p.read_bytes() for p in ckpt.iterdir()}  # the damaged files, as they are
    with caplog.at_level("WARNING", logger="dp_cbe"):
        sol = dp_cbe.fit(gradients, config=dp_cbe.FitConfig(**TINY), out_dir=out, progress=False)
    [record] = [r for r in caplog.records if r.name == "dp_cbe"]
    assert record.levelname == "WARNING"
    assert str(named) in record.getMessage() and "step 0" in record.getMessage()
    # The damaged files are moved, byte for byte, never deleted.
    [aside] = list(ckpt.glob("damaged-*"))
    assert str(aside) in record.getMessage()
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == left
    # Trained to completion from scratch: every evaluation from the first, a new checkpoint at
    # the last step, and (same seed, data and float ops on CPU) the first run's model.
    assert sol.history["step"] == [20, 40]
    assert json.loads((ckpt / "state.json").read_text())["step"] == 40
    x = np.random.default_rng(1).normal(size=(64, 3)) * 3
    np.testing.assert_array_equal(sol.acceleration(x), dp_cbe.load_model(finished).acceleration(x))


def test_damage_does_not_hide_a_different_fit(
    gradients: dp_cbe.GradientSet, finished: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    shutil.copytree(finished, out)
    ckpt = out / "checkpoint"
    _delete_state(ckpt)  # damaged, but another seed's checkpoint: not ours to move or restart
    with pytest.raises(ValueError, match="different fit"):
        dp_cbe.fit(gradients, config=dp_cbe.FitConfig(**TINY), seed=1, out_dir=out,
                   progress=False)  # fmt: skip
    assert not list(ckpt.glob("damaged-*")) and (ckpt / "state.json").is_file()


@pytest.mark.parametrize("bad", ["ABS", "../victim.eqx", "sub/state.eqx", ".."])
def test_state_file_outside_the_checkpoint_is_never_read_or_moved(
    finished: Path, tmp_path: Path, bad: str
) -> None:
    victim = tmp_path / "victim.eqx"
    victim.write_text("not the program's")
    ckpt = tmp_path / "run" / "checkpoint"
    shutil.copytree(finished / "checkpoint", ckpt)
    saved = json.loads((ckpt / "state.json").read_text())
    (ckpt / "state.json").write_text(
        json.dumps(dict(saved, file=str(victim) if bad == "ABS" else bad))
    )
    with pytest.raises(ValueError, match="not a file in"):
        _ckpt.resume(ckpt, None, saved["fingerprint"])
    assert victim.read_text() == "not the program's" and not list(ckpt.glob("damaged-*"))


def test_no_checkpoint_is_a_fresh_start(tmp_path: Path) -> None:
    assert _ckpt.resume(tmp_path / "checkpoint", None, "any") is None
    assert not (tmp_path / "checkpoint").exists()


def test_a_checkpoint_of_other_data_of_the_same_size_is_refused(
    gradients: dp_cbe.GradientSet, finished: Path, tmp_path: Path
) -> None:
    # Every byte of the data keys the checkpoint: flipping ∇ₓ ln p on the odd rows only (the
    # rows a strided sample would skip) is another fit, never a resume of the old one.
    out = tmp_path / "model"
    shutil.copytree(finished, out)
    dx = gradients.dlnf_dx.copy()
    dx[1::2] *= -1
    other = dp_cbe.GradientSet(gradients.x, gradients.v, dx, gradients.dlnf_dv,
                               gradients.density)  # fmt: skip
    with pytest.raises(ValueError, match="different fit"):
        dp_cbe.fit(other, config=dp_cbe.FitConfig(**TINY), out_dir=out, progress=False)
