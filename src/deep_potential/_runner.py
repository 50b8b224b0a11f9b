"""Run the pipeline: mock -> flows -> gradients -> potentials -> report, skipping finished units."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import _stages
from ._config import PipelineConfig, section_dict
from ._manifest import UnitResult, file_hash, run_unit, write_json_atomic

logger = logging.getLogger("deep_potential")


@dataclass
class RunResult:
    """Every unit the run went through, in order, and the run folder."""

    run_dir: Path
    units: list[UnitResult] = field(default_factory=list)

    def unit(self, name: str) -> UnitResult:
        for u in self.units:
            if u.name == name:
                return u
        raise KeyError(name)

    @property
    def all_skipped(self) -> bool:
        return all(u.skipped for u in self.units)


def run_pipeline(
    config: PipelineConfig, run_dir: Path | str, *, from_stage: str | None = None
) -> RunResult:
    """Run every stage the config needs, in order, in ``run_dir``.

    Args:
        config: a validated config (``load_config``).
        run_dir: the run folder; ``run_dir/<stage>/...`` hold each stage's outputs and manifest.
        from_stage: recompute this stage (one of ``STAGES``) and every later one.

    Returns:
        The units run or skipped, with their keys, folders and timings.
    """
    if from_stage is not None and from_stage not in _stages.STAGES:
        raise ValueError(
            f"--from: unknown stage {from_stage!r} (stages: {', '.join(_stages.STAGES)})"
        )
    first = _stages.STAGES.index(from_stage) if from_stage else len(_stages.STAGES)
    force = {s: i >= first for i, s in enumerate(_stages.STAGES)}
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        run_dir / "config.json", {k: section_dict(v) for k, v in vars(config).items()}
    )
    result = RunResult(run_dir)
    t_start = time.perf_counter()
    seed = config.run.seed

    # -- mock (or an existing catalogue) --------------------------------------------------
    if config.data is None:
        u = run_unit(
            "mock",
            run_dir / "mock",
            {"mock": section_dict(config.mock), "seed": seed},
            {},
            lambda d: _stages.make_mock(config, d),
            force=force["mock"],
        )
        catalog = u.path("catalog")
    else:
        catalog = config.data.catalog
        t0 = time.perf_counter()
        key = file_hash(catalog)
        import dp_mock

        dp_mock.read_catalog(catalog)  # validates before any fitting
        u = UnitResult(
            "data", key, catalog.parent, {"catalog": catalog.name}, True, time.perf_counter() - t0
        )
        logger.info("[data] catalogue %s (sha256 %s) validated", catalog, key)
    result.units.append(u)
    cat_key = u.key

    # -- flows ----------------------------------------------------------------------------
    flows: dict[str, UnitResult] = {}
    for name in config.flows_needed:
        cfg = config.flow_conditional if name == "conditional" else config.flow_spatial
        section = {"flow": section_dict(cfg), "seed": seed}
        if name == "spatial_weighted":
            section["vanilla_weight_clip"] = config.vanilla_weight_clip
        flows[name] = run_unit(
            f"flows/{name}",
            run_dir / "flows" / name,
            section,
            {"catalog": cat_key},
            lambda d, name=name: _stages.fit_one_flow(config, name, catalog, d),
            force=force["flows"],
        )
        result.units.append(flows[name])
    flow_dirs = {n: f.path("model") for n, f in flows.items()}

    # -- gradients, potentials ------------------------------------------------------------
    grads: dict[str, UnitResult] = {}
    pots: dict[str, UnitResult] = {}
    r_max = _stages.catalog_r_max(config, catalog)
    for method in config.methods:
        needed = ["conditional"] + ([s] if (s := _stages.SPATIAL_FLOW_OF[method]) else [])
        grads[method] = run_unit(
            f"gradients/{method}",
            run_dir / "gradients" / method,
            {"gradients": section_dict(config.gradients), "r_max": r_max, "seed": seed},
            {f"flows/{n}": flows[n].key for n in needed} | {"catalog": cat_key},
            lambda d, m=method: _stages.draw_gradients(config, m, flow_dirs, catalog, d),
            force=force["gradients"],
        )
        result.units.append(grads[method])
    for method in config.methods:
        pots[method] = run_unit(
            f"potentials/{method}",
            run_dir / "potentials" / method,
            {"cbe": section_dict(config.cbe[method]), "seed": seed},
            {f"gradients/{method}": grads[method].key},
            lambda d, m=method: _stages.fit_potential(config, m, grads[m].path("gradients"), d),
            force=force["potentials"],
        )
        result.units.append(pots[method])

    # -- report ---------------------------------------------------------------------------
    from ._report import make_report

    inputs = {"catalog": cat_key}
    inputs |= {f"flows/{n}": f.key for n, f in flows.items()}
    inputs |= {f"potentials/{m}": p.key for m, p in pots.items()}
    inputs |= {f"gradients/{m}": g.key for m, g in grads.items()}
    rep = run_unit(
        "report",
        run_dir / "report",
        {"report": section_dict(config.report), "methods": list(config.methods), "seed": seed},
        inputs,
        lambda d: make_report(
            config,
            d,
            catalog=catalog,
            flow_dirs=flow_dirs,
            gradient_files={m: g.path("gradients") for m, g in grads.items()},
            model_dirs={m: p.path("model") for m, p in pots.items()},
            timings={u.name: u.wall_s for u in result.units},
        ),
        force=force["report"],
    )
    result.units.append(rep)
    logger.info(
        "run finished in %.1f s (%d units, %d skipped)",
        time.perf_counter() - t_start,
        len(result.units),
        sum(u.skipped for u in result.units),
    )
    return result
