"""`deep-potential check` refuses, in one line naming the table and key, every value that used
to pass and then crash after the mock had run or silently change behaviour (issue 12.3), and
validates a ``[data]`` catalogue in full before any work."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import dp_cbe
import dp_flows
import h5py
import numpy as np
import pytest

from deep_potential._cli import main


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    rc = main(["check", str(cfg)])
    out = capsys.readouterr()
    return rc, (out.err if rc else out.out).strip()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        # passed `check`, crashed after the mock had run
        ('[flows.conditional]\nwidth = "16"', "[flows.conditional]: FlowConfig.width must be an integer ≥ 1, got '16'"),
        ("[flows.spatial]\nwidth = 16.5", "[flows.spatial]: FlowConfig.width must be an integer ≥ 1, got 16.5"),
        ("[flows.conditional]\nn_epochs = 2.5", "[flows.conditional]: FlowConfig.n_epochs must be an integer ≥ 1 (or None), got 2.5"),
        ("[flows.spatial]\nweight_decay = inf", "[flows.spatial]: FlowConfig.weight_decay must be a finite number ≥ 0, got inf"),
        ("[cbe]\nweight_decay = inf", "[cbe]: FitConfig.weight_decay must be a finite number ≥ 0, got inf"),
        ("[cbe]\nalpha = inf", "[cbe]: FitConfig.alpha must be a finite number > 0, got inf"),
        # passed `check` and silently changed behaviour
        ('[cbe.conditional]\nlog_loss = "false"', "[cbe.conditional]: FitConfig.log_loss must be true or false, got 'false'"),
        ('[flows.conditional]\not = "no"', "[flows.conditional]: FlowConfig.ot must be true or false (or None), got 'no'"),
        ("[flows.spatial]\ngrad_clip = nan", "[flows.spatial]: FlowConfig.grad_clip must be a finite number ≥ 0, got nan"),
        ("[cbe]\ngrad_clip = nan", "[cbe]: FitConfig.grad_clip must be a finite number ≥ 0, got nan"),
        # the two packages now agree on integers...
        ("[cbe]\nphi_width = 2.5", "[cbe]: FitConfig.phi_width must be an integer ≥ 1, got 2.5"),
        ("[flows.spatial]\nwidth = 2.5", "[flows.spatial]: FlowConfig.width must be an integer ≥ 1, got 2.5"),
        # ...and on the name of the final learning-rate fraction
        ("[flows.conditional]\nlr_final_fraction = 0.1", "[flows.conditional]: key 'lr_final_fraction' in [flows.conditional] is now 'final_lr_fraction'"),
        # the umbrella's own tables follow the same rules
        ('[gradients]\noracle = "false"', "[gradients]: key 'oracle' must be true or false, got 'false'"),
        ("[report]\nfigures = 1", "[report]: key 'figures' must be true or false, got 1"),
        ("[report]\nn_eval = 1e4", "[report]: key 'n_eval' must be an integer ≥ 1, got 10000.0"),
        ("[flows]\nvanilla_weight_clip = inf", "[flows]: key 'vanilla_weight_clip' must be a finite number ≥ 1, got inf"),
        ("[flows]\nconditional_members = true", "[flows]: key 'conditional_members' must be an integer in [1, 64], got True"),
        ("[run]\nseed = 1.5", "[run]: key 'seed' must be an integer ≥ 0, got 1.5"),
        ('[mock]\npreset = "demo"\ndust = "false"', "[mock]: MockConfig.dust must be true or false, got 'false'"),
    ],
)  # fmt: skip
def test_check_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, message: str
) -> None:
    rc, err = _check(tmp_path, toml + "\n", capsys)
    assert rc == 2
    assert err == f"deep-potential: config error: {message}"  # the whole message, one line


def test_valid_values_still_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An int where a float is expected is fine (it becomes a float); ``inf`` where declared."""
    rc, out = _check(
        tmp_path,
        '[mock]\npreset = "demo"\nanisotropy_radius = inf\n[flows.conditional]\n'
        "learning_rate = 1\nfinal_lr_fraction = 0\not = false\n[cbe]\nalpha = 2\n"
        "final_lr_fraction = 0.1\n[report]\ns_cut = 0\n",
        capsys,
    )
    assert rc == 0 and out.splitlines()[0].endswith(": OK"), out


def test_one_name_per_knob() -> None:
    flow = {f.name for f in dataclasses.fields(dp_flows.FlowConfig)}
    fit = {f.name for f in dataclasses.fields(dp_cbe.FitConfig)}
    assert "final_lr_fraction" in flow & fit
    assert "lr_final_fraction" not in flow | fit


def test_strict_module_is_one_file_copied() -> None:
    """Each package carries the same `_strict.py` (each installs alone); the copies agree."""
    import dp_cbe._strict
    import dp_flows._strict
    import dp_mock._strict

    import deep_potential._strict

    sources = {
        inspect.getsource(m)
        for m in (dp_mock._strict, dp_flows._strict, dp_cbe._strict, deep_potential._strict)
    }
    assert len(sources) == 1


# --------------------------------------------------------------------------- [data] catalogue


def _catalog(path: Path, n: int = 64, **columns: np.ndarray | None) -> Path:
    rng = np.random.default_rng(0)
    stars = {"x": rng.normal(size=(n, 3)), "v": 100 * rng.normal(size=(n, 3)), **columns}
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "dp-catalog/1"
        for name, value in stars.items():
            if value is not None:
                f[f"stars/{name}"] = value
    return path


