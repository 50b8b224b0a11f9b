"""Stage bookkeeping: skip when up to date, clear on change or force, resume when interrupted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deep_potential._manifest import run_unit, stable_hash


def _work(calls: list[str], tag: str):
    def work(d: Path) -> dict[str, str]:
        calls.append(tag)
        assert not (d / "out.txt").exists() or tag == "resume"
        (d / "out.txt").write_text(tag)
        return {"out": "out.txt"}

    return work


def test_skip_change_force(tmp_path: Path) -> None:
    calls: list[str] = []
    d = tmp_path / "u"
    a = run_unit("u", d, {"k": 1}, {"up": "abc"}, _work(calls, "a"))
    assert not a.skipped and a.path("out").read_text() == "a"
    b = run_unit("u", d, {"k": 1}, {"up": "abc"}, _work(calls, "b"))
    assert b.skipped and b.key == a.key and calls == ["a"]
    c = run_unit("u", d, {"k": 2}, {"up": "abc"}, _work(calls, "c"))  # config changed
    assert not c.skipped and c.key != a.key
    e = run_unit("u", d, {"k": 2}, {"up": "xyz"}, _work(calls, "e"))  # upstream changed
    assert not e.skipped and e.key != c.key
    f = run_unit("u", d, {"k": 2}, {"up": "xyz"}, _work(calls, "f"), force=True)
    assert not f.skipped and f.key == e.key and calls == ["a", "c", "e", "f"]
    assert json.loads((d / "manifest.json").read_text())["outputs"] == {"out": "out.txt"}
    (d / "out.txt").unlink()  # a missing output makes the unit stale
    assert not run_unit("u", d, {"k": 2}, {"up": "xyz"}, _work(calls, "g")).skipped


def test_interrupted_unit_resumes_in_place(tmp_path: Path) -> None:
    d = tmp_path / "u"

    def crash(dd: Path) -> dict[str, str]:
        (dd / "checkpoint").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_unit("u", d, {"k": 1}, {}, crash)
    assert (d / ".pending.json").exists() and not (d / "manifest.json").exists()
    seen = []

    def resume(dd: Path) -> dict[str, str]:
        seen.append((dd / "checkpoint").read_text())  # the package's checkpoint survived
        (dd / "out.txt").write_text("done")
        return {"out": "out.txt"}

    run_unit("u", d, {"k": 1}, {}, resume)
    assert seen == ["half"] and not (d / ".pending.json").exists()
    # a different key after an interruption starts from a clean folder
    with pytest.raises(KeyboardInterrupt):
        run_unit("u", d, {"k": 5}, {}, crash)
    run_unit("u", d, {"k": 6}, {}, lambda dd: (seen.append((dd / "checkpoint").exists()), {})[1])
    assert seen[-1] is False


def test_stable_hash_is_order_independent() -> None:
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 1.5})
