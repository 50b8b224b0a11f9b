"""Stage bookkeeping: a JSON manifest per stage unit, keyed by its config and its inputs' content."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._runfolder import (
    MARKER,
    chmod_like_new_file,
    claim_unit,
    clean_temps,
    clear_unit,
    files_under,
)

logger = logging.getLogger("deep_potential")

MANIFEST = "manifest.json"
PENDING = ".pending.json"


def stable_hash(obj: Any) -> str:
    """SHA-256 (hex, first 16 chars) of the canonical JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _update_file(h: Any, path: Path) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(8 << 20), b""):
            h.update(chunk)


def file_hash(path: Path) -> str:
    """SHA-256 (hex, first 16 chars) of a file's bytes, read in 8 MiB chunks.

    SHA-256 rather than BLAKE2b: with the SHA extensions of current x86 CPUs it is the faster
    of the two (docs/formats.md, "Guarantees", gives the measured cost).
    """
    h = hashlib.sha256()
    _update_file(h, path)
    return h.hexdigest()[:16]


def _output_files(directory: Path, outputs: Mapping[str, str]) -> list[tuple[str, Path]]:
    """(label, path) of every file of every output, in a fixed order; folders are walked."""
    out = []
    for name in sorted(outputs):
        p = directory / outputs[name]
        if p.is_dir():
            out += [(f"{name}/{rel}", p / rel) for rel in files_under(p)]
        else:
            out.append((name, p))
    return out


def _signature(files: list[tuple[str, Path]]) -> dict[str, list[int]]:
    sig = {}
    for label, p in files:
        st = p.stat()
        sig[label] = [st.st_size, st.st_mtime_ns]
    return sig


def content_hash(directory: Path, outputs: Mapping[str, str]) -> str:
    """SHA-256 (hex, first 16 chars) of the outputs' bytes, names and layout."""
    h = hashlib.sha256()
    for label, p in _output_files(directory, outputs):
        h.update(f"{label}\0{p.stat().st_size}\0".encode())
        _update_file(h, p)
    return h.hexdigest()[:16]


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temp file in path's folder, then ``os.replace`` it onto path.

    Every file the umbrella writes (manifests, metrics, the report, its figures) goes through
    here: a reader never sees half a file, and a killed write leaves only a temp file named
    ``.NAME.XXXXXXXX.tmp``, which the next run in that folder removes. The file gets the mode
    a plain ``open()`` would give it (``0o666 & ~umask``), not ``mkstemp``'s 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        chmod_like_new_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` (`atomic_write`)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


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
    content: str = ""  # hash of the outputs' bytes (`content_hash`)

    def path(self, name: str) -> Path:
        return self.directory / self.outputs[name]

    @property
    def fingerprint(self) -> dict[str, str]:
        """What a downstream unit's key records of this one: its key and its outputs' content."""
        return {"key": self.key, "content": self.content}


def _up_to_date(directory: Path, manifest: dict) -> str | None:
    """The outputs' content hash if every output exists and still has it, else None.

    Files whose size and mtime match the manifest's signature are trusted; any other
    difference is settled by hashing the outputs again.
    """
    outs = manifest.get("outputs", {})
    if not all((directory / p).exists() for p in outs.values()):
        return None
    files = _output_files(directory, outs)
    sig = _signature(files)
    content = manifest.get("content")
    if content is not None and sig == manifest.get("signature"):
        return content
    now = content_hash(directory, outs)
    if content is not None and now != content:
        return None
    write_json_atomic(directory / MANIFEST, {**manifest, "content": now, "signature": sig})
    return now


def run_unit(
    name: str,
    directory: Path,
    section: Any,
    inputs: Mapping[str, Any],
    work: Callable[[Path], Mapping[str, str]],
    *,
    force: bool | str = False,
) -> UnitResult:
    """Run ``work(directory)`` unless an up-to-date manifest says it is done.

    The unit's key hashes ``section`` (its config, JSON-able) and ``inputs`` (name -> what
    identifies that input: an upstream unit's `UnitResult.fingerprint`, which includes the
    hash of its outputs' bytes). Done = ``manifest.json`` exists, its key matches and every
    listed output exists with the content the manifest records. A half-finished unit with
    the same key (``.pending.json``) keeps its folder, so the packages' checkpoints in it
    resume; a different key, or ``force``, clears what the unit wrote first.

    The folder must be the program's (`claim_unit`): a non-empty folder without the marker
    raises `RunFolderError` instead of being cleared. Callers hold the run lock.

    Args:
        force: True recomputes the unit. A string is a token of one ``--from`` request: the
            unit is recomputed unless it already started (or finished) under that token, so a
            forced run that is interrupted resumes instead of starting over.

    Returns:
        The unit's result; ``outputs`` maps names to paths relative to ``directory``.
    """
    key = stable_hash({"unit": name, "section": section, "inputs": dict(inputs)})
    claim_unit(directory, name, manifest=MANIFEST, pending=PENDING)
    for p in clean_temps(directory):
        logger.info("[%s] removed the stale temp file %s", name, p)
    manifest = read_json(directory / MANIFEST)
    manifest = manifest if isinstance(manifest, dict) else None
    pending = read_json(directory / PENDING)
    pending = pending if isinstance(pending, dict) else None
    token = force if isinstance(force, str) else None
    started = token is not None and token in (
        (manifest or {}).get("forced"),
        (pending or {}).get("forced"),
    )
    forced = bool(force) and not started
    if not forced and manifest is not None and manifest.get("key") == key:
        content = _up_to_date(directory, manifest)
        if content is not None:
            logger.info("[%s] up to date (key %s), skipped", name, key)
            outs = manifest.get("outputs", {})
            wall = float(manifest.get("wall_s", 0))
            return UnitResult(name, key, directory, outs, True, wall, content)
    if forced or manifest is not None or (pending or {}).get("key") != key:
        if any(n != MARKER for n in os.listdir(directory)):
            why = "forced" if forced else "config, inputs or outputs changed"
            logger.info("[%s] clearing %s (%s)", name, directory, why)
            written = None if manifest is None or "files" not in manifest else manifest["files"]
            clear_unit(directory, None if written is None else [*written, MANIFEST, PENDING])
    else:
        logger.info("[%s] resuming an interrupted run (key %s)", name, key)
    write_json_atomic(directory / PENDING, {"key": key, "started": time.time(), "forced": token})
    logger.info("[%s] running (key %s)", name, key)
    t0 = time.perf_counter()
    outputs = dict(work(directory))
    wall = time.perf_counter() - t0
    content = content_hash(directory, outputs)
    write_json_atomic(
        directory / MANIFEST,
        {
            "stage": name,
            "key": key,
            "config": section,
            "inputs": dict(inputs),
            "outputs": outputs,
            "content": content,
            "signature": _signature(_output_files(directory, outputs)),
            "files": files_under(directory, exclude=(MARKER, PENDING, MANIFEST)),
            "forced": token,
            "wall_s": round(wall, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    (directory / PENDING).unlink(missing_ok=True)
    logger.info("[%s] done in %.1f s", name, wall)
    return UnitResult(name, key, directory, outputs, False, wall, content)