def _data_toml(catalog: Path, methods: str = '["conditional"]') -> str:
    return f'[run]\nmethods = {methods}\n[data]\ncatalog = "{catalog.name}"\n'


def test_check_accepts_a_good_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cat = _catalog(tmp_path / "cat.h5", selection=np.full(64, 0.5))
    rc, out = _check(tmp_path, _data_toml(cat, '["vanilla", "conditional"]'), capsys)
    assert rc == 0, out
    assert "units: data, flows/conditional, flows/spatial_weighted" in out


NAN_V = np.ones((64, 3))
NAN_V[[3, 9]] = np.nan


@pytest.mark.parametrize(
    ("columns", "needle"),
    [
        ({"v": None}, "required dataset /stars/v is missing"),
        ({"x": np.zeros((64, 2))}, "/stars/x has shape (64, 2), expected (64, 3)"),
        ({"v": NAN_V}, "/stars/v has 2 non-finite rows of 64"),
        ({"app_mag": np.zeros(63)}, "/stars/app_mag has shape (63,), expected (64,)"),
        ({"x": np.zeros((0, 3)), "v": np.zeros((0, 3))}, "/stars holds no stars"),
        ({"weight": np.r_[np.ones(63), 0.0]}, "/stars/weight has 1 rows ≤ 0 of 64"),
        ({"selection": np.r_[np.ones(62), 1.5, 0.0]}, "/stars/selection has 2 rows outside (0, 1]"),
    ],
)
def test_check_validates_the_catalogue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], columns: dict, needle: str
) -> None:
    cat = _catalog(tmp_path / "cat.h5", **columns)
    rc, err = _check(tmp_path, _data_toml(cat), capsys)
    assert rc == 2 and "\n" not in err
    assert err.startswith("deep-potential: config error: [data]: key 'catalog': ")
    assert needle in err


def test_check_validates_the_file_and_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "cat.h5"
    text.write_text("x,y,z\n")
    rc, err = _check(tmp_path, _data_toml(text), capsys)
    assert rc == 2 and "is not an HDF5 file" in err
    cat = _catalog(tmp_path / "cat.h5")
    with h5py.File(cat, "a") as f:
        del f.attrs["schema"]
    rc, err = _check(tmp_path, _data_toml(cat), capsys)
    assert rc == 2 and "schema attr is None, expected 'dp-catalog/1'" in err
    cat = _catalog(tmp_path / "cat.h5")
    with h5py.File(cat, "a") as f:
        f.create_group("truth")  # a /truth group the report could not rebuild a truth from
    rc, err = _check(tmp_path, _data_toml(cat), capsys)
    assert rc == 2 and "[data]: key 'catalog': its /truth group does not rebuild" in err
    rc, err = _check(tmp_path, _data_toml(_catalog(tmp_path / "c2.h5")) + "r_max = -1\n", capsys)
    assert rc == 2 and "[data]: key 'r_max' must be a finite number > 0 (or None), got -1" in err


def test_per_package_helper_copies_agree() -> None:
    """Helpers each package keeps its own copy of (so it installs alone) behave identically:
    the umask probe behind every output file's permissions, and how a damaged training
    checkpoint is moved aside (dp-flows and dp-cbe)."""
    import dp_cbe._ckpt
    import dp_cbe._io
    import dp_flows._checkpoint
    import dp_flows._io
    import dp_mock._io

    umask = {inspect.getsource(m._umask) for m in (dp_mock._io, dp_flows._io, dp_cbe._io)}
    assert len(umask) == 1
    move = {inspect.getsource(m._move_aside) for m in (dp_flows._checkpoint, dp_cbe._ckpt)}
    assert len(move) == 1


def test_every_atomic_writer_behaves_alike(tmp_path: Path) -> None:
    """The four atomic writers (one per package, kept so each installs alone; the umbrella's
    `_manifest.atomic_write` serves all its own files) behave identically: the new file gets
    0o666 & ~umask, a failing write leaves the old file as it was and no temp file."""
    import contextlib
    import os

    import dp_cbe._io
    import dp_flows._io
    import dp_mock._io

    from deep_potential import _manifest

    def by_context(cm):
        def write(path: Path, body) -> None:
            with cm(path) as tmp:
                body(tmp)

        return write

    writers = {
        "dp-cbe": dp_cbe._io.atomic_write,
        "dp-flows": by_context(dp_flows._io.atomic_path),
        "dp-mock": by_context(dp_mock._io.atomic_output),
        "deep-potential": _manifest.atomic_write,
    }
    old = os.umask(0o027)
    try:
        for name, write in writers.items():
            path = tmp_path / name / "out.bin"
            write(path, lambda p: p.write_bytes(b"first"))
            assert path.read_bytes() == b"first"
            assert path.stat().st_mode & 0o777 == 0o640, name

            def fail(p: Path) -> None:
                p.write_bytes(b"half")
                raise RuntimeError("killed")

            with contextlib.suppress(RuntimeError):
                write(path, fail)
            assert path.read_bytes() == b"first", name
            assert [p.name for p in path.parent.iterdir()] == ["out.bin"], name
    finally:
        os.umask(old)
