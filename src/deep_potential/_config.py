"""TOML pipeline config -> validated, frozen dataclasses (every check runs before any work).

The umbrella's own sections (``[run]``, ``[data]``, ``[flows]``'s two keys, ``[gradients]``,
``[report]``) are declared with the same strict mechanism as the packages' configs
(`deep_potential._strict`, a copy of each package's): types and ranges next to each field, no
coercion, finite numbers. Package tables become the packages' own config objects, which
validate themselves; every error is a `ConfigError` of one line naming the TOML section and key.
``[data]`` is validated in full here too (the file, its datasets, their shapes and finiteness),
so that ``deep-potential check`` and ``deep-potential run`` stop before any work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from ._strict import strict_config

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

TOP_SECTIONS = ("run", "mock", "data", "flows", "gradients", "cbe", "report")
#: package keys that were renamed: old -> new (the error names the new key)
RENAMED_KEYS = {"lr_final_fraction": "final_lr_fraction"}

_Count = Annotated[int, Field(ge=1)]
_section = strict_config(label="key '{field}'")


class ConfigError(ValueError):
    """A config key is unknown, missing, of the wrong type or has an impossible value."""


def known_methods() -> tuple[str, ...]:
    """The CBE methods, in their canonical order: dp-cbe's table (``dp_cbe.METHODS``).

    Read when needed, like every package here, so that ``import deep_potential`` does not
    import JAX.
    """
    import dp_cbe

    return dp_cbe.METHODS


@_section
class RunSection:
    """``[run]``: the master seed and the methods to run (any of vanilla, selection, conditional)."""

    seed: Annotated[int, Field(ge=0)] = 0
    methods: tuple[str, ...] = Field(default_factory=known_methods)  # checked by _parse_run


@_section
class DataSection:
    """``[data]``: an existing catalogue replacing the mock (path resolved against the config)."""

    catalog: Annotated[Path, Field(strict=False)]  # a TOML string
    r_max: Annotated[float, Field(gt=0)] | None = None  # kpc; default: the farthest star


@_section
class FlowsSection:
    """``[flows]``'s own keys (besides the ``[flows.spatial]`` and ``[flows.conditional]`` tables)."""

    vanilla_weight_clip: Annotated[float, Field(ge=1)] = 100.0
    conditional_members: Annotated[int, Field(ge=1, le=64)] = 1
    # each member trains on its own bootstrap resample of the stars, so that the members'
    # spread (the error band) includes the catalogue's sampling noise, not only the training's;
    # unset: on for an ensemble (members >= 2)
    conditional_bootstrap: bool | None = None

    def __post_init__(self) -> None:
        if self.conditional_bootstrap and self.conditional_members < 2:
            raise ValueError(
                "conditional_bootstrap needs conditional_members >= 2 (an ensemble to resample)"
            )


@_section
class GradientsSection:
    """``[gradients]``: how many DF-gradient samples to draw from the flows per method."""

    n: _Count = 65536
    # a fraction of the positions uniform in the observed volume; None:
    # deep_potential.default_uniform_fraction (0.25 for the conditional method, whose
    # positions are otherwise the stars', too few where they thin out; 0 for the others)
    uniform_fraction: Annotated[float, Field(ge=0, le=1)] | None = None
    # where those points lie: "stars" (the volume the observed stars fill,
    # deep_potential.uniform_in_stars) or "ball" (r < r_max); vanilla and selection: "ball"
    uniform_support: Literal["stars", "ball"] = "stars"
    # conditional method: n / K positions with K velocities each; K >= 4 lets the potential
    # fit solve for ∇ln n at each position ([cbe.conditional] ln_n_gradient = "profile")
    velocities_per_position: _Count = 1
    batch_size: _Count = 4096
    oracle: bool = False  # replace the flows' gradients by the mock's exact ones (diagnostic)

    def uniform_fraction_for(self, method: str) -> float:
        """``uniform_fraction``, or its automatic value for ``method`` when unset."""
        from ._gradients import default_uniform_fraction

        if self.uniform_fraction is not None:
            return self.uniform_fraction
        return default_uniform_fraction(method)

    def __post_init__(self) -> None:
        if self.n % self.velocities_per_position:
            raise ValueError(
                f"n = {self.n} must be a multiple of velocities_per_position = "
                f"{self.velocities_per_position}"
            )


