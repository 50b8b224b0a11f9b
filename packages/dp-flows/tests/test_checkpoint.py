"""Checkpoints: keyed by the training data's content, confined to their folder; file modes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import h5py
import jax.numpy as jnp
import numpy as np
import pytest
from dp_flows import _checkpoint
from dp_flows._cli import main
from dp_flows._io import atomic_path, write_json

TINY_TOML = """
width = 16
depth = 1
time_embedding_dim = 8
batch_size = 256
n_epochs = 2
ot_epochs = 2
checkpoint_every = 1
warmup_steps = 2
"""


def _catalog(path: Path, seed: int, n: int = 1024) -> Path:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["/stars/x"] = rng.standard_normal((n, 3))
        f["/stars/v"] = 10.0 * rng.standard_normal((n, 3))
    return path


@pytest.mark.parametrize("kind", ["conditional", "spatial"])
def test_other_catalogue_of_the_same_size_is_refused(tmp_path, capsys, kind):
    config = tmp_path / "flow.toml"
    config.write_text(TINY_TOML)
    a, b = _catalog(tmp_path / "A.h5", 1), _catalog(tmp_path / "B.h5", 2)
    out = tmp_path / "F"
    args = ["--flow", kind, "--out", str(out), "--config", str(config), "--quiet"]
    assert main(["fit", str(a), *args]) == 0
    model = (out / "model.eqx").read_bytes()
    capsys.readouterr()
    # Same N, other stars: resuming A's checkpoint would return A's weights with B's
    # standardisation (conditional), or hit A's OT pairings (spatial). It must stop instead.
    assert main(["fit", str(b), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "different training data" in err and "fresh out_dir" in err
    assert (out / "model.eqx").read_bytes() == model  # A's flow is left as it was
    assert main(["fit", str(a), *args]) == 0  # the same data still resumes (nothing left to train)
    assert (out / "model.eqx").read_bytes() == model


def test_data_hash_sees_content_not_size():
    rng = np.random.default_rng(0)
    x, c, w = rng.standard_normal((64, 3)), rng.standard_normal((64, 3)), rng.uniform(size=64)
    base = _checkpoint.data_hash(x, c, w)
    assert base == _checkpoint.data_hash(x.copy(), c.copy(), w.copy())
    y = x.copy()
    y[17, 1] += 1e-12
    others = [(y, c, w), (x, None, w), (x, c, None), (x, c, 2 * w), (x.reshape(32, 6), c, w)]
    assert len({base, *(_checkpoint.data_hash(*o) for o in others)}) == 1 + len(others)


def _small_state():
    a = jnp.arange(3.0)
    return _checkpoint.TrainState(a, a + 1, a + 2, a + 3)


@pytest.mark.parametrize("bad", ["ABS", "../victim.eqx", "sub/state.eqx", ".."])
def test_state_file_outside_the_checkpoint_is_never_read_or_deleted(tmp_path, bad):
    victim = tmp_path / "victim.eqx"
    victim.write_text("not the program's")
    ckpt = tmp_path / "run" / "checkpoint"
    _checkpoint.save(ckpt, _small_state(), 1, 0.5, [], {"seed": 0})
    name = str(victim) if bad == "ABS" else bad
    info = json.loads((ckpt / "state.json").read_text())
    write_json(ckpt / "state.json", {**info, "file": name})
    with pytest.raises(ValueError, match="not a file in"):
        _checkpoint.load(ckpt, _small_state(), {"seed": 0})
    with pytest.raises(ValueError, match="not a file in"):
        _checkpoint.save(ckpt, _small_state(), 2, 0.4, [], {"seed": 0})
    assert victim.read_text() == "not the program's"


def test_checkpoint_replaces_its_own_previous_state(tmp_path):
    ckpt = tmp_path / "checkpoint"
    _checkpoint.save(ckpt, _small_state(), 1, 0.5, [], {"seed": 0})
    _checkpoint.save(ckpt, _small_state(), 2, 0.4, [], {"seed": 0})
    assert sorted(p.name for p in ckpt.iterdir()) == ["state-000002.eqx", "state.json"]
    state, epoch, best, _ = _checkpoint.load(ckpt, _small_state(), {"seed": 0})
    assert epoch == 2 and best == 0.4
    np.testing.assert_array_equal(np.asarray(state.ema), [3.0, 4.0, 5.0])


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        with atomic_path(tmp_path / "a.bin") as tmp:
            tmp.write_bytes(b"x")
        write_json(tmp_path / "b.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("a.bin", "b.json"):
        # the mode open() gives a new file: 0o666 less the umask (mkstemp alone gives 0o600)
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask


def _fit_args(tmp_path: Path) -> tuple[list[str], Path]:
    """A tiny p(x) fit (the checkpoint code is the conditional flow's; p(x) trains faster)."""
    config = tmp_path / "flow.toml"
    config.write_text(TINY_TOML)
    out = tmp_path / "F"
    cat = _catalog(tmp_path / "A.h5", 1)
    return ["fit", str(cat), "--flow", "spatial", "--out", str(out), "--config", str(config),
            "--quiet"], out  # fmt: skip


def _truncate(ckpt: Path) -> Path:
    state = ckpt / json.loads((ckpt / "state.json").read_text())["file"]
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    return state


def _garbage(ckpt: Path) -> Path:
    (ckpt / "state.json").write_bytes(b'{"file": "state-0000\x00\xff garbage')
    return ckpt / "state.json"


def _missing_keys(ckpt: Path) -> Path:
    info = json.loads((ckpt / "state.json").read_text())
    del info["epoch"], info["history"]
    (ckpt / "state.json").write_text(json.dumps(info))
    return ckpt / "state.json"


def _delete_state(ckpt: Path) -> Path:
    state = ckpt / json.loads((ckpt / "state.json").read_text())["file"]
    state.unlink()
    return state


@pytest.mark.parametrize("damage", [_truncate, _garbage, _missing_keys, _delete_state])
def test_damaged_checkpoint_is_moved_aside_and_training_restarts(tmp_path, caplog, damage):
    args, out = _fit_args(tmp_path)
    assert main(args) == 0
    model = (out / "model.eqx").read_bytes()
    ckpt = out / "checkpoint"
    named = damage(ckpt)
    left = {p.name: p.read_bytes() for p in ckpt.iterdir()}  # the damaged files, as they are
    (out / "model.eqx").unlink()
    with caplog.at_level("WARNING", logger="dp_flows"):
        assert main(args) == 0  # no traceback, no error: a fresh start
    [record] = [r for r in caplog.records if r.name == "dp_flows"]
    assert record.levelname == "WARNING"
    assert str(named) in record.getMessage() and "epoch 0" in record.getMessage()
    # The damaged files are moved, byte for byte, never deleted.
    [aside] = list(ckpt.glob("damaged-*"))
    assert str(aside) in record.getMessage()
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == left
    # Trained to completion from scratch: the whole history, a new checkpoint at the last epoch,
    # and (same seed, same data, same float ops on CPU) the very flow of the first run.
    history = json.loads((out / "history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1]
    assert json.loads((ckpt / "state.json").read_text())["epoch"] == 2
    assert (out / "model.eqx").read_bytes() == model


def test_damage_does_not_hide_a_different_run(tmp_path, capsys):
    args, out = _fit_args(tmp_path)
    assert main(args) == 0
    ckpt = out / "checkpoint"
    info = json.loads((ckpt / "state.json").read_text())
    write_json(ckpt / "state.json", {**info, "seed": 7})  # another run's checkpoint …
    _delete_state(ckpt)  # … whose state file is gone: still not ours to move or restart
    capsys.readouterr()
    assert main(args) == 2
    assert "different run" in capsys.readouterr().err
    assert not list(ckpt.glob("damaged-*")) and (ckpt / "state.json").is_file()


def test_load_of_a_damaged_checkpoint_returns_none(tmp_path, caplog):
    ckpt = tmp_path / "checkpoint"
    _checkpoint.save(ckpt, _small_state(), 1, 0.5, [], {"seed": 0})
    (ckpt / "state.json").write_text("[1, 2]")  # JSON, but not a checkpoint's object
    with caplog.at_level("WARNING", logger="dp_flows"):
        assert _checkpoint.load(ckpt, _small_state(), {"seed": 0}) is None
    assert "not an object" in caplog.text and not _checkpoint.exists(ckpt)
    _checkpoint.save(ckpt, _small_state(), 2, 0.4, [], {"seed": 0})  # a fresh checkpoint after
    assert _checkpoint.load(ckpt, _small_state(), {"seed": 0}) is not None
