"""TOML pipeline config -> validated, frozen dataclasses (every check runs before any work)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

METHODS: tuple[str, ...] = ("vanilla", "selection", "conditional")
TOP_SECTIONS = ("run", "mock", "data", "flows", "gradients", "cbe", "report")


class ConfigError(ValueError):
    """A config key is unknown, missing, of the wrong type or has an impossible value."""


@dataclasses.dataclass(frozen=True)
class RunSection:
    """``[run]``: the master seed and the methods to run (any of vanilla, selection, conditional)."""

    seed: int = 0
    methods: tuple[str, ...] = METHODS


@dataclasses.dataclass(frozen=True)
class DataSection:
    """``[data]``: an existing catalogue replacing the mock (path resolved against the config)."""

    catalog: Path
    r_max: float | None = None  # kpc; default: the largest star radius in the catalogue


@dataclasses.dataclass(frozen=True)
class GradientsSection:
    """``[gradients]``: how many DF-gradient samples to draw from the flows per method."""

    n: int = 65536
    uniform_fraction: float = 0.0
    batch_size: int = 4096
    oracle: bool = False  # replace the flows' gradients by the mock's exact ones (diagnostic)


@dataclasses.dataclass(frozen=True)
class ReportSection:
    """``[report]``: evaluation points, binning and figures."""

    n_eval: int = 16384  # uniform-in-volume evaluation points inside r_max
    s_cut: float = 0.01  # keep points with S_true > s_cut (docs/design.md §8)
    r_bins: int = 8
    s_bins: int = 6
    n_logp: int = 2048  # stars for the p(v|x) log-density residuals (flow ODE solves)
    plane_resolution: int = 96  # pixels per side of the z = 0 maps
    figures: bool = True
    bands: bool = True  # with [flows] conditional_members > 1: per-member fits give error bands


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline config. Package sections hold the packages' own config objects.

    Attributes:
        run, data, gradients, report: the umbrella's own sections.
        mock: a ``dp_mock.MockConfig`` (None when ``[data]`` replaces the mock).
        flow_spatial, flow_conditional: ``dp_flows.FlowConfig`` objects.
        vanilla_weight_clip: the 1/S_true weights of the vanilla spatial flow are clipped here.
        conditional_members: p(v|x) flows trained from different seeds (an ensemble; 1 =
            one flow). Gradients are their robust mean; with ``[report] bands`` every member
            also gets its own conditional potential fit, whose spread is the error band.
        cbe: method -> ``dp_cbe.FitConfig`` (shared ``[cbe]`` keys merged with ``[cbe.METHOD]``).
    """

    run: RunSection
    mock: Any | None
    data: DataSection | None
    flow_spatial: Any
    flow_conditional: Any
    vanilla_weight_clip: float
    gradients: GradientsSection
    cbe: Mapping[str, Any]
    report: ReportSection
    conditional_members: int = 1

    @property
    def methods(self) -> tuple[str, ...]:
        return self.run.methods

    @property
    def conditional_flows(self) -> tuple[str, ...]:
        """Names of the p(v|x) ensemble's members: conditional, conditional_m1, …"""
        extra = [f"conditional_m{k}" for k in range(1, self.conditional_members)]
        return ("conditional", *extra)

    @property
    def band_fits(self) -> tuple[str, ...]:
        """Names of the per-member conditional fits whose spread is the error band."""
        if (
            self.report.bands
            and "conditional" in self.methods
            and self.conditional_members > 1
            and not self.gradients.oracle  # exact gradients have no member spread
        ):
            return tuple(f"conditional_member{k}" for k in range(self.conditional_members))
        return ()

    @property
    def flows_needed(self) -> tuple[str, ...]:
        """Flow names this run trains: conditional always; spatial for selection; weighted for vanilla."""
        out = list(self.conditional_flows)
        if "selection" in self.methods:
            out.append("spatial")
        if "vanilla" in self.methods:
            out.append("spatial_weighted")
        return tuple(out)


def _fail(section: str, msg: str) -> ConfigError:
    return ConfigError(f"[{section}]: {msg}")


