"""The `gridconsole` command line, run as a user runs it (a real subprocess, real files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
from shapely.geometry import box

from store import open_store

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console", *args, "--db", db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_info_export_import_roundtrip(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gc.sqlite'}"
    r = run("demo", "--size", "small", "--quiet", db=db)
    assert r.returncode == 0, r.stderr
    assert "演示城市已生成" in r.stdout
    again = run("demo", "--size", "small", "--quiet", "--if-empty", db=db)
    assert again.returncode == 0 and "not regenerated" in again.stdout
    info = run("info", db=db)
    assert "grids" in info.stdout and "sqlite schema v" in info.stdout
    out = tmp_path / "grids.gpkg"
    r = run("export", "grids", str(out), "--lang", "en", db=db)
    assert r.returncode == 0, r.stderr
    exported = gpd.read_file(out)
    store = open_store(db)
    assert len(exported) == store.count("grids")
    assert exported["code"].str.fullmatch(r"\d{15}").all()
    # a second database gets the same grids back from the file
    db2 = f"sqlite:///{tmp_path / 'other.sqlite'}"
    r = run("import", "grids", str(out), "--lang", "en", db=db2)
    assert r.returncode == 0, r.stderr
    assert "Imported" in r.stdout
    assert open_store(db2).count("grids") == len(exported)


def test_bad_import_changes_nothing_and_says_why(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gc.sqlite'}"
    bad = tmp_path / "buildings.geojson"
    frame = gpd.GeoDataFrame(
        {"id": [1, 1], "households": [10, -3]},
        geometry=[box(123.84, 42.29, 123.8401, 42.2901), box(123.85, 42.29, 123.8501, 42.2901)],
        crs="EPSG:4326",
    )
    bad.write_text(frame.to_json())
    r = run("import", "buildings", str(bad), "--lang", "en", db=db)
    assert r.returncode == 2
    assert "nothing was written" in r.stderr
    assert "households" in r.stderr
    assert open_store(db).count("buildings") == 0
    garbage = tmp_path / "x.geojson"
    garbage.write_text(json.dumps({"not": "geojson"})[:7])
    r = run("import", "buildings", str(garbage), "--lang", "en", db=db)
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_unknown_kind_is_a_clear_error(tmp_path: Path) -> None:
    r = run("import", "spaceships", "x.csv", "--lang", "en", db=f"sqlite:///{tmp_path / 'gc.sqlite'}")
    assert r.returncode == 1
    assert "KIND must be one of" in r.stderr


def test_import_with_warnings_reports_them(tmp_path: Path) -> None:
    """A repaired geometry is imported and its warning printed (once crashed the CLI)."""
    from shapely.geometry import Polygon

    db = f"sqlite:///{tmp_path / 'gc.sqlite'}"
    bowtie = Polygon([(123.84, 42.29), (123.85, 42.30), (123.85, 42.29), (123.84, 42.30)])
    frame = gpd.GeoDataFrame(
        {"code": ["211202"], "name": ["银州区"], "level": ["county"], "kind": ["district"]},
        geometry=[bowtie],
        crs="EPSG:4326",
    )
    path = tmp_path / "boundaries.geojson"
    path.write_text(frame.to_json())
    r = run("import", "boundaries", str(path), "--lang", "en", db=db)
    assert r.returncode == 0, r.stderr
    assert "  ! " in r.stdout
    assert open_store(db).count("admin_units") == 1


def test_escalate_verb_runs_the_sweep(tmp_path: Path) -> None:
    from services import cases as cs
    from tests.fixtures.cases_world import NOW, build_world
    from tests.store.sample import at

    db = f"sqlite:///{tmp_path / 'esc.sqlite'}"
    store = open_store(db)
    try:
        build_world(store)
        lon, lat = at(-400, 200)
        cid = cs.create_case(store, cs.NewCase(category="public_order", lon=lon, lat=lat, description="夜间聚集"), now=NOW).case_id
        cs.assign(store, cid, 4, actor="d", now=NOW)  # 15 minutes to accept: long gone by the real clock
    finally:
        store.close()
    r = run("escalate", db=db)
    assert r.returncode == 0, r.stderr
    assert f"escalated case {cid}: not accepted in time" in r.stdout and "1 escalated" in r.stdout
    again = run("escalate", db=db)
    assert "0 escalated" in again.stdout  # not twice within one window
