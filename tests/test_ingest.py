"""`deep-potential ingest`: table formats, cuts and their counts, ICRS ↔ Galactocentric."""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("astropy", reason="deep-potential ingest needs the optional [astropy] extra")
import astropy.coordinates as coord
import astropy.units as u
from astropy.table import Table
from astropy.utils import iers

from deep_potential import _ingest
from deep_potential._cli import main

iers.conf.auto_download = False  # no network: Galactocentric needs no IERS tables anyway

N = 200
K_PM = 4.740470463  # km/s per (mas/yr · kpc)
# Rows made bad on purpose, each failing exactly one cut (counted against the first it fails).
BAD = {"missing_astrometry": range(0, 5), "nonpositive_parallax": range(5, 10),
       "parallax_over_error": range(10, 30), "radial_velocity_missing": range(30, 45)}  # fmt: skip


def _stars(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Galactocentric positions within ~2 kpc of the Sun and disc-like velocities."""
    rng = np.random.default_rng(seed)
    sun = np.array([-8.122, 0.0, 0.0208])
    x = sun + rng.normal(size=(N, 3)) * [1.0, 1.0, 0.3]
    v = np.array([0.0, 230.0, 0.0]) + rng.normal(size=(N, 3)) * 30.0
    return x, v


def _table(seed: int = 0) -> tuple[Table, np.ndarray, np.ndarray]:
    x, v = _stars(seed)
    gc = coord.SkyCoord(x=x[:, 0] * u.kpc, y=x[:, 1] * u.kpc, z=x[:, 2] * u.kpc,
                        v_x=v[:, 0] * u.km / u.s, v_y=v[:, 1] * u.km / u.s,
                        v_z=v[:, 2] * u.km / u.s, frame=coord.Galactocentric(),
                        representation_type="cartesian", differential_type="cartesian")  # fmt: skip
    icrs = gc.transform_to(coord.ICRS())
    plx = 1.0 / icrs.distance.to_value(u.kpc)  # mas
    t = Table()
    t["source_id"] = np.arange(N, dtype=np.int64) + 10**17
    t["ra"] = icrs.ra.deg
    t["dec"] = icrs.dec.deg
    t["parallax"] = plx
    t["parallax_error"] = plx / 10.0  # parallax_over_error = 10
    t["pmra"] = icrs.pm_ra_cosdec.to_value(u.mas / u.yr)
    t["pmdec"] = icrs.pm_dec.to_value(u.mas / u.yr)
    t["radial_velocity"] = icrs.radial_velocity.to_value(u.km / u.s)
    t["radial_velocity_error"] = np.full(N, 1.0)
    t["ra"][list(BAD["missing_astrometry"])] = np.nan
    t["parallax"][list(BAD["nonpositive_parallax"])] = -0.1
    t["parallax_error"][list(BAD["parallax_over_error"])] = plx[10:30] / 2.0
    t["radial_velocity"][list(BAD["radial_velocity_missing"])] = np.nan
    return t, x, v


FORMATS = ["fits", "parquet", "csv", "votable"]
SUFFIX = {"fits": ".fits", "parquet": ".parquet", "csv": ".csv", "votable": ".vot"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips(fmt: str, tmp_path: Path) -> None:
    missing = [m for m in _ingest.PARQUET_MODULES if importlib.util.find_spec(m) is None]
    if fmt == "parquet" and missing:  # both are in the [test] extra: absent only by hand
        pytest.skip(f"astropy reads Parquet through pyarrow and pandas; {missing} not installed")
    t, x, v = _table()
    path = tmp_path / f"gaia{SUFFIX[fmt]}"
    t.write(path, format={"csv": "ascii.csv"}.get(fmt, fmt))
    out = tmp_path / "catalog.h5"
    res = _ingest.ingest(path, out)
    bad = set().union(*map(set, BAD.values()))
    kept = np.array([i for i in range(N) if i not in bad])
    assert res.report["dropped"] == {k: len(r) for k, r in BAD.items()}
    assert res.report["n_kept"] == len(kept) == N - 45
    # ICRS → Galactocentric recovers the generating Cartesian values: float64 round-off
    # through two transforms (and CSV's 17-digit text), far below 1e-9 kpc / 1e-6 km/s.
    np.testing.assert_allclose(res.x, x[kept], atol=1e-9)
    np.testing.assert_allclose(res.v, v[kept], atol=1e-6)
    np.testing.assert_array_equal(res.source_id, t["source_id"][kept])
    with h5py.File(out, "r") as f:
        assert f.attrs["schema"] == "dp-catalog/1"
        np.testing.assert_array_equal(f["stars/x"][()], res.x)
        report = json.loads(f.attrs["ingest"])
        assert report["dropped"] == res.report["dropped"]
        assert json.loads(f.attrs["frame"])["galcen_distance_kpc"] == pytest.approx(8.122)
        assert "Galactocentric" in f.attrs["frame_text"]
    # and back: catalogue → ICRS SkyCoord with the stored frame.
    sky = _ingest.catalog_to_skycoord(out)
    np.testing.assert_allclose(sky.ra.deg, np.asarray(t["ra"])[kept], atol=1e-9)
    np.testing.assert_allclose(1.0 / sky.distance.to_value(u.kpc), t["parallax"][kept], rtol=1e-9)
    np.testing.assert_allclose(sky.radial_velocity.to_value(u.km / u.s),
                               t["radial_velocity"][kept], atol=1e-6)  # fmt: skip


def test_distance_and_rv_error_cuts_counted() -> None:
    t, _, _ = _table()
    t["radial_velocity_error"][50:60] = 20.0
    res = _ingest.ingest_table(t, cuts=_ingest.Cuts(max_distance=1.5, max_rv_error=5.0))
    good = np.setdiff1d(np.arange(N), np.arange(45))
    far = good[1.0 / np.asarray(t["parallax"])[good] > 1.5]
    rv_bad = np.setdiff1d(np.arange(50, 60), far)
    assert res.report["dropped"]["max_distance"] == len(far) > 0
    assert res.report["dropped"]["max_rv_error"] == len(rv_bad)
    assert res.report["n_kept"] == N - 45 - len(far) - len(rv_bad)
    assert N == res.report["n_kept"] + sum(res.report["dropped"].values())


def test_velocity_cut_warns_and_is_counted() -> None:
    t, _, v = _table()
    with pytest.warns(_ingest.IngestWarning, match="position only"):
        res = _ingest.ingest_table(t, cuts=_ingest.Cuts(max_speed=250.0))
    fast = np.setdiff1d(np.flatnonzero(np.linalg.norm(v, axis=1) > 250.0), np.arange(45))
    assert res.report["dropped"]["max_speed"] == len(fast) > 0
    assert res.report["warnings"] and (np.linalg.norm(res.v, axis=1) <= 250.0).all()


def test_frame_options_and_hand_rotation() -> None:
    """One star through a hand-written ICRS → Galactocentric chain, and exact invariants."""
    frame = _ingest.Frame(galcen_distance=8.2, z_sun=25.0, v_sun=(11.1, 240.0, 7.3))
    d, zs, vsun = 8.2, 0.025, np.array([11.1, 240.0, 7.3])
    ra, dec, dist, pmra, pmdec, rv = 120.0, -30.0, 2.0, 3.0, -4.0, 15.0
    t = Table({"ra": [ra, 266.4051, 10.0], "dec": [dec, -28.936175, 20.0],
               "parallax": [1 / dist, 1 / d, 1.0], "parallax_error": [0.01] * 3,
               "pmra": [pmra, 0.0, 0.0], "pmdec": [pmdec, 0.0, 0.0],
               "radial_velocity": [rv, 0.0, 0.0]})  # fmt: skip
    res = _ingest.ingest_table(t, frame=frame)
    assert res.report["frame"]["z_sun_pc"] == 25.0
    # Sgr A* at the Sun–centre distance is the origin; a star at rest in ICRS moves with −v_sun
    # relative to the Sun, i.e. has Galactocentric velocity v_sun.
    np.testing.assert_allclose(res.x[1], 0.0, atol=1e-12)
    np.testing.assert_allclose(res.v[1], vsun, atol=1e-9)
    np.testing.assert_allclose(res.v[2], vsun, atol=1e-9)
    # Hand-written chain: ICRS Cartesian → Galactic (Hipparcos A_G, ESA 1997 vol. 1 §1.5.3) →
    # rotate Sgr A*'s direction onto +x → put the Sun at −d x̂ → tilt by asin(z_sun/d) about y.
    a_g = np.array([[-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
                    [+0.4941094278755837, -0.4448296299600112, +0.7469822444972189],
                    [-0.8676661490190047, -0.1980763734312015, +0.4559837761750669]])  # fmt: skip

    def unit(ra_deg: float, dec_deg: float) -> np.ndarray:
        a, b = np.radians(ra_deg), np.radians(dec_deg)
        return np.array([np.cos(b) * np.cos(a), np.cos(b) * np.sin(a), np.sin(b)])

    n = a_g @ unit(266.4051, -28.936175)
    lon, lat = np.arctan2(n[1], n[0]), np.arcsin(n[2])
    rz = np.array([[np.cos(lon), np.sin(lon), 0], [-np.sin(lon), np.cos(lon), 0], [0, 0, 1]])
    ry = np.array([[np.cos(lat), 0, np.sin(lat)], [0, 1, 0], [-np.sin(lat), 0, np.cos(lat)]])
    th = np.arcsin(zs / d)
    tilt = np.array([[np.cos(th), 0, np.sin(th)], [0, 1, 0], [-np.sin(th), 0, np.cos(th)]])
    rot = tilt @ ry @ rz @ a_g
    a, b = np.radians(ra), np.radians(dec)
    e_ra = np.array([-np.sin(a), np.cos(a), 0.0])
    e_dec = np.array([-np.sin(b) * np.cos(a), -np.sin(b) * np.sin(a), np.cos(b)])
    r_hat = unit(ra, dec)
    v_icrs = rv * r_hat + K_PM * dist * (pmra * e_ra + pmdec * e_dec)
    x_hand = rot @ (dist * r_hat) + tilt @ np.array([-d, 0.0, 0.0])
    v_hand = rot @ v_icrs + vsun
    # Measured agreement 3e-6 kpc and 5e-5 km/s: astropy's Galactic frame (FK4-based) and the
    # Hipparcos A_G matrix differ by ~1e-6 rad, i.e. ~2e-6 kpc at 2 kpc and ~1e-4 km/s at
    # ~200 km/s; the roll conventions agree (Galactic ẑ in the final x–z plane).
    np.testing.assert_allclose(res.x[0], x_hand, atol=1e-5)
    np.testing.assert_allclose(res.v[0], v_hand, atol=3e-4)


def test_cli_ingest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t, _, _ = _table()
    t.rename_column("parallax", "plx")
    path = tmp_path / "g.fits"
    t.write(path)
    out = tmp_path / "cat.h5"
    rc = main(["ingest", str(path), "--out", str(out), "--column", "parallax=plx",
               "--galcen-distance", "8.3", "--max-distance", "1.5"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and out.exists()
    assert "frame: Galactocentric" in text and "R_sun = 8.3 kpc" in text
    assert "dropped by parallax_over_error: 20" in text and "dropped by max_distance" in text
    rc = main(["ingest", str(tmp_path / "missing.fits"), "--out", str(out)])
    assert rc == 2 and "not found" in capsys.readouterr().err
    t.remove_column("pmra")
    t.write(tmp_path / "bad.fits")
    rc = main(["ingest", str(tmp_path / "bad.fits"), "--out", str(out), "--column", "parallax=plx"])
    assert rc == 2 and "pmra" in capsys.readouterr().err


def test_no_warnings_without_velocity_cuts() -> None:
    t, _, _ = _table()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = _ingest.ingest_table(t)
    assert res.report["warnings"] == []


def test_ingested_catalogue_honours_the_umask(tmp_path: Path) -> None:
    table, _, _ = _table()
    path = tmp_path / "t.fits"
    table.write(path)
    old = os.umask(0o022)
    try:
        _ingest.ingest(path, tmp_path / "catalog.h5")
    finally:
        os.umask(old)
    assert (tmp_path / "catalog.h5").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


@pytest.mark.parametrize("absent", _ingest.PARQUET_MODULES)
def test_parquet_without_its_extra_names_the_extra(
    absent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without pyarrow or pandas a .parquet table fails before astropy, naming the extra."""
    path = tmp_path / "g.parquet"
    path.write_bytes(b"PAR1")  # never opened: the check comes first
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == absent else real(name, *a))  # fmt: skip
    with pytest.raises(ImportError, match=rf"needs {absent} .*deep-potential\[parquet\]"):
        _ingest.read_table(path)
    rc = main(["ingest", str(path), "--out", str(tmp_path / "c.h5")])
    assert rc == 2 and 'pip install "deep-potential[parquet]"' in capsys.readouterr().err
