"""The run folder: foreign files are refused, never deleted; one run at a time; keys follow the
upstream outputs' content; an interrupted --from resumes; outputs honour the umask; stale temp
files of killed writes are cleaned.

The pipeline runs with stub stage functions (tiny text files), so these tests exercise the
runner's bookkeeping in well under a second per run.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from deep_potential import _report, _stages, load_config, run_pipeline
from deep_potential._cli import main
from deep_potential._manifest import run_unit, write_json_atomic
from deep_potential._runfolder import LOCK, MARKER, RunFolderError, locked

TINY = Path(__file__).with_name("tiny.toml")


class Stubs:
    """Stage functions writing small text files; ``version`` changes what a stage writes."""

    def __init__(self) -> None:
        self.version = {"mock": 0, "flows": 0, "gradients": 0}
        self.calls: list[str] = []
        self.crash: str | None = None  # unit name whose work is interrupted
        self.resumed: list[str] = []  # units that found their own half-written checkpoint

    def _start(self, unit: str, d: Path) -> None:
        self.calls.append(unit)
        if (d / "half").exists():
            self.resumed.append(unit)
        if unit == self.crash:
            (d / "half").write_text("checkpoint")
            raise KeyboardInterrupt

    def make_mock(self, config, d: Path) -> dict[str, str]:
        self._start("mock", d)
        (d / "catalog.h5").write_text(f"catalog v{self.version['mock']}")
        return {"catalog": "catalog.h5"}

    def fit_one_flow(self, config, name: str, catalog: Path, d: Path) -> dict[str, str]:
        self._start(f"flows/{name}", d)
        (d / "model").mkdir()
        text = f"{name} v{self.version['flows']} <- {catalog.read_text()}"
        (d / "model" / "model.eqx").write_text(text)
        return {"model": "model"}

    def draw_gradients(self, config, method, flow_dirs, catalog, d: Path) -> dict[str, str]:
        self._start(f"gradients/{method}", d)
        flows = " + ".join((p / "model.eqx").read_text() for p in flow_dirs.values())
        (d / "gradients.h5").write_text(f"g v{self.version['gradients']} <- {flows}")
        return {"gradients": "gradients.h5"}

    def fit_potential(self, config, method, gradients: Path, d: Path, **kw) -> dict[str, str]:
        self._start(f"potentials/{method}", d)
        (d / "model").mkdir()
        (d / "model" / "phi").write_text(f"phi <- {gradients.read_text()}")
        return {"model": "model"}

    def make_report(self, config, d: Path, *, model_dirs, **kw) -> dict[str, str]:
        self._start("report", d)
        text = "\n".join((p / "phi").read_text() for p in model_dirs.values())
        (d / "report.md").write_text(text)
        return {"report": "report.md"}


@pytest.fixture
def stubs(monkeypatch) -> Stubs:
    s = Stubs()
    for name in ("make_mock", "fit_one_flow", "draw_gradients", "fit_potential"):
        monkeypatch.setattr(_stages, name, getattr(s, name))
    monkeypatch.setattr(_stages, "catalog_r_max", lambda config, catalog: 1.0)
    monkeypatch.setattr(_report, "make_report", s.make_report)
    return s


@pytest.fixture(autouse=True)
def _restore_log_handlers():
    logger = logging.getLogger("deep_potential")
    before = list(logger.handlers)
    yield
    for h in logger.handlers[len(before) :]:
        h.close()
    logger.handlers[:] = before


def _ran(result) -> list[str]:
    return [u.name for u in result.units if not u.skipped]


# -- 1. never delete what the program did not make ---------------------------------------


def test_foreign_files_in_a_unit_folder_are_refused_and_kept(tmp_path, capsys, stubs) -> None:
    out = tmp_path / "X"
    (out / "mock").mkdir(parents=True)
    (out / "flows" / "conditional").mkdir(parents=True)
    (out / "mock" / "notes.txt").write_text("precious")
    assert main(["run", str(TINY), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(out / "mock") in err and "notes.txt" in err
    assert "move them elsewhere or use another --out" in err
    assert (out / "mock" / "notes.txt").read_text() == "precious" and stubs.calls == []
    # moved away: the (empty, foreign) folders are taken over and the run goes through
    (out / "mock" / "notes.txt").rename(tmp_path / "notes.txt")
    assert main(["run", str(TINY), "--out", str(out)]) == 0
    assert (out / "mock" / MARKER).is_file() and (out / "flows" / "conditional" / MARKER).is_file()


def test_foreign_report_folder_is_refused_and_kept(tmp_path, stubs) -> None:
    out = tmp_path / "X"
    (out / "report").mkdir(parents=True)
    (out / "report" / "draft.md").write_text("mine")
    with pytest.raises(RunFolderError, match=r"draft\.md"):
        run_pipeline(load_config(TINY), out)
    assert (out / "report" / "draft.md").read_text() == "mine" and "report" not in stubs.calls


def test_foreign_run_folder_is_refused(tmp_path, stubs) -> None:
    (tmp_path / "thesis.tex").write_text("mine")
    with pytest.raises(RunFolderError, match="not a deep-potential run folder"):
        run_pipeline(load_config(TINY), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK, "thesis.tex"]


def test_a_file_added_to_a_finished_unit_is_kept_when_it_must_be_recomputed(tmp_path) -> None:
    d = tmp_path / "u"

    def work(dd: Path) -> dict[str, str]:
        (dd / "work").mkdir(exist_ok=True)
        (dd / "work" / "ckpt").write_text("c")
        (dd / "out.txt").write_text("o")
        return {"out": "out.txt"}

    run_unit("u", d, {"k": 1}, {}, work)
    (d / "notes.txt").write_text("precious")
    assert run_unit("u", d, {"k": 1}, {}, work).skipped  # up to date: nothing touched
    with pytest.raises(RunFolderError, match=r"notes\.txt"):
        run_unit("u", d, {"k": 2}, {}, work)  # must clear: refuses rather than delete
    assert (d / "notes.txt").read_text() == "precious" and (d / "out.txt").exists()
    (d / "notes.txt").unlink()
    assert not run_unit("u", d, {"k": 2}, {}, work).skipped


def test_a_unit_folder_written_before_the_marker_is_taken_over(tmp_path) -> None:
    d = tmp_path / "u"
    key = run_unit("u", d, {"k": 1}, {}, lambda dd: ((dd / "o").write_text("o"), {"o": "o"})[1]).key
    (d / MARKER).unlink()  # as a run folder from before the marker looks
    old = json.loads((d / "manifest.json").read_text())
    for k in ("content", "signature", "files", "forced"):
        old.pop(k)
    write_json_atomic(d / "manifest.json", old)
    again = run_unit("u", d, {"k": 1}, {}, lambda dd: pytest.fail("must be skipped"))
    assert again.skipped and again.key == key and (d / MARKER).is_file()


def test_second_run_is_refused_naming_the_holder_and_a_dead_holder_does_not_block(
    tmp_path, capsys, stubs
) -> None:
    out = tmp_path / "X"
    script = (
        "import sys; from pathlib import Path; from deep_potential._runfolder import locked\n"
        f"with locked(Path({str(out)!r})):\n    print('ready', flush=True); sys.stdin.read()"
    )
    pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    with subprocess.Popen([sys.executable, "-c", script], **pipes) as holder:
        try:
            assert holder.stdout.readline().strip() == "ready"
            assert main(["run", str(TINY), "--out", str(out)]) == 2
            err = capsys.readouterr().err.strip()
            assert "\n" not in err
            assert f"in use by another deep-potential run (PID {holder.pid})" in err
            assert stubs.calls == [] and not (out / "run.log").exists()
        finally:
            holder.kill()  # SIGKILL: the lock file stays behind with the dead PID in it
    assert (out / LOCK).read_text().strip() == str(holder.pid)
    assert main(["run", str(TINY), "--out", str(out)]) == 0  # a stale lock does not block
    with locked(out):  # and the finished run released it
        pass


# -- 2. keys follow the upstream outputs' content; --from resumes ---------------------------


def test_changed_flows_after_an_interrupted_from_are_not_followed_by_stale_results(
    tmp_path, stubs
) -> None:
    cfg, out = load_config(TINY), tmp_path / "run"
    first = run_pipeline(cfg, out)
    n_units = len(first.units)
    stubs.version["flows"] = 1  # retraining gives other weights (another machine, version)
    stubs.crash = "gradients/vanilla"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, out, from_stage="flows")
    stubs.crash = None
    res = run_pipeline(cfg, out)  # a plain rerun
    later = [u.name for u in first.units if u.name.split("/")[0] in AFTER_FLOWS]
    assert _ran(res) == later  # the new flows are kept, nothing made from the old ones is
    report = (out / "report" / "report.md").read_text()
    assert " v1 <- catalog" in report and " v0 <- catalog" not in report
    assert run_pipeline(cfg, out).all_skipped and len(res.units) == n_units


AFTER_FLOWS = ("gradients", "potentials", "report")


def test_interrupted_from_resumes_where_it_stopped(tmp_path, stubs) -> None:
    cfg, out = load_config(TINY), tmp_path / "run"
    first = run_pipeline(cfg, out)
    names = [u.name for u in first.units]
    grads = [n for n in names if n.startswith("gradients/")]
    stubs.crash = grads[1]
    stubs.calls.clear()
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, out, from_stage="flows")
    done_before = stubs.calls[:-1]  # finished under this --from before the interruption
    assert (out / ".from.json").is_file()
    stubs.crash = None
    stubs.calls.clear()
    res = run_pipeline(cfg, out, from_stage="flows")  # "run the same command again"
    # finished units are not recomputed; the interrupted one resumes from its checkpoint;
    # everything after it still runs (it was asked for), though its inputs are identical
    assert not set(done_before) & set(_ran(res))
    assert stubs.resumed == [grads[1]]
    assert _ran(res) == names[names.index(grads[1]) :]
    assert not (out / ".from.json").exists()
    assert run_pipeline(cfg, out).all_skipped
    # a plain rerun after an interrupted --from finishes the request too
    stubs.crash = names[-2]
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, out, from_stage="potentials")
    stubs.crash = None
    assert _ran(run_pipeline(cfg, out)) == names[-2:]


def test_an_output_changed_by_hand_is_recomputed_with_everything_after_it(tmp_path, stubs):
    cfg, out = load_config(TINY), tmp_path / "run"
    names = [u.name for u in run_pipeline(cfg, out).units]
    g = next(n for n in names if n.startswith("gradients/"))
    method = g.split("/")[1]
    (out / g / "gradients.h5").write_text("edited")
    stubs.version["gradients"] = 1  # its recomputation gives other bytes (other machine, ...)
    assert _ran(run_pipeline(cfg, out)) == [g, f"potentials/{method}", "report"]
    (out / g / "gradients.h5").write_text("edited")
    assert _ran(run_pipeline(cfg, out)) == [g]  # recomputed to the same bytes: nothing follows
    # the same bytes with a new mtime (a copy without -p) are not a change
    p = out / g / "gradients.h5"
    p.write_text(p.read_text())
    assert run_pipeline(cfg, out).all_skipped


# -- 3. permissions and stale temp files ---------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_json_honours_the_umask(tmp_path, mask) -> None:
    old = os.umask(mask)
    try:
        write_json_atomic(tmp_path / "a.json", {"a": 1})
    finally:
        os.umask(old)
    # the mode open() gives a new file: 0o666 less the umask (mkstemp alone gives 0o600)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~mask


def test_stale_temp_files_of_killed_writes_are_removed(tmp_path, stubs) -> None:
    cfg, out = load_config(TINY), tmp_path / "run"
    run_pipeline(cfg, out)
    stale = [
        out / ".config.json.k3j_9x0a.tmp",
        out / "mock" / ".catalog.h5.abcd1234.tmp",
        out / "flows" / "conditional" / "model" / ".model.eqx.zz00zz00.tmp",
    ]
    kept = [out / "mock" / ".not-ours.tmp", out / "mock" / "x.abcd1234.tmp"]
    for p in stale + kept:
        p.write_text("partial")
    run_pipeline(cfg, out)
    assert [p.exists() for p in stale] == [False] * len(stale)
    assert all(p.exists() for p in kept)


def test_package_warnings_reach_run_log(tmp_path):
    """A damaged checkpoint moved aside by dp-flows/dp-cbe is logged there: run.log keeps it."""
    import logging

    from deep_potential._cli import _setup_logging

    _setup_logging(tmp_path, quiet=True)
    try:
        logging.getLogger("dp_flows").warning("checkpoint state-000002.eqx damaged: moved aside")
        logging.getLogger("dp_cbe").info("not at INFO")
        for h in logging.getLogger("deep_potential").handlers:
            h.flush()
        text = (tmp_path / "run.log").read_text()
        assert "WARNING checkpoint state-000002.eqx damaged: moved aside" in text
        assert "not at INFO" not in text
    finally:
        for name in ("deep_potential", "dp_flows", "dp_cbe", "dp_mock"):
            logger = logging.getLogger(name)
            for h in list(logger.handlers):
                logger.removeHandler(h)
                h.close()
