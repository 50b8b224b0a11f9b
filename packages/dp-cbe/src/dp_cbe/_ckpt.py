"""Resuming from ``out_dir/checkpoint`` (``state-<step>.eqx`` + ``state.json``), damage-proof.

A checkpoint resumes only the fit that wrote it (the same fingerprint of method, config, seed
and data); another fit's checkpoint is refused with a ValueError that says to use a fresh
out_dir. A damaged checkpoint (a ``state.json`` that is not JSON or lacks keys, a state file
that is missing, truncated or corrupted) is no error: its ``state.json`` and ``state-*.eqx``
files are moved to ``checkpoint/damaged-<timestamp>/`` (never deleted), a WARNING names the
file and says the fit restarts from step 0, and `resume` returns None (a fresh start).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import equinox as eqx

logger = logging.getLogger("dp_cbe")

_HISTORY = ("step", "train_loss", "val_loss", "learning_rate", "probe_change")
_RULE = ("lr_factor", "ref_val", "since_improve", "stable", "prev_probe")


class _Damaged(Exception):
    """The checkpoint cannot be read: the message names the file and what is wrong with it."""


def _read_state(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_bytes())
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError (an OSError is no damage)
        raise _Damaged(f"{path} is not readable JSON ({err})") from None
    if not isinstance(saved, dict):
        raise _Damaged(f"{path} holds a JSON {type(saved).__name__}, not an object")
    return saved


def _check_state(path: Path, saved: dict[str, Any]) -> None:
    """_Damaged unless ``saved`` holds what the training loop reads back."""
    keys = ("file", "step", "best_val", "best_step", "converged", "stop_reason", "rule", "history")
    missing = [k for k in keys if k not in saved]
    if missing:
        raise _Damaged(f"{path} lacks the keys {missing}")
    step = saved["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise _Damaged(f"{path}: step {step!r} is not a count of steps")
    if not isinstance(saved["best_val"], int | float) or isinstance(saved["best_val"], bool):
        raise _Damaged(f"{path}: best_val {saved['best_val']!r} is not a number")
    history, rule = saved["history"], saved["rule"]
    if not isinstance(history, dict) or not all(isinstance(history.get(k), list) for k in _HISTORY):
        raise _Damaged(f"{path}: history lacks one of the lists {list(_HISTORY)}")
    if rule is not None and not (isinstance(rule, dict) and all(k in rule for k in _RULE)):
        raise _Damaged(f"{path}: the stopping rule's state lacks one of {list(_RULE)}")


def _state_file(ckpt: Path, name: Any) -> Path:
    """``ckpt / name`` for a plain file name; any other name is refused, never read or moved."""
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
        raise ValueError(
            f"{ckpt / 'state.json'} names the state file {name!r}, which is not a file in "
            f"{ckpt}; move {ckpt} aside or use a fresh out_dir"
        )
    return ckpt / name


def _move_aside(ckpt_dir: Path) -> Path:
    """Move ``state.json`` and ``state-*.eqx`` into a new ``damaged-<timestamp>/`` folder."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for k in range(1000):
        dest = ckpt_dir / (f"damaged-{stamp}" if k == 0 else f"damaged-{stamp}-{k}")
        try:
            dest.mkdir()
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - a thousand damaged checkpoints in one second
        raise FileExistsError(f"no free damaged-{stamp}-* folder name in {ckpt_dir}")
    for f in [ckpt_dir / "state.json", *sorted(ckpt_dir.glob("state-*.eqx"))]:
        if f.is_file():
            f.replace(dest / f.name)  # a rename inside the folder: nothing is copied or deleted
    return dest


def resume(ckpt: Path, like: Any, fingerprint: str) -> tuple[Any, dict[str, Any]] | None:
    """The checkpoint in ``ckpt`` loaded into the skeleton ``like``, with its saved state.

    Args:
        ckpt: the checkpoint folder (``out_dir/checkpoint``).
        like: a pytree of the saved trees' structure, shapes and dtypes.
        fingerprint: the fit's fingerprint; the checkpoint must have been written under it.

    Returns:
        ``(trees, state)`` with ``state`` the saved JSON (step, best_val, history, …), or None
        when there is no checkpoint or it is damaged (then moved to ``damaged-<timestamp>/``).

    Raises:
        ValueError: the checkpoint belongs to a different fit, or its ``state.json`` names a
            file outside ``ckpt``.
    """
    path = ckpt / "state.json"
    if not path.is_file():
        return None
    try:
        saved = _read_state(path)
        _check_state(path, saved)
        if saved.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{ckpt} holds a checkpoint of a different fit (config, seed or data differ); "
                "use a fresh out_dir or delete that folder"
            )
        state_file = _state_file(ckpt, saved["file"])
        if not state_file.is_file():
            raise _Damaged(f"{state_file}, named by {path}, is missing")
        try:
            trees = eqx.tree_deserialise_leaves(state_file, like)
        except (ValueError, RuntimeError, EOFError) as err:  # equinox's TreePathError: Runtime
            raise _Damaged(f"{state_file} is truncated or corrupted ({err})") from None
    except _Damaged as err:
        dest = _move_aside(ckpt)
        logger.warning(
            "damaged checkpoint: %s; moved its files to %s and restarting the fit from step 0 "
            "(delete that folder once you no longer need it)",
            err,
            dest,
        )
        return None
    return trees, saved
