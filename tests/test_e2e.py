"""End to end: a tiny config through every stage; a rerun skips everything; own-catalogue path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import dp_mock
import h5py
import numpy as np
import pytest

from deep_potential import STAGES, _runner, load_config, run_pipeline

TINY = Path(__file__).with_name("tiny.toml")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_gradients(path: Path, density: str) -> None:
    with h5py.File(path, "r") as f:
        assert f.attrs["schema"] == "dp-gradients/1"
        assert f.attrs["density"] == density
        n = len(f["x"])
        for k in ("x", "v", "dlnf_dx", "dlnf_dv"):
            a = np.asarray(f[k])
            assert a.shape == (n, 3) and np.isfinite(a).all(), k


@pytest.mark.slow
def test_tiny_run_every_stage_then_rerun_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(TINY)
    res = run_pipeline(cfg, tmp_path / "run")
    names = [u.name for u in res.units]
    assert names == [
        "mock", "flows/conditional", "flows/spatial", "flows/spatial_weighted",
        "gradients/vanilla", "gradients/selection", "gradients/conditional",
        "potentials/vanilla", "potentials/selection", "potentials/conditional", "report",
    ]  # fmt: skip
    assert not any(u.skipped for u in res.units)
    for u in res.units:
        man = json.loads((u.directory / "manifest.json").read_text())
        assert man["key"] == u.key and man["stage"] == u.name
        assert not (u.directory / ".pending.json").exists()
    stars = dp_mock.read_catalog(res.unit("mock").path("catalog"))
    assert stars["x"].shape == (4096, 3)  # exactly n_observed stars
    for name in ("conditional", "spatial", "spatial_weighted"):
        model = res.unit(f"flows/{name}").path("model")
        assert (model / "model.eqx").is_file() and (model / "hyperparameters.json").is_file()
    for m, dens in (("vanilla", "f"), ("selection", "f_obs"), ("conditional", "p_v_given_x")):
        _check_gradients(res.unit(f"gradients/{m}").path("gradients"), dens)
        assert (res.unit(f"potentials/{m}").path("model") / "model.eqx").is_file()
    rep = res.unit("report")
    metrics = json.loads(rep.path("metrics").read_text())
    assert metrics["truth"] is True
    for m in ("vanilla", "selection", "conditional"):
        mm = metrics["methods"][m]
        for key in ("dlnrho", "acc_rel_err", "acc_ratio"):
            assert len(mm[key]["by_r"]) == cfg.report.r_bins
            assert len(mm[key]["by_s"]) == cfg.report.s_bins
            # evaluation points are S_true > s_cut only, all binned in r
            assert sum(b["n"] for b in mm[key]["by_r"]) <= metrics["n_eval_points"]
            assert all(math.isfinite(b["median"]) for b in mm[key]["by_r"] if b["n"])
    assert "dln_s" in metrics["methods"]["selection"]
    assert "dln_n" in metrics["methods"]["conditional"]
    # each fit's residual at its best step (fit_status.best_val), finite and non-negative
    assert all(0 <= metrics["fit_status"][m]["best_val"] < math.inf for m in metrics["methods"])
    assert math.isfinite(metrics["p_v_given_x"]["dlnp"]["all"]["median"])
    for fig in ("fig1", "fig2", "fig3", "fig5", "fig7"):
        assert rep.path(fig).read_bytes()[:8] == PNG_MAGIC
    assert "## Accuracy targets" in rep.path("report").read_text()

    again = run_pipeline(cfg, tmp_path / "run")
    assert again.all_skipped and [u.key for u in again.units] == [u.key for u in res.units]

    # --from report: only the report is recomputed, from the stored upstream outputs
    third = run_pipeline(cfg, tmp_path / "run", from_stage="report")
    assert [u.name for u in third.units if not u.skipped] == ["report"]
    assert STAGES[-1] == "report"

    # An upgraded dp-cbe (another installed version) refits the potentials and redraws the
    # report from the same flows; nothing upstream of it is recomputed.
    real = _runner.versions

    def upgraded(*dists: str) -> dict[str, str]:
        return {d: ("9.9.9" if d == "dp-cbe" else v) for d, v in real(*dists).items()}

    monkeypatch.setattr(_runner, "versions", upgraded)
    fourth = run_pipeline(cfg, tmp_path / "run")
    redone = [u.name for u in fourth.units if not u.skipped]
    assert redone == [
        "gradients/vanilla", "gradients/selection", "gradients/conditional",
        "potentials/vanilla", "potentials/selection", "potentials/conditional", "report",
    ]  # fmt: skip


@pytest.mark.slow
def test_own_catalogue_without_truth(tmp_path: Path) -> None:
    """[data] catalog = a survey-like file (x, v only): the report shows recovered fields only."""
    x, v = dp_mock.PlummerSphere().sample(7, 4096)
    cat = tmp_path / "survey.h5"
    with h5py.File(cat, "w") as f:
        f.attrs["schema"] = "dp-catalog/1"
        f.attrs["units"] = "x: kpc, v: km/s"
        f["stars/x"], f["stars/v"] = x, v
    text = TINY.read_text().split("[mock]")[0] + TINY.read_text().split("chunk_size = 16384")[1]
    text = text.replace("seed = 1", 'seed = 1\nmethods = ["conditional"]')
    cfg_path = tmp_path / "own.toml"
    cfg_path.write_text(text + f'\n[data]\ncatalog = "{cat.name}"\n')
    cfg = load_config(cfg_path)  # relative catalogue path resolves against the config's folder
    assert cfg.data is not None and cfg.data.catalog == cat and cfg.mock is None
    res = run_pipeline(cfg, tmp_path / "run")
    assert [u.name for u in res.units] == [
        "data", "flows/conditional", "gradients/conditional", "potentials/conditional", "report",
    ]  # fmt: skip
    metrics = json.loads(res.unit("report").path("metrics").read_text())
    assert metrics["truth"] is False and "p_v_given_x" not in metrics
    mm = metrics["methods"]["conditional"]
    assert "dlnrho" not in mm and "ln_rho_model" in mm
    # r_max defaults to the farthest star
    assert metrics["r_max_kpc"] == pytest.approx(np.linalg.norm(x, axis=1).max())
    assert res.unit("report").path("fig3").read_bytes()[:8] == PNG_MAGIC
    # the stars' own p(v|x) shape: a Plummer sphere's κ = 18/7 is far from Gaussian
    shape = metrics["velocity_shape"]
    assert np.allclose(shape["kappa_r"], 18 / 7, atol=0.35) and shape["near_gaussian_kpc"] == []
    assert res.unit("report").path("fig7").read_bytes()[:8] == PNG_MAGIC
    assert "no truth" in res.unit("report").path("report").read_text()
    # vanilla needs 1/S weights the survey file lacks: refused at config time
    cfg_path.write_text(
        text.replace('["conditional"]', '["vanilla"]') + f'\n[data]\ncatalog = "{cat.name}"\n'
    )
    with pytest.raises(ValueError, match="vanilla"):
        load_config(cfg_path)


def test_conditional_ensemble_gives_error_bands(tmp_path: Path) -> None:
    """[flows] conditional_members = 2: robust-mean gradients with standard errors, one
    conditional fit per member, and their spread as the error band in metrics and Fig. 2."""
    text = TINY.read_text().replace("seed = 1", 'seed = 1\nmethods = ["conditional"]')
    text = text.replace("[flows.spatial]", "[flows]\nconditional_members = 2\n\n[flows.spatial]")
    cfg_path = tmp_path / "ens.toml"
    cfg_path.write_text(text)
    res = run_pipeline(load_config(cfg_path), tmp_path / "run")
    assert [u.name for u in res.units] == [
        "mock", "flows/conditional", "flows/conditional_m1", "gradients/conditional",
        "potentials/conditional", "potentials/conditional_member0",
        "potentials/conditional_member1", "report",
    ]  # fmt: skip
    with h5py.File(res.unit("gradients/conditional").path("gradients"), "r") as f:
        se = np.asarray(f["dlnf_dx_std"])
        # Two differently seeded flows disagree somewhere: a positive, finite standard error.
        assert np.isfinite(se).all() and (se > 0).any()
    metrics = json.loads(res.unit("report").path("metrics").read_text())
    band = metrics["methods"]["conditional"]
    sig = band["band"]["lnrho_sigma"]["all"]["median"]
    assert band["band"]["members"] == ["conditional_member0", "conditional_member1"]
    assert math.isfinite(sig) and sig > 0
    # Both members' flows reach the ensemble's bias-vs-spread (the conditional one is loaded
    # once for the flow summary, Δ ln p(v|x) and the ensemble).
    assert metrics["p_v_given_x"]["ensemble"]["k"] == 2
    assert metrics["p_v_given_x_model"]["width"] == 16  # tiny.toml [flows.conditional] width
    # Fig. 1 is dp-mock's own plot_truth: its fixed 18 x 4.6 in at 110 dpi (IHDR width, height).
    fig1 = res.unit("report").path("fig1").read_bytes()
    assert fig1[:8] == PNG_MAGIC and fig1[12:16] == b"IHDR"
    assert (int.from_bytes(fig1[16:20], "big"), int.from_bytes(fig1[20:24], "big")) == (1980, 506)
