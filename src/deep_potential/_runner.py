"""Run the pipeline: mock -> flows -> gradients -> potentials -> report, skipping finished units."""

from __future__ import annotations

import importlib.metadata
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import _stages
from ._config import PipelineConfig, section_dict
from ._manifest import UnitResult, file_hash, read_json, run_unit, write_json_atomic
from ._runfolder import check_root, clean_temps, locked

logger = logging.getLogger("deep_potential")

FROM = ".from.json"  # an unfinished --from request: {"from": stage, "token": ...}


def versions(*dists: str) -> dict[str, str]:
    """The installed versions of the distributions a unit's result depends on. They are part
    of every unit's key, so that upgrading a package recomputes what it computed instead of
    reusing a result of the old code (docs/formats.md, "Guarantees")."""
    out = {}
    for d in dists:
        try:
            out[d] = importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            out[d] = "not installed"
    return out


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

    The run holds ``run_dir/.deep-potential.lock`` throughout. A ``from_stage`` request is
    recorded in ``run_dir/.from.json`` until the run finishes, so an interrupted one
    continues (with or without ``from_stage``) where it stopped instead of starting over.

    Args:
        config: a validated config (``load_config``).
        run_dir: the run folder; ``run_dir/<stage>/...`` hold each stage's outputs and manifest.
        from_stage: recompute this stage (one of ``STAGES``) and every later one.

    Returns:
        The units run or skipped, with their keys, folders and timings.

    Raises:
        RunFolderError: another run holds the folder, or it holds files the program did not
            write where it would write.
    """
    if from_stage is not None and from_stage not in _stages.STAGES:
        raise ValueError(
            f"--from: unknown stage {from_stage!r} (stages: {', '.join(_stages.STAGES)})"
        )
    run_dir = Path(run_dir).resolve()
    with locked(run_dir):
        check_root(run_dir)
        clean_temps(run_dir, recursive=False)
        return _run_locked(config, run_dir, from_stage)


def _from_request(run_dir: Path, from_stage: str | None) -> tuple[str | None, str | None]:
    """(first forced stage, token): a new --from request, or the unfinished recorded one."""
    old = read_json(run_dir / FROM)
    old = old if isinstance(old, dict) and old.get("from") in _stages.STAGES else None
    if from_stage is None and old is None:
        return None, None
    if old is not None and from_stage in (None, old["from"]):
        logger.info("continuing the unfinished --from %s request", old["from"])
        return old["from"], str(old["token"])
    token = uuid.uuid4().hex
    write_json_atomic(run_dir / FROM, {"from": from_stage, "token": token})
    return from_stage, token


def _run_locked(config: PipelineConfig, run_dir: Path, from_stage: str | None) -> RunResult:
    from_stage, token = _from_request(run_dir, from_stage)
    first = _stages.STAGES.index(from_stage) if from_stage else len(_stages.STAGES)
    # token is None only when nothing is forced (first == len(STAGES))
    force: dict[str, bool | str] = {
        s: token if token is not None and i >= first else False
        for i, s in enumerate(_stages.STAGES)
    }
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
            {"mock": section_dict(config.mock), "seed": seed, "versions": versions("dp-mock")},
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
        wall = time.perf_counter() - t0
        u = UnitResult("data", key, catalog.parent, {"catalog": catalog.name}, True, wall, key)
        logger.info("[data] catalogue %s (sha256 %s) validated", catalog, key)
    result.units.append(u)
    cat_key = u.fingerprint

    # -- flows ----------------------------------------------------------------------------
    flows: dict[str, UnitResult] = {}
    for name in config.flows_needed:
        cond = name in config.conditional_flows
        cfg = config.flow_conditional if cond else config.flow_spatial
        section = {"flow": section_dict(cfg), "seed": seed}
        if name == "spatial_weighted":
            section["vanilla_weight_clip"] = config.vanilla_weight_clip
        if cond and config.conditional_bootstrap:
            section["bootstrap"] = True
        flows[name] = run_unit(
            f"flows/{name}",
            run_dir / "flows" / name,
            section | {"versions": versions("dp-flows", "dp-ot")},
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
        needed = [*config.conditional_flows]
        needed += [s] if (s := _stages.SPATIAL_FLOW_OF[method]) else []
        grads[method] = run_unit(
            f"gradients/{method}",
            run_dir / "gradients" / method,
            {
                "gradients": section_dict(config.gradients),
                # resolved: an unset fraction's default may change between versions
                "uniform_fraction": config.gradients.uniform_fraction_for(method),
                "r_max": r_max,
                "seed": seed,
                "versions": versions("deep-potential", "dp-flows", "dp-cbe", "dp-mock"),
            },
            {f"flows/{n}": flows[n].fingerprint for n in needed} | {"catalog": cat_key},
            lambda d, m=method: _stages.draw_gradients(config, m, flow_dirs, catalog, d),
            force=force["gradients"],
        )
        result.units.append(grads[method])
    for method in config.methods:
        pots[method] = run_unit(
            f"potentials/{method}",
            run_dir / "potentials" / method,
            {"cbe": section_dict(config.cbe[method]), "seed": seed, "versions": versions("dp-cbe")},
            {f"gradients/{method}": grads[method].fingerprint},
            lambda d, m=method: _stages.fit_potential(config, m, grads[m].path("gradients"), d),
            force=force["potentials"],
        )
        result.units.append(pots[method])
    bands: dict[str, UnitResult] = {}
    for name in config.band_fits:  # each ensemble member's own conditional fit
        bands[name] = run_unit(
            f"potentials/{name}",
            run_dir / "potentials" / name,
            {
                "cbe": section_dict(config.cbe["conditional"]),
                "seed": seed,
                "member": name,
                "versions": versions("dp-cbe"),
            },
            {"gradients/conditional": grads["conditional"].fingerprint},
            lambda d, n=name: _stages.fit_potential(
                config, "conditional", grads["conditional"].path(n), d, seed_name=n
            ),
            force=force["potentials"],
        )
        result.units.append(bands[name])

    # -- report ---------------------------------------------------------------------------
    from ._report import make_report

    inputs = {"catalog": cat_key}
    inputs |= {f"flows/{n}": f.fingerprint for n, f in flows.items()}
    inputs |= {f"potentials/{m}": p.fingerprint for m, p in pots.items()}
    inputs |= {f"potentials/{n}": b.fingerprint for n, b in bands.items()}
    inputs |= {f"gradients/{m}": g.fingerprint for m, g in grads.items()}
    rep = run_unit(
        "report",
        run_dir / "report",
        {
            "report": section_dict(config.report),
            "methods": list(config.methods),
            "seed": seed,
            "versions": versions("deep-potential", "dp-mock", "dp-flows", "dp-cbe"),
        },
        inputs,
        lambda d: make_report(
            config,
            d,
            catalog=catalog,
            flow_dirs=flow_dirs,
            gradient_files={m: g.path("gradients") for m, g in grads.items()},
            model_dirs={m: p.path("model") for m, p in pots.items()},
            band_dirs={n: b.path("model") for n, b in bands.items()},
            timings={u.name: u.wall_s for u in result.units},
        ),
        force=force["report"],
    )
    result.units.append(rep)
    (run_dir / FROM).unlink(missing_ok=True)
    logger.info(
        "run finished in %.1f s (%d units, %d skipped)",
        time.perf_counter() - t_start,
        len(result.units),
        sum(u.skipped for u in result.units),
    )
    return result
