"""Resumable training checkpoints: ``checkpoint/state-<epoch>.eqx`` + ``checkpoint/state.json``.

The JSON is written last and names the state file, so a crash between the two writes leaves
the previous checkpoint intact. A checkpoint only resumes a run with the same config, seed
and data shape (anything else would not be "the same run").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax

from ._io import atomic_path, write_json


class TrainState(NamedTuple):
    field: Any
    opt_state: Any
    best: Any
    ema: Any  # EMA of the weights (the field itself when ema_decay = 0)


def exists(ckpt_dir: Path) -> bool:
    return (ckpt_dir / "state.json").is_file()


def save(
    ckpt_dir: Path, state: TrainState, epoch: int, best_val: float, history: list, meta: dict
) -> None:
    """Write the state after ``epoch`` completed epochs (atomically)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    name = f"state-{epoch:06d}.eqx"
    with atomic_path(ckpt_dir / name) as tmp:
        eqx.tree_serialise_leaves(tmp, jax.device_get(state))
    old = (
        json.loads((ckpt_dir / "state.json").read_text()).get("file") if exists(ckpt_dir) else None
    )
    write_json(
        ckpt_dir / "state.json",
        {"file": name, "epoch": epoch, "best_val": best_val, "history": history, **meta},
    )
    if old and old != name:
        (ckpt_dir / old).unlink(missing_ok=True)


def load(ckpt_dir: Path, like: TrainState, meta: dict) -> tuple[TrainState, int, float, list]:
    """Load a checkpoint into the skeleton ``like``; checks it belongs to the same run."""
    info = json.loads((ckpt_dir / "state.json").read_text())
    for key, value in meta.items():
        if info.get(key) != value:
            raise ValueError(
                f"checkpoint in {ckpt_dir} was written by a different run ({key}: "
                f"{info.get(key)!r} != {value!r}); use another out_dir or delete the checkpoint"
            )
    state = eqx.tree_deserialise_leaves(ckpt_dir / info["file"], like)
    return state, int(info["epoch"]), float(info["best_val"]), list(info["history"])
