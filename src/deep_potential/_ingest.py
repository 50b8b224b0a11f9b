"""Real data in: a Gaia-like table (ICRS astrometry) → quality cuts → Galactocentric catalog.h5.

Reads FITS, Parquet, CSV or VOTable through `astropy.table`, with Gaia DR3 column names
(``ra, dec, parallax, pmra, pmdec, radial_velocity`` and their ``*_error`` columns; units deg,
mas, mas/yr, km/s unless the table carries units). Distances are 1/parallax. The frame is
`astropy.coordinates.Galactocentric` with the given solar position, height and velocity
(astropy's defaults otherwise). Every dropped row is counted against the first cut that drops
it, and the cuts, the counts and the frame are stored as attributes of the catalogue.

Needs astropy: ``pip install "deep-potential[astropy]"``; Parquet also needs pyarrow and pandas
(astropy reads Parquet through both): ``pip install "deep-potential[parquet]"``.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

GAIA_COLUMNS = ("ra", "dec", "parallax", "pmra", "pmdec", "radial_velocity")
_GAIA_UNITS = {"ra": "deg", "dec": "deg", "parallax": "mas", "pmra": "mas/yr",
               "pmdec": "mas/yr", "radial_velocity": "km/s"}  # fmt: skip
FORMATS = {".fits": "fits", ".fit": "fits", ".fits.gz": "fits", ".parquet": "parquet",
           ".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".vot": "votable", ".xml": "votable",
           ".votable": "votable"}  # fmt: skip


class IngestWarning(UserWarning):
    """A requested cut or setting that breaks an assumption of the method."""


def _astropy() -> tuple[Any, Any, Any]:
    try:
        import astropy.coordinates as coord
        import astropy.table as table
        import astropy.units as u
    except ImportError as err:
        raise ImportError(
            'ingest needs astropy: pip install "deep-potential[astropy]" (or pip install astropy)'
        ) from err
    return coord, table, u


PARQUET_MODULES = ("pyarrow", "pandas")
"""What astropy's Parquet reader imports (astropy 8 refuses to read without pandas)."""


def _require_parquet() -> None:
    """Raise an ImportError naming the ``parquet`` extra when astropy cannot read Parquet."""
    import importlib.util

    missing = [m for m in PARQUET_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"reading Parquet needs {' and '.join(missing)} (astropy reads Parquet through "
            'pyarrow and pandas): pip install "deep-potential[parquet]"'
        )


@dataclasses.dataclass(frozen=True)
class Frame:
    """Galactocentric frame parameters; None = astropy's default for that parameter.

    Attributes:
        galcen_distance: Sun–Galactic-centre distance (kpc).
        z_sun: height of the Sun above the mid-plane (pc).
        v_sun: Sun's velocity (v_x, v_y, v_z) in the Galactocentric frame (km/s).
        roll: rotation about the final x-axis (deg).
    """

    galcen_distance: float | None = None
    z_sun: float | None = None
    v_sun: tuple[float, float, float] | None = None
    roll: float | None = None

    def astropy_frame(self) -> Any:
        """The `astropy.coordinates.Galactocentric` instance."""
        coord, _, u = _astropy()
        kw: dict[str, Any] = {}
        if self.galcen_distance is not None:
            kw["galcen_distance"] = self.galcen_distance * u.kpc
        if self.z_sun is not None:
            kw["z_sun"] = self.z_sun * u.pc
        if self.v_sun is not None:
            kw["galcen_v_sun"] = coord.CartesianDifferential(list(self.v_sun) * u.km / u.s)
        if self.roll is not None:
            kw["roll"] = self.roll * u.deg
        return coord.Galactocentric(**kw)

    def resolved(self) -> dict[str, Any]:
        """Every parameter as used (defaults filled in), in kpc, pc, km/s, deg."""
        import astropy

        _, _, u = _astropy()
        f = self.astropy_frame()
        vs = f.galcen_v_sun  # a CartesianDifferential or CartesianRepresentation by version
        v = (vs.d_xyz if hasattr(vs, "d_xyz") else vs.xyz).to_value(u.km / u.s)
        return {
            "frame": "astropy.coordinates.Galactocentric",
            "astropy_version": astropy.__version__,
            "galcen_distance_kpc": float(f.galcen_distance.to_value(u.kpc)),
            "z_sun_pc": float(f.z_sun.to_value(u.pc)),
            "v_sun_kms": [float(c) for c in v],
            "roll_deg": float(f.roll.to_value(u.deg)),
            "galcen_ra_deg": float(f.galcen_coord.ra.deg),
            "galcen_dec_deg": float(f.galcen_coord.dec.deg),
        }

    @staticmethod
    def from_resolved(d: Mapping[str, Any]) -> Frame:
        """Inverse of `resolved` (the galcen_coord is astropy's fixed Sgr A* position)."""
        return Frame(d["galcen_distance_kpc"], d["z_sun_pc"], tuple(d["v_sun_kms"]), d["roll_deg"])


