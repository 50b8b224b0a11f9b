"""A dp-mock catalogue written as a Gaia table (observer off-centre) and ingested back runs
through `deep-potential run` to the same answer as the Cartesian catalogue itself."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import dp_mock
import h5py
import numpy as np
import pytest

pytest.importorskip("astropy", reason="deep-potential ingest needs the optional [astropy] extra")
import astropy.coordinates as coord
import astropy.units as u
from astropy.table import Table
from astropy.utils import iers

from deep_potential._cli import main

iers.conf.auto_download = False  # no network: Galactocentric needs no IERS tables anyway

TINY = Path(__file__).with_name("tiny.toml")
# The Sun 4 kpc from the centre of the demo sphere (r_max = 8 kpc): stars all round it, from
# 0.4 to 12 kpc away, and a solar motion of 240 km/s to remove again.
R_SUN, Z_SUN, V_SUN = 4.0, 25.0, (11.1, 232.24, 7.25)  # kpc, pc, km/s
FRAME_ARGS = ["--galcen-distance", str(R_SUN), "--z-sun", str(Z_SUN), "--v-sun",
              *map(str, V_SUN), "--roll", "0", "--min-parallax-over-error", "5"]  # fmt: skip


def _gaia_table(x: np.ndarray, v: np.ndarray) -> Table:
    """ICRS astrometry of Galactocentric (x, v) in the test's frame, straight from astropy."""
    frame = coord.Galactocentric(
        galcen_distance=R_SUN * u.kpc, z_sun=Z_SUN * u.pc, roll=0 * u.deg,
        galcen_v_sun=coord.CartesianDifferential(list(V_SUN) * u.km / u.s),
    )  # fmt: skip
    gc = coord.SkyCoord(x=x[:, 0] * u.kpc, y=x[:, 1] * u.kpc, z=x[:, 2] * u.kpc,
                        v_x=v[:, 0] * u.km / u.s, v_y=v[:, 1] * u.km / u.s,
                        v_z=v[:, 2] * u.km / u.s, frame=frame,
                        representation_type="cartesian", differential_type="cartesian")  # fmt: skip
    icrs = gc.transform_to(coord.ICRS())
    plx = 1.0 / icrs.distance.to_value(u.kpc)
    t = Table()
    t["source_id"] = np.arange(len(x), dtype=np.int64)
    t["ra"], t["dec"] = icrs.ra.deg, icrs.dec.deg
    t["parallax"], t["parallax_error"] = plx, plx / 100.0  # passes the default cut (≥ 5)
    t["pmra"] = icrs.pm_ra_cosdec.to_value(u.mas / u.yr)
    t["pmdec"] = icrs.pm_dec.to_value(u.mas / u.yr)
    t["radial_velocity"] = icrs.radial_velocity.to_value(u.km / u.s)
    return t


def _config(tmp: Path, name: str, catalog: Path) -> Path:
    """tiny.toml without its [mock], the conditional method only, on ``catalog``."""
    text = TINY.read_text()
    text = text.split("[mock]")[0] + text.split("chunk_size = 16384")[1]
    text = text.replace("seed = 1", 'seed = 1\nmethods = ["conditional"]')
    # the volume is the mock's r < 8 kpc for both (not the farthest star's round-off radius)
    path = tmp / f"{name}.toml"
    path.write_text(text + f'\n[data]\ncatalog = "{catalog.name}"\nr_max = 8.0\n')
    return path


def _numbers(tree: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a JSON tree, by its path."""
    if isinstance(tree, dict):
        return {
            k: v for key, sub in tree.items() for k, v in _numbers(sub, f"{prefix}/{key}").items()
        }
    if isinstance(tree, list):
        return {
            k: v for i, sub in enumerate(tree) for k, v in _numbers(sub, f"{prefix}/{i}").items()
        }
    if isinstance(tree, bool) or not isinstance(tree, int | float):
        return {}
    return {prefix: float(tree)}


@pytest.mark.slow
def test_gaia_table_of_a_mock_runs_like_the_cartesian_file(tmp_path: Path) -> None:
    cfg = dp_mock.preset("demo").replace(n_observed=4096, dust_grid=32, chunk_size=16384, seed=1)
    stars = dp_mock.read_catalog(
        dp_mock.generate_catalog(cfg, tmp_path / "mock.h5", progress=False)
    )
    x, v = np.asarray(stars["x"], np.float64), np.asarray(stars["v"], np.float64)
    cart = tmp_path / "cartesian.h5"
    with h5py.File(cart, "w") as f:  # the same stars, no truth: the report of real data
        f.attrs["schema"] = "dp-catalog/1"
        f.attrs["units"] = "x: kpc; v: km/s"
        f["stars/x"], f["stars/v"] = x, v
    table = tmp_path / "gaia.fits"
    _gaia_table(x, v).write(table)
    ingested = tmp_path / "ingested.h5"
    assert main(["ingest", str(table), "--out", str(ingested), *FRAME_ARGS]) == 0
    with h5py.File(ingested, "r") as f:
        xi, vi = np.asarray(f["stars/x"]), np.asarray(f["stars/v"])
        report = json.loads(f.attrs["ingest"])
        np.testing.assert_array_equal(f["ingest/source_id"][()], np.arange(len(x)))
    assert report["n_kept"] == len(x) and report["frame"]["galcen_distance_kpc"] == R_SUN
    # Two float64 rotations and translations there and back, and the parallax 1/d: round-off
    # only. Measured max |Δx| = 1.0e-14 kpc (|x| ≤ 8), max |Δv| = 9.7e-13 km/s (|v| up to
    # 1260 km/s, plus the 240 km/s solar motion); the bounds leave 100× for other platforms.
    assert np.abs(xi - x).max() < 1e-12
    assert np.abs(vi - v).max() < 1e-10

    out = {}
    for name, catalog in (("cartesian", cart), ("ingested", ingested)):
        assert main(["run", str(_config(tmp_path, name, catalog)), "--out",
                     str(tmp_path / name), "-q"]) == 0  # fmt: skip
        out[name] = json.loads((tmp_path / name / "report" / "metrics.json").read_text())
    a, b = out["cartesian"], out["ingested"]
    assert "catalog_frame" not in a and "Galactocentric" in b["catalog_frame"]
    assert a["truth"] is b["truth"] is False and a["r_max_kpc"] == b["r_max_kpc"] == 8.0
    assert b["profiles"]["v_c_kms"]["conditional"]  # the fit's v_c and M are reported
    na = _numbers({k: a[k] for k in a if k not in ("timings_s", "catalog_frame")})
    nb = _numbers({k: b[k] for k in b if k not in ("timings_s", "catalog_frame")})
    assert na.keys() == nb.keys() and len(na) > 200
    # Inputs that differ by 1e-15 relative are the same float32 numbers in the networks.
    # Measured: every metric bit for bit, except the v_c/M curves, whose radii start at the
    # stars' 1st-percentile radius (3.4e-15 relative apart); 1e-9 relative is round-off.
    for key, va in na.items():
        vb = nb[key]
        assert (math.isnan(va) and math.isnan(vb)) or vb == pytest.approx(va, rel=1e-9, abs=0), key