def _own_section(cls: type, raw: Any, section: str) -> Any:
    """Build one of the umbrella's own dataclasses, checking unknown keys and types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise _fail(section, f"expected a table, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in raw:
        if k not in fields:
            raise _fail(section, f"unknown key {k!r} in [{section}] (known: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING:
                raise _fail(section, f"missing required key {name!r}")
            continue
        v = raw[name]
        want = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(want, bool):
            ok = isinstance(v, bool)
        elif isinstance(want, int):
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif isinstance(want, float) or name == "r_max":
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            v = float(v)
        elif name == "catalog":
            ok = isinstance(v, str) and bool(v)
        else:
            ok = True
        if not ok:
            raise _fail(section, f"key {name!r} has impossible value {raw[name]!r}")
        kwargs[name] = v
    return cls(**kwargs)


def _positive(section: str, obj: Any, *names: str) -> None:
    for n in names:
        if not getattr(obj, n) > 0:
            raise _fail(section, f"key {n!r} must be > 0, got {getattr(obj, n)!r}")


def _package_config(cls: Any, d: Mapping[str, Any], section: str) -> Any:
    if dataclasses.is_dataclass(cls):
        known = [f.name for f in dataclasses.fields(cls)]
        for k in d:
            if k not in known:
                raise _fail(
                    section, f"unknown key {k!r} in [{section}] (known: {', '.join(known)})"
                )
    try:
        return cls.from_dict(dict(d))
    except (ValueError, TypeError, KeyError) as e:
        raise _fail(section, str(e)) from e


def _parse_run(raw: Any) -> RunSection:
    raw = dict(raw or {})
    methods = raw.pop("methods", list(METHODS))
    if not isinstance(methods, list | tuple) or not methods:
        raise _fail("run", f"key 'methods' must be a non-empty list of {list(METHODS)}")
    for m in methods:
        if m not in METHODS:
            raise _fail("run", f"key 'methods': unknown method {m!r} (known: {list(METHODS)})")
    if len(set(methods)) != len(methods):
        raise _fail("run", f"key 'methods' lists a method twice: {methods}")
    run = _own_section(RunSection, raw, "run")
    if run.seed < 0:
        raise _fail("run", f"key 'seed' must be >= 0, got {run.seed}")
    return dataclasses.replace(run, methods=tuple(m for m in METHODS if m in methods))


def _parse_mock(raw: Any, seed: int) -> Any:
    import dp_mock

    raw = dict(raw or {})
    preset = raw.pop("preset", None)
    base: dict[str, Any] = {}
    if preset is not None:
        make = getattr(dp_mock, "preset", None) or dp_mock.MockConfig.preset
        try:
            base = make(preset).to_dict()
        except (ValueError, KeyError) as e:
            raise _fail("mock", f"key 'preset': {e}") from e
    if "seed" not in raw:  # the mock's seed follows [run] seed unless [mock] sets its own
        base["seed"] = seed
    return _package_config(dp_mock.MockConfig, {**base, **raw}, "mock")


def _parse_data(raw: Any, base_dir: Path) -> DataSection:
    data = _own_section(DataSection, raw, "data")
    path = Path(data.catalog).expanduser()
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    if not path.is_file():
        raise _fail("data", f"key 'catalog': no such file {str(path)!r}")
    if data.r_max is not None and data.r_max <= 0:
        raise _fail("data", f"key 'r_max' must be > 0, got {data.r_max}")
    return dataclasses.replace(data, catalog=path)


def _parse_flows(raw: Any) -> tuple[Any, Any, float, int]:
    import dp_flows

    raw = dict(raw or {})
    clip = raw.pop("vanilla_weight_clip", 100.0)
    if isinstance(clip, bool) or not isinstance(clip, int | float) or not clip >= 1:
        raise _fail("flows", f"key 'vanilla_weight_clip' must be a number >= 1, got {clip!r}")
    members = raw.pop("conditional_members", 1)
    if isinstance(members, bool) or not isinstance(members, int) or not 1 <= members <= 64:
        raise _fail(
            "flows", f"key 'conditional_members' must be an integer in [1, 64], got {members!r}"
        )
    for k in raw:
        if k not in ("spatial", "conditional"):
            raise _fail(
                "flows",
                f"unknown key {k!r} in [flows] (known: spatial, conditional, "
                "conditional_members, vanilla_weight_clip)",
            )
    spatial = _package_config(dp_flows.FlowConfig, raw.get("spatial", {}), "flows.spatial")
    cond = _package_config(dp_flows.FlowConfig, raw.get("conditional", {}), "flows.conditional")
    return spatial, cond, float(clip), members


def _parse_cbe(raw: Any, methods: tuple[str, ...]) -> dict[str, Any]:
    import dp_cbe

    raw = dict(raw or {})
    subs = {m: raw.pop(m) for m in METHODS if m in raw}
    for m, sub in subs.items():
        if not isinstance(sub, Mapping):
            raise _fail(f"cbe.{m}", "expected a table")
    out = {}
    for m in METHODS:
        merged = {**raw, **subs.get(m, {})}
        cfg = _package_config(dp_cbe.FitConfig, merged, f"cbe.{m}" if m in subs else "cbe")
        if m in methods:
            out[m] = cfg
    return out


def config_from_dict(d: Mapping[str, Any], *, base_dir: Path | str = ".") -> PipelineConfig:
    """Validate a parsed TOML document. Raises ConfigError naming the section and key."""
    for k in d:
        if k not in TOP_SECTIONS:
            raise ConfigError(f"unknown section [{k}] (known: {', '.join(TOP_SECTIONS)})")
    run = _parse_run(d.get("run"))
    if "data" in d and "mock" in d:
        raise ConfigError("[data] and [mock] are exclusive: [data] catalog replaces the mock")
    data = _parse_data(d["data"], Path(base_dir)) if "data" in d else None
    mock = None if data is not None else _parse_mock(d.get("mock"), run.seed)
    spatial, cond, clip, members = _parse_flows(d.get("flows"))
    grads = _own_section(GradientsSection, d.get("gradients"), "gradients")
    _positive("gradients", grads, "n", "batch_size")
    if not 0.0 <= grads.uniform_fraction <= 1.0:
        raise _fail(
            "gradients", f"key 'uniform_fraction' must be in [0, 1], got {grads.uniform_fraction}"
        )
    cbe = _parse_cbe(d.get("cbe"), run.methods)
    report = _own_section(ReportSection, d.get("report"), "report")
    _positive("report", report, "n_eval", "r_bins", "s_bins", "n_logp", "plane_resolution")
    if not 0.0 <= report.s_cut < 1.0:
        raise _fail("report", f"key 's_cut' must be in [0, 1), got {report.s_cut}")
    if grads.oracle and data is not None:
        raise _fail("gradients", "key 'oracle' needs the mock's truth: use [mock], not [data]")
    if data is not None and "vanilla" in run.methods:
        _check_catalog_has_weights(data.catalog)
    return PipelineConfig(run, mock, data, spatial, cond, clip, grads, cbe, report, members)


def _check_catalog_has_weights(path: Path) -> None:
    import h5py

    with h5py.File(path, "r") as f:
        stars = f.get("stars")
        if stars is None or ("selection" not in stars and "weight" not in stars):
            raise _fail(
                "run",
                "method 'vanilla' needs 1/S weights: the [data] catalog has neither "
                "/stars/selection nor /stars/weight (drop 'vanilla' from [run] methods)",
            )


def load_config(path: Path | str) -> PipelineConfig:
    """Read and validate a TOML pipeline config (relative paths resolve against its folder)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    return config_from_dict(doc, base_dir=path.parent)


def section_dict(cfg: Any) -> Any:
    """A JSON-able canonical form of a config object (for stage hashes and manifests)."""
    if cfg is None:
        return None
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    if dataclasses.is_dataclass(cfg):
        return {k: section_dict(v) for k, v in dataclasses.asdict(cfg).items()}  # type: ignore[arg-type]
    if isinstance(cfg, Path):
        return str(cfg)
    if isinstance(cfg, tuple | list):
        return [section_dict(v) for v in cfg]
    return cfg