def describe_frame(resolved: Mapping[str, Any]) -> str:
    """One line saying the frame, for logs and reports."""
    v = resolved["v_sun_kms"]
    return (
        f"Galactocentric (astropy {resolved['astropy_version']}): R_sun = "
        f"{resolved['galcen_distance_kpc']:.4g} kpc, z_sun = {resolved['z_sun_pc']:.4g} pc, "
        f"v_sun = ({v[0]:.4g}, {v[1]:.4g}, {v[2]:.4g}) km/s, roll = {resolved['roll_deg']:.4g} deg"
    )


@dataclasses.dataclass(frozen=True)
class Cuts:
    """Quality cuts, applied in this order (a row counts against the first cut it fails).

    Always applied first: finite astrometry (``missing_astrometry``), parallax > 0
    (``nonpositive_parallax``); after the parallax cut, a finite radial velocity
    (``radial_velocity_missing``: the method needs 3-D velocities).

    Attributes:
        min_parallax_over_error: keep parallax/parallax_error ≥ this (None: off). Default 5,
            where 1/parallax is a usable distance (≲ 20 % error).
        max_distance: keep 1/parallax ≤ this (kpc; None: off).
        max_rv_error: keep radial_velocity_error ≤ this (km/s; None: off).
        max_speed: keep Galactocentric |v| ≤ this (km/s; None: off). Depends on velocity, so it
            biases p(v | x): a warning says so.
    """

    min_parallax_over_error: float | None = 5.0
    max_distance: float | None = None
    max_rv_error: float | None = None
    max_speed: float | None = None

    def velocity_dependent(self) -> list[str]:
        """Names of the requested cuts that select on velocity."""
        return ["max_speed"] if self.max_speed is not None else []


@dataclasses.dataclass
class IngestResult:
    """Galactocentric positions/velocities of the kept rows and the record of what was done.

    Attributes:
        x, v: (N, 3) kpc and km/s, Galactocentric Cartesian.
        source_id: (N,) int64 ids when the table has ``source_id``, else None.
        report: ``n_input``, ``dropped`` (cut → rows), ``n_kept``, ``cuts``, ``frame``
            (resolved parameters), ``frame_text``, ``warnings``, ``source``.
    """

    x: np.ndarray
    v: np.ndarray
    source_id: np.ndarray | None
    report: dict[str, Any]

    def write(self, path: str | Path) -> Path:
        """Write catalog.h5 (``dp-catalog/1``) atomically, the report as root attributes."""
        return write_ingested(path, self)

    def summary(self) -> str:
        """Human-readable lines: the frame, the input count, every cut's drops, the kept count."""
        r = self.report
        lines = [f"frame: {r['frame_text']}", f"input rows: {r['n_input']}"]
        lines += [f"  dropped by {k}: {n}" for k, n in r["dropped"].items()]
        lines.append(f"kept: {r['n_kept']}")
        lines += [f"warning: {w}" for w in r["warnings"]]
        return "\n".join(lines)


def read_table(path: str | Path, format: str | None = None) -> Any:
    """Read a table with `astropy.table.Table.read`, the format inferred from the suffix.

    Raises:
        ImportError: astropy is missing, or a Parquet table without pyarrow and pandas (the
            message names the extra to install).
    """
    _, table, _ = _astropy()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table not found: {path}")
    if format is None:
        name = path.name.lower()
        format = next((f for s, f in FORMATS.items() if name.endswith(s)), None)
        if format is None:
            raise ValueError(f"{path}: unknown table format; pass format= (one of "
                             f"{sorted(set(FORMATS.values()))})")  # fmt: skip
    if format == "parquet":
        _require_parquet()  # astropy's own error names neither the package set nor the extra
    return table.Table.read(path, format=format)