@_section
class ReportSection:
    """``[report]``: evaluation points, binning and figures."""

    n_eval: _Count = 16384  # uniform-in-volume evaluation points inside r_max
    s_cut: Annotated[float, Field(ge=0, lt=1)] = 0.01  # keep S_true > s_cut (design.md §8)
    r_bins: _Count = 8
    s_bins: _Count = 6
    n_logp: _Count = 2048  # stars for the p(v|x) log-density residuals (flow ODE solves)
    plane_resolution: _Count = 96  # pixels per side of the z = 0 maps
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
        conditional_bootstrap: each member trains on its own bootstrap resample of the stars
            (multinomial counts as weights), so the band includes the catalogue's noise (the
            default for an ensemble: with seeds alone the band was 5–13 times too narrow at
            the demo's edge, benchmarks/RESULTS.md).
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
    conditional_bootstrap: bool = False

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


def _own_section(cls: type, raw: Any, section: str, *, also: tuple[str, ...] = ()) -> Any:
    """Build one of the umbrella's own sections; ``also`` names the section's sub-tables."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise _fail(section, f"expected a table, got {type(raw).__name__}")
    known = [*(f.name for f in dataclasses.fields(cls)), *also]
    for k in raw:
        if k not in known:
            raise _fail(section, f"unknown key {k!r} in [{section}] (known: {', '.join(known)})")
    try:
        return cls(**raw)
    except ValueError as e:
        raise _fail(section, str(e)) from None


def _package_config(cls: Any, d: Mapping[str, Any], section: str) -> Any:
    if dataclasses.is_dataclass(cls):
        known = [f.name for f in dataclasses.fields(cls)]
        for k in d:
            if k in RENAMED_KEYS and RENAMED_KEYS[k] in known:
                raise _fail(section, f"key {k!r} in [{section}] is now {RENAMED_KEYS[k]!r}")
            if k not in known:
                raise _fail(
                    section, f"unknown key {k!r} in [{section}] (known: {', '.join(known)})"
                )
    try:
        return cls.from_dict(dict(d))  # pyright: ignore[reportAttributeAccessIssue]  # every package config class has from_dict; is_dataclass narrowed cls: Any
    except (ValueError, TypeError, KeyError) as e:
        raise _fail(section, str(e)) from e


def _parse_run(raw: Any) -> RunSection:
    raw = dict(raw or {})
    known = known_methods()
    methods = raw.pop("methods", list(known))
    if not isinstance(methods, list | tuple) or not methods:
        raise _fail("run", f"key 'methods' must be a non-empty list of {list(known)}")
    for m in methods:
        if m not in known:
            raise _fail("run", f"key 'methods': unknown method {m!r} (known: {list(known)})")
    if len(set(methods)) != len(methods):
        raise _fail("run", f"key 'methods' lists a method twice: {methods}")
    raw["methods"] = tuple(m for m in known if m in methods)
    return _own_section(RunSection, raw, "run")


def _parse_mock(raw: Any, seed: int) -> Any:
    import dp_mock

    raw = dict(raw or {})
    preset = raw.pop("preset", None)
    base: dict[str, Any] = {}
    if preset is not None:
        try:
            base = dp_mock.preset(preset).to_dict()
        except (ValueError, KeyError) as e:
            raise _fail("mock", f"key 'preset': {e}") from e
    if "seed" not in raw:  # the mock's seed follows [run] seed unless [mock] sets its own
        base["seed"] = seed
    return _package_config(dp_mock.MockConfig, {**base, **raw}, "mock")


def _parse_data(raw: Any, base_dir: Path, methods: tuple[str, ...]) -> DataSection:
    if isinstance(raw, Mapping) and raw.get("catalog") == "":
        raise _fail("data", "key 'catalog' must be a path, got ''")
    data = _own_section(DataSection, raw, "data")
    path = Path(data.catalog).expanduser()
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    if not path.is_file():
        raise _fail("data", f"key 'catalog': no such file {str(path)!r}")
    check_catalog(path, methods)
    return dataclasses.replace(data, catalog=path)


def check_catalog(path: Path, methods: tuple[str, ...] | None = None) -> int:
    """Validate a ``[data]`` catalogue for the methods to run (None: all); returns its number
    of stars.

    The checks are the pipeline's own reader's (`dp_mock.read_catalog`: the ``dp-catalog/1``
    schema, ``/stars/x`` and ``/stars/v`` of shape (N, 3), every other ``/stars`` column of
    shape (N,), all of it finite), plus: at least one star; ``/stars/weight`` > 0 and
    ``/stars/selection`` in (0, 1] where present; the 1/S weights that ``vanilla`` needs; and a
    ``/truth`` group, if there is one, that rebuilds (the report compares with it).

    Raises:
        ConfigError: one line, ``[data]: key 'catalog': …``, naming the dataset at fault.
    """
    import dp_mock
    import numpy as np

    methods = known_methods() if methods is None else methods

    def fail(msg: str) -> ConfigError:
        return _fail("data", f"key 'catalog': {msg}")

    try:
        stars = dp_mock.read_catalog(path)
    except (KeyError, ValueError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise fail(str(msg)) from None
    n = len(stars["x"])
    if n == 0:
        raise fail(f"{path}: /stars holds no stars")
    if "weight" in stars and not np.all(stars["weight"] > 0):
        bad = int(np.sum(~(stars["weight"] > 0)))
        raise fail(f"{path}: /stars/weight has {bad} rows ≤ 0 of {n} (weights must be > 0)")
    if "selection" in stars:
        s = stars["selection"]
        bad = int(np.sum(~((s > 0) & (s <= 1))))
        if bad:
            raise fail(f"{path}: /stars/selection has {bad} rows outside (0, 1] of {n}")
    if "vanilla" in methods and "weight" not in stars and "selection" not in stars:
        raise _fail(
            "run",
            "method 'vanilla' needs 1/S weights: the [data] catalog has neither "
            "/stars/selection nor /stars/weight (drop 'vanilla' from [run] methods)",
        )
    import h5py

    with h5py.File(path, "r") as f:
        truth = "truth" in f
    if truth:
        try:
            dp_mock.load_truth(path)
        except (KeyError, ValueError, OSError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise fail(f"its /truth group does not rebuild: {msg}") from None
    return n


def _parse_flows(raw: Any) -> tuple[Any, Any, float, int, bool]:
    import dp_flows

    raw = dict(raw or {})
    tables = {k: raw.pop(k) for k in ("spatial", "conditional") if k in raw}
    own = _own_section(FlowsSection, raw, "flows", also=("spatial", "conditional"))
    spatial = _package_config(dp_flows.FlowConfig, tables.get("spatial", {}), "flows.spatial")
    cond = _package_config(dp_flows.FlowConfig, tables.get("conditional", {}), "flows.conditional")
    bootstrap = own.conditional_bootstrap
    if bootstrap is None:  # unset: resample the stars whenever there is an ensemble
        bootstrap = own.conditional_members > 1
    return spatial, cond, own.vanilla_weight_clip, own.conditional_members, bootstrap


def _parse_cbe(raw: Any, methods: tuple[str, ...]) -> dict[str, Any]:
    import dp_cbe

    raw = dict(raw or {})
    subs = {m: raw.pop(m) for m in dp_cbe.METHODS if m in raw}
    for m, sub in subs.items():
        if not isinstance(sub, Mapping):
            raise _fail(f"cbe.{m}", "expected a table")
    out = {}
    for m in dp_cbe.METHODS:
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
    mock = None if "data" in d else _parse_mock(d.get("mock"), run.seed)
    spatial, cond, clip, members, bootstrap = _parse_flows(d.get("flows"))
    grads = _own_section(GradientsSection, d.get("gradients"), "gradients")
    cbe = _parse_cbe(d.get("cbe"), run.methods)
    report = _own_section(ReportSection, d.get("report"), "report")
    cond_fit = cbe.get("conditional")
    if (cond_fit is not None and cond_fit.ln_n_gradient == "profile"
            and grads.velocities_per_position < 4):  # fmt: skip
        raise _fail(
            "cbe.conditional",
            "ln_n_gradient = 'profile' needs [gradients] velocities_per_position >= 4 (it is "
            f"{grads.velocities_per_position})",
        )
    if grads.oracle and "data" in d:
        raise _fail("gradients", "key 'oracle' needs the mock's truth: use [mock], not [data]")
    # the catalogue last: every cheap check has passed before its (possibly large) file is read
    data = _parse_data(d["data"], Path(base_dir), run.methods) if "data" in d else None
    return PipelineConfig(
        run, mock, data, spatial, cond, clip, grads, cbe, report, members, bootstrap
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
