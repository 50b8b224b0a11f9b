"""Stage bookkeeping: a JSON manifest per stage unit, keyed by a hash of its config and inputs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("deep_potential")

MANIFEST = "manifest.json"
PENDING = ".pending.json"


def stable_hash(obj: Any) -> str:
    """SHA-256 (hex, first 16 chars) of the canonical JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_hash(path: Path) -> str:
    """SHA-256 (hex, first 16 chars) of a file's bytes, read in 8 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(8 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, then ``os.replace`` it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; manifests are meant to be read by anyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


@dataclass(frozen=True)
class UnitResult:
    """What one stage unit produced (or had produced before, when skipped)."""

    name: str
    key: str
    directory: Path
    outputs: Mapping[str, str]  # logical name -> path relative to ``directory`` (or absolute)
    skipped: bool
    wall_s: float  # seconds of the computation (the original run's, when skipped)

    def path(self, name: str) -> Path:
        return self.directory / self.outputs[name]


def run_unit(
    name: str,
    directory: Path,
    section: Any,
    inputs: Mapping[str, str],
    work: Callable[[Path], Mapping[str, str]],
    *,
    force: bool = False,
) -> UnitResult:
    """Run ``work(directory)`` unless an up-to-date manifest says it is done.

    The unit's key hashes ``section`` (its config, JSON-able) and ``inputs`` (name -> upstream
    key). Done = ``manifest.json`` exists, its key matches and every listed output exists. A
    half-finished unit with the same key (``.pending.json``) keeps its folder, so the packages'
    checkpoints in it resume; a different key, or ``force``, clears the folder first.

    Returns:
        The unit's result; ``outputs`` maps names to paths relative to ``directory``.
    """
    key = stable_hash({"unit": name, "section": section, "inputs": dict(inputs)})
    manifest = read_json(directory / MANIFEST)
    if not force and manifest is not None and manifest.get("key") == key:
        outs = manifest.get("outputs", {})
        if all((directory / p).exists() for p in outs.values()):
            logger.info("[%s] up to date (key %s), skipped", name, key)
            return UnitResult(name, key, directory, outs, True, float(manifest.get("wall_s", 0)))
    pending = read_json(directory / PENDING)
    if directory.exists() and (force or manifest is not None or (pending or {}).get("key") != key):
        why = "forced" if force else "config or inputs changed"
        if any(directory.iterdir()):
            logger.info("[%s] clearing %s (%s)", name, directory, why)
        shutil.rmtree(directory)
    elif pending is not None:
        logger.info("[%s] resuming an interrupted run (key %s)", name, key)
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / PENDING, {"key": key, "started": time.time()})
    logger.info("[%s] running (key %s)", name, key)
    t0 = time.perf_counter()
    outputs = dict(work(directory))
    wall = time.perf_counter() - t0
    write_json_atomic(
        directory / MANIFEST,
        {
            "stage": name,
            "key": key,
            "config": section,
            "inputs": dict(inputs),
            "outputs": outputs,
            "wall_s": round(wall, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    (directory / PENDING).unlink(missing_ok=True)
    logger.info("[%s] done in %.1f s", name, wall)
    return UnitResult(name, key, directory, outputs, False, wall)