def _column(tab: Any, name: str, columns: Mapping[str, str], u: Any) -> np.ndarray | None:
    """Float64 values of a Gaia column in its standard unit; masked entries become NaN."""
    key = columns.get(name, name)
    if key not in tab.colnames:
        return None
    col = tab[key]
    data = np.ma.filled(np.ma.asarray(col, dtype=np.float64), np.nan)
    unit = getattr(col, "unit", None)
    base = name.removesuffix("_error")
    if unit is not None and base in _GAIA_UNITS:
        data = (data * u.Unit(unit)).to_value(u.Unit(_GAIA_UNITS[base]))
    return np.asarray(data, dtype=np.float64)


def ingest_table(
    tab: Any,
    *,
    cuts: Cuts | None = None,
    frame: Frame | None = None,
    columns: Mapping[str, str] | None = None,
    source: str = "<table>",
) -> IngestResult:
    """Apply the cuts to an `astropy.table.Table` of ICRS astrometry and go Galactocentric.

    Args:
        tab: table with Gaia DR3 column names (or renamed through ``columns``).
        cuts: quality cuts (default `Cuts()`).
        frame: Galactocentric parameters (default: astropy's).
        columns: Gaia name → this table's column name, for tables with other names.
        source: where the table came from (recorded).

    Returns:
        `IngestResult`; rows without finite astrometry or with parallax ≤ 0 are dropped and
        counted too (``missing_astrometry``, ``nonpositive_parallax``).

    Raises:
        KeyError: a required column is missing.
    """
    coord, _, u = _astropy()
    cuts = Cuts() if cuts is None else cuts
    frame = Frame() if frame is None else frame
    columns = dict(columns or {})
    # ndarray or None (absent); Any because the required ones are checked for None just below
    cols: dict[str, Any] = {n: _column(tab, n, columns, u) for n in (*GAIA_COLUMNS,
                            "parallax_error", "radial_velocity_error")}  # fmt: skip
    for n in ("ra", "dec", "parallax", "pmra", "pmdec"):
        if cols[n] is None:
            raise KeyError(f"{source}: required column {columns.get(n, n)!r} is missing "
                           f"(columns: {', '.join(tab.colnames)})")  # fmt: skip
    n_in = len(tab)
    if cols["radial_velocity"] is None:
        cols["radial_velocity"] = np.full(n_in, np.nan)
    keep = np.ones(n_in, bool)
    dropped: dict[str, int] = {}

    def cut(name: str, ok: np.ndarray) -> None:
        lost = keep & ~ok
        dropped[name] = int(lost.sum())
        keep[:] = keep & ok

    finite = np.all([np.isfinite(cols[n]) for n in ("ra", "dec", "parallax", "pmra", "pmdec")],
                    axis=0)  # fmt: skip
    cut("missing_astrometry", finite)
    with np.errstate(invalid="ignore", divide="ignore"):
        cut("nonpositive_parallax", cols["parallax"] > 0)
        if cuts.min_parallax_over_error is not None:
            if cols["parallax_error"] is None:
                raise KeyError(f"{source}: min_parallax_over_error needs a parallax_error column")
            poe = cols["parallax"] / cols["parallax_error"]
            cut("parallax_over_error", poe >= cuts.min_parallax_over_error)
        cut("radial_velocity_missing", np.isfinite(cols["radial_velocity"]))
        if cuts.max_distance is not None:
            cut("max_distance", 1.0 / cols["parallax"] <= cuts.max_distance)
        if cuts.max_rv_error is not None:
            if cols["radial_velocity_error"] is None:
                raise KeyError(f"{source}: max_rv_error needs a radial_velocity_error column")
            cut("max_rv_error", cols["radial_velocity_error"] <= cuts.max_rv_error)
    rv = np.where(np.isfinite(cols["radial_velocity"]), cols["radial_velocity"], 0.0)
    idx = np.flatnonzero(keep)
    sky = coord.SkyCoord(
        ra=cols["ra"][idx] * u.deg,
        dec=cols["dec"][idx] * u.deg,
        distance=(1.0 / cols["parallax"][idx]) * u.kpc,
        pm_ra_cosdec=cols["pmra"][idx] * u.mas / u.yr,
        pm_dec=cols["pmdec"][idx] * u.mas / u.yr,
        radial_velocity=rv[idx] * u.km / u.s,
        frame="icrs",
    )
    gc = sky.transform_to(frame.astropy_frame())
    x = np.stack([gc.x.to_value(u.kpc), gc.y.to_value(u.kpc), gc.z.to_value(u.kpc)], axis=1)
    v = np.stack([gc.v_x.to_value(u.km / u.s), gc.v_y.to_value(u.km / u.s),
                  gc.v_z.to_value(u.km / u.s)], axis=1)  # fmt: skip
    warn: list[str] = []
    if cuts.max_speed is not None:
        ok = np.linalg.norm(v, axis=1) <= cuts.max_speed
        sub = keep.copy()
        sub[idx] = ok
        cut("max_speed", sub)
        x, v, idx = x[ok], v[ok], idx[ok]
    for name in cuts.velocity_dependent():
        msg = (f"cut {name!r} selects on velocity: the conditional method assumes a selection "
               "that depends on position only, so p(v | x) of the kept stars is biased")  # fmt: skip
        warnings.warn(msg, IngestWarning, stacklevel=2)
        warn.append(msg)
    sid = None
    sid_col = columns.get("source_id", "source_id")
    if sid_col in tab.colnames:
        sid = np.asarray(np.ma.filled(np.ma.asarray(tab[sid_col]), -1), np.int64)[idx]
    resolved = frame.resolved()
    report = {
        "source": str(source),
        "n_input": n_in,
        "dropped": dropped,
        "n_kept": len(idx),
        "cuts": dataclasses.asdict(cuts),
        "frame": resolved,
        "frame_text": describe_frame(resolved),
        "warnings": warn,
    }
    assert n_in - sum(dropped.values()) == len(idx)  # every row is kept or counted once
    return IngestResult(x=x, v=v, source_id=sid, report=report)


