"""The run folder: who owns which folder, the run lock, stale temp files, output permissions.

A unit folder (``RUN_DIR/mock``, ``RUN_DIR/flows/conditional``, ...) belongs to the program
once it holds the marker file ``.deep-potential``; the program writes the marker into a
folder it creates or finds empty. A non-empty folder without the marker is refused, never
cleared. ``RUN_DIR/.deep-potential.lock`` is held with ``flock`` for the whole run, so a second
run on the same folder stops at once; the kernel drops the lock when its process dies.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

MARKER = ".deep-potential"
LOCK = ".deep-potential.lock"
# Temp files of the atomic writers here and in the packages: mkstemp(prefix=".NAME.",
# suffix=".tmp") adds 8 characters from [a-z0-9_].
TEMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
# What ``run_pipeline`` itself writes at the top of a run folder.
ROOT_NAMES = frozenset(
    {"config.json", "run.log", LOCK, MARKER, ".from.json", "mock", "flows", "gradients"}
    | {"potentials", "report"}
)


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked (foreign files, locked, damaged state)."""


def umask() -> int:
    """The process umask (read from /proc where possible, so it is never changed)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def chmod_like_new_file(path: str | Path) -> None:
    """Give a ``mkstemp`` file (mode 0600) the mode ``open()`` would: ``0o666 & ~umask``."""
    os.chmod(path, 0o666 & ~umask())


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``run_dir/.deep-potential.lock`` (PID written inside).

    Raises:
        RunFolderError: another live process holds the lock.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RunFolderError(
                f"{run_dir} is in use by another deep-potential run (PID {holder}); wait for it "
                "to finish or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock; the file stays (unlinking it would race)


def _entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def _listing(names: Iterable[str]) -> str:
    names = list(names)
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def check_root(run_dir: Path) -> None:
    """Refuse a run folder that holds anything ``run_pipeline`` would not write there."""
    if (run_dir / MARKER).is_file():
        return
    foreign = [n for n in _entries(run_dir) if n not in ROOT_NAMES and not TEMP_RE.match(n)]
    config = run_dir / "config.json"
    if config.is_file():
        try:
            ours = isinstance(json.loads(config.read_text()).get("run"), dict)
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            foreign.append("config.json")
    if foreign:
        raise RunFolderError(
            f"{run_dir} is not a deep-potential run folder (it holds {_listing(foreign)}); "
            "choose a new or empty --out"
        )
    (run_dir / MARKER).write_text('{"owner": "deep-potential"}\n')


def _is_legacy_unit(directory: Path, name: str, manifest: str, pending: str) -> bool:
    """A unit folder written before the marker existed: holds our manifest or pending file."""
    for fname in (manifest, pending):
        try:
            info = json.loads((directory / fname).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and "key" in info and info.get("stage", name) == name:
            return True
    return False


def claim_unit(directory: Path, name: str, *, manifest: str, pending: str) -> None:
    """Make sure ``directory`` is the program's: create it, or mark it if empty or legacy.

    Raises:
        RunFolderError: it holds files the program did not write.
    """
    if (directory / MARKER).is_file():
        return
    if directory.exists() and not directory.is_dir():
        raise RunFolderError(f"{directory} is a file, not a folder; move it away to run {name}")
    entries = _entries(directory)
    if entries and not _is_legacy_unit(directory, name, manifest, pending):
        raise RunFolderError(
            f"{directory} holds files deep-potential did not write ({_listing(entries)}); move "
            "them elsewhere or use another --out"
        )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text(json.dumps({"owner": "deep-potential", "unit": name}) + "\n")


def files_under(directory: Path, *, exclude: Iterable[str] = ()) -> list[str]:
    """Relative paths of the regular files under ``directory`` (sorted), minus ``exclude``."""
    skip = set(exclude)
    out = [p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()]
    return sorted(p for p in out if p not in skip)


def clear_unit(directory: Path, written: list[str] | None, *, keep: Iterable[str] = ()) -> None:
    """Delete what the program wrote in its unit folder, keeping the marker and ``keep``.

    Args:
        directory: an owned unit folder (`claim_unit`).
        written: files the finished unit recorded as its own; None for an unfinished or
            legacy unit, whose whole content is the program's.
        keep: file names to leave in place.

    Raises:
        RunFolderError: a finished unit's folder holds files it did not record.
    """
    keep = {MARKER, *keep}
    if written is not None:
        mine = set(written) | keep
        other = [
            f for f in files_under(directory) if f not in mine and not TEMP_RE.match(Path(f).name)
        ]
        if other:
            raise RunFolderError(
                f"{directory} holds files deep-potential did not write ({_listing(other)}); "
                "move them elsewhere so the unit can be recomputed"
            )
    for entry in directory.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def clean_temps(directory: Path, *, recursive: bool = True) -> list[Path]:
    """Remove temp files left by killed atomic writes (``.NAME.XXXXXXXX.tmp``) in an owned folder.

    Only safe while the run lock is held (no other writer of this run folder is alive).
    """
    if not directory.is_dir():
        return []
    it = directory.rglob(".*.tmp") if recursive else directory.glob(".*.tmp")
    removed = [p for p in it if p.is_file() and not p.is_symlink() and TEMP_RE.match(p.name)]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed
