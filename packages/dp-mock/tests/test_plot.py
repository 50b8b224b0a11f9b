"""plot_truth (paper Fig. 1): matplotlib optional and never imported by ``import dp_mock``, the
caller's backend untouched, the image written atomically."""

import os
import re
import stat
import subprocess
import sys
import textwrap

import pytest
from dp_mock import MockConfig, Truth, generate_catalog, plot_truth
from dp_mock._cli import main

TINY = MockConfig(n_observed=200, chunk_size=2**12, dust_grid=8, seed=1)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INSTALL = 'pip install "dp-mock[plot]"'


def _run(code: str, cwd: os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (the same environment), away from the source tree."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _png_size(path: os.PathLike[str]) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_import_does_not_import_matplotlib(tmp_path):
    # A fresh interpreter: in this one another test may already have imported matplotlib.
    res = _run(
        """
        import sys
        import dp_mock, dp_mock._cli
        assert callable(dp_mock.plot_truth)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "matplotlib")
        assert not loaded, loaded
        """,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr


def test_without_matplotlib_the_error_names_the_extra(tmp_path, monkeypatch, capsys):
    # None in sys.modules makes `import matplotlib...` fail as if it were not installed.
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.patches"):
        monkeypatch.setitem(sys.modules, name, None)
    fig = tmp_path / "f.png"
    with pytest.raises(ImportError, match=re.escape(INSTALL)):
        plot_truth(tmp_path / "c.h5", fig)
    assert main(["plot", str(tmp_path / "c.h5"), "--out", str(fig)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and INSTALL in err and not fig.exists()


def test_plot_truth_writes_png(tmp_path):
    pytest.importorskip("matplotlib", reason='plotting needs the "dp-mock[plot]" extra')
    truth = Truth(TINY)
    out = plot_truth(truth, tmp_path / "figs" / "fig1.png", resolution=24)
    assert out == tmp_path / "figs" / "fig1.png"
    # 18 x 4.6 inches at 110 dpi, exactly: the figure is saved without tight bbox cropping.
    assert _png_size(out) == (1980, 506)
    # Atomic: nothing but the image is left in the folder, with the mode open() would give.
    assert os.listdir(out.parent) == ["fig1.png"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    # From the catalogue file the same figure: n_observed stars and the same truth, so the
    # bytes agree (Agg's PNG output is deterministic and carries no timestamp).
    cat = generate_catalog(TINY, tmp_path / "c.h5", progress=False)
    again = plot_truth(cat, tmp_path / "fig1_from_file.png", resolution=24)
    assert again.read_bytes() == out.read_bytes()
    # The format follows the suffix; an unknown one is refused before any drawing.
    assert plot_truth(truth, tmp_path / "fig1.svg", resolution=8).read_bytes().startswith(b"<?xml")
    with pytest.raises(ValueError, match="unknown image format 'xyz'"):
        plot_truth(truth, tmp_path / "fig1.xyz")
    with pytest.raises(ValueError, match="is a folder"):
        plot_truth(truth, tmp_path)
    with pytest.raises(ValueError, match="resolution must be >= 2"):
        plot_truth(truth, tmp_path / "f.png", resolution=1)
    assert not (tmp_path / "fig1.xyz").exists() and not (tmp_path / "f.png").exists()


def test_failed_drawing_leaves_the_old_file(tmp_path, monkeypatch):
    matplotlib_figure = pytest.importorskip(
        "matplotlib.figure", reason='plotting needs the "dp-mock[plot]" extra'
    )

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib_figure.Figure, "savefig", broken_savefig)
    out = tmp_path / "fig1.png"
    out.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"):
        plot_truth(Truth(TINY.replace(dust=False)), out, resolution=8)
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["fig1.png"]


def test_caller_backend_unchanged(tmp_path):
    pytest.importorskip("matplotlib", reason='plotting needs the "dp-mock[plot]" extra')
    # A fresh interpreter whose caller chose a non-default backend (svg, not Agg): plot_truth
    # must neither switch it nor import pyplot (which would hold global figure state).
    res = _run(
        f"""
        import sys
        import matplotlib
        matplotlib.use("svg")
        from dp_mock import MockConfig, Truth, plot_truth
        truth = Truth(MockConfig(n_observed=200, dust=False, seed=1))
        plot_truth(truth, {str(tmp_path / "fig1.png")!r}, resolution=8)
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        assert "matplotlib.pyplot" not in sys.modules
        """,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "fig1.png").read_bytes()[:8] == PNG_MAGIC