def ingest(
    path: str | Path,
    out: str | Path,
    *,
    cuts: Cuts | None = None,
    frame: Frame | None = None,
    columns: Mapping[str, str] | None = None,
    format: str | None = None,
) -> IngestResult:
    """Read a table file, apply the cuts, write ``out`` (catalog.h5); returns the result."""
    res = ingest_table(read_table(path, format), cuts=cuts, frame=frame, columns=columns,
                       source=str(path))  # fmt: skip
    if res.x.shape[0] == 0:
        raise ValueError(f"{path}: no rows survive the cuts\n{res.summary()}")
    res.write(out)
    return res


def write_ingested(path: str | Path, res: IngestResult) -> Path:
    """The dp-catalog/1 layout (/stars/x, /stars/v), written by dp-mock's `write_catalog` (the
    format's one writer), plus root attrs ``ingest`` (JSON of the report), ``frame`` (JSON of
    the resolved frame), ``frame_text``; and ``/ingest/source_id`` when the table had ids."""
    import dp_mock

    attrs = {
        "ingest": json.dumps(res.report),
        "frame": json.dumps(res.report["frame"]),
        "frame_text": res.report["frame_text"],
    }
    extra = {} if res.source_id is None else {"ingest/source_id": res.source_id}
    stars = {"x": np.asarray(res.x, np.float64), "v": np.asarray(res.v, np.float64)}
    return dp_mock.write_catalog(path, stars, attrs=attrs, extra=extra)


def read_frame(path: str | Path) -> dict[str, Any] | None:
    """The resolved frame stored in a catalog.h5 by ingest, or None (e.g. a mock)."""
    with h5py.File(path, "r") as f:
        text = f.attrs.get("frame")
    return None if text is None else json.loads(text)


def catalog_to_skycoord(
    x: np.ndarray | str | Path, v: np.ndarray | None = None, *, frame: Frame | None = None
) -> Any:
    """Galactocentric positions/velocities (or a catalog.h5) → an ICRS `SkyCoord`.

    Args:
        x: (N, 3) kpc, or the path of a catalog.h5 (then ``v`` comes from the file too, and
            the frame from its ``frame`` attribute when ``frame`` is not given).
        v: (N, 3) km/s.
        frame: the Galactocentric parameters the Cartesian values are in (default: astropy's).
    """
    coord, _, u = _astropy()
    if isinstance(x, str | Path):
        path = Path(x)
        with h5py.File(path, "r") as f:
            xs, vs = np.asarray(f["stars/x"][()]), np.asarray(f["stars/v"][()])  # pyright: ignore[reportIndexIssue]  # h5py types f[...] as Group | Dataset | Datatype
        stored = read_frame(path)
        if frame is None and stored is not None:
            frame = Frame.from_resolved(stored)
        x, v = xs, vs
    if v is None:
        raise ValueError("v (N, 3) km/s is required with an array x")
    frame = Frame() if frame is None else frame
    x, v = np.asarray(x, np.float64), np.asarray(v, np.float64)
    gc = coord.SkyCoord(
        x=x[:, 0] * u.kpc, y=x[:, 1] * u.kpc, z=x[:, 2] * u.kpc,
        v_x=v[:, 0] * u.km / u.s, v_y=v[:, 1] * u.km / u.s, v_z=v[:, 2] * u.km / u.s,
        frame=frame.astropy_frame(), representation_type="cartesian",
        differential_type="cartesian",
    )  # fmt: skip
    return gc.transform_to(coord.ICRS())


def add_parser(sub: Any) -> None:
    """The ``deep-potential ingest`` subcommand's arguments."""
    p = sub.add_parser(
        "ingest",
        help="Gaia-like table (FITS, Parquet, CSV, VOTable) -> Galactocentric catalog.h5",
        description=__doc__,
    )
    p.add_argument("table", type=Path, metavar="TABLE", help="ICRS astrometry, Gaia DR3 names")
    p.add_argument("--out", type=Path, required=True, metavar="CATALOG.h5")
    p.add_argument("--format", default=None, help="astropy format (default: from the suffix)")
    p.add_argument("--min-parallax-over-error", type=float, default=5.0, metavar="F",
                   help="keep parallax/parallax_error >= F (default 5; 0 disables)")  # fmt: skip
    p.add_argument("--max-distance", type=float, default=None, metavar="KPC",
                   help="keep 1/parallax <= KPC")  # fmt: skip
    p.add_argument("--max-rv-error", type=float, default=None, metavar="KMS")
    p.add_argument("--max-speed", type=float, default=None, metavar="KMS",
                   help="keep Galactocentric |v| <= KMS (velocity-dependent: warns)")  # fmt: skip
    p.add_argument("--galcen-distance", type=float, default=None, metavar="KPC",
                   help="Sun-Galactic centre distance (default: astropy's)")  # fmt: skip
    p.add_argument("--z-sun", type=float, default=None, metavar="PC")
    p.add_argument("--v-sun", type=float, nargs=3, default=None, metavar=("VX", "VY", "VZ"),
                   help="solar velocity in the Galactocentric frame, km/s")  # fmt: skip
    p.add_argument("--roll", type=float, default=None, metavar="DEG")
    p.add_argument("--column", action="append", default=[], metavar="GAIA=NAME",
                   help="use column NAME for the Gaia column GAIA (repeatable)")  # fmt: skip


def run_cli(args: Any) -> int:
    """Run ``deep-potential ingest`` from parsed arguments; returns the exit status."""
    import sys

    columns = {}
    for item in args.column:
        gaia, sep, name = item.partition("=")
        if not sep:
            print(f"deep-potential: --column expects GAIA=NAME, got {item!r}", file=sys.stderr)
            return 2
        columns[gaia] = name
    poe = args.min_parallax_over_error
    cuts = Cuts(min_parallax_over_error=poe if poe and poe > 0 else None,
                max_distance=args.max_distance, max_rv_error=args.max_rv_error,
                max_speed=args.max_speed)  # fmt: skip
    frame = Frame(args.galcen_distance, args.z_sun,
                  tuple(args.v_sun) if args.v_sun else None, args.roll)  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", IngestWarning)
            res = ingest(args.table, args.out, cuts=cuts, frame=frame, columns=columns,
                         format=args.format)  # fmt: skip
    except (FileNotFoundError, KeyError, ValueError, ImportError, OSError) as err:
        print(f"deep-potential: ingest error: {err}", file=sys.stderr)
        return 2
    print(res.summary())
    print(f"catalogue: {args.out}")
    return 0
