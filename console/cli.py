"""`gridconsole` (also `python -m console`): the command line of the console.

Every verb takes ``--db URL`` (default: ``DATABASE_URL``, else the embedded SQLite file).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from console.i18n import t

if TYPE_CHECKING:
    import geopandas as gpd

    from store import Store

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Grid governance command console.")
ROOT = Path(__file__).resolve().parents[1]
KINDS = ("boundaries", "grids", "buildings", "staff", "cameras")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL: sqlite:///file.sqlite or postgresql://… (default: $DATABASE_URL)"),
]
LangOption = Annotated[str, typer.Option("--lang", help="Message language: zh or en.")]


def _open(db: str | None) -> Store:
    from store import open_store

    return open_store(db or os.environ.get("DATABASE_URL") or None)


def _fail(message: str, lang: str) -> None:
    typer.echo(t("cli.error", lang, error=message), err=True)
    raise typer.Exit(code=1)


@app.command()
def demo(
    size: Annotated[str, typer.Option(help="small (one street and one township) or city (Tieling scale)")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same city.")] = 20261123,
    db: DbOption = None,
    lang: LangOption = "zh",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    if_empty: Annotated[bool, typer.Option("--if-empty", help="Do nothing when the database has grids.")] = False,
) -> None:
    """Generate the demo city and load it into the database (replacing its demo tables)."""
    from console.progress import Bar
    from demo import SIZES, generate, load_demo

    if size not in SIZES:
        _fail(f"--size must be one of {', '.join(SIZES)}", lang)
    spec = SIZES[size]
    store = _open(db)
    if if_empty and store.count("grids") > 0:
        typer.echo(f"{store.count('grids'):,} grids already in the database; demo not regenerated.")
        return
    started = time.perf_counter()
    with Bar(spec, disable=quiet) as bar:
        city = generate(spec, seed=seed, progress=bar.update)
        bar.loading(len(list(city.tables())))
        load_demo(store, city, progress=bar.loaded)
    summary = ", ".join(f"{k} {v:,}" for k, v in city.summary().items())
    typer.echo(t("cli.demo.done", lang, summary=summary, seconds=time.perf_counter() - started))
    store.close()


@app.command("import")
def import_(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(KINDS)}")],
    file: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage, zipped Shapefile, Shapefile or CSV")],
    crs: Annotated[str | None, typer.Option(help="CRS when the file has none: gcj02, bd09, EPSG:4490, wgs84…")] = None,
    mode: Annotated[str, typer.Option(help="upsert, append or replace")] = "upsert",
    layer: Annotated[str | None, typer.Option(help="GeoPackage layer")] = None,
    partial: Annotated[
        bool, typer.Option("--partial", help="Leave out rows with errors (listed) and import the rest")
    ] = False,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Import a file; on any error nothing is written and every problem is listed (with --partial:
    the rows with errors are listed and left out, the rest imported)."""
    from services.files import ImportRejected, import_file

    if kind not in KINDS:
        _fail(f"KIND must be one of {', '.join(KINDS)}", lang)
    store = _open(db)
    try:
        report = import_file(store, kind, file, crs=crs, mode=mode, layer=layer, partial=partial)  # type: ignore[arg-type]
    except ImportRejected as exc:
        typer.echo(t("cli.import.rejected", lang, problems=str(exc)), err=True)
        raise typer.Exit(code=2) from None
    except (OSError, ValueError) as exc:
        _fail(str(exc), lang)
    typer.echo(t("cli.import.done", lang, rows=report.rows_written, kind=kind, repaired=report.repaired))
    for e in report.errors[:50]:
        typer.echo(f"  x {e}")
    for w in report.warnings[:20]:
        typer.echo(f"  ! {w}")


@app.command("import-12345")
def import_12345(
    file: Annotated[Path, typer.Argument(help="12345 export: CSV/TSV (UTF-8, GB18030/GBK, UTF-16) or .xlsx")],
    mapping: Annotated[
        Path | None, typer.Option(help="Column mapping file (JSON or TOML); default: the one saved in settings")
    ] = None,
    coords: Annotated[str | None, typer.Option(help="Coordinates in the file: wgs84, gcj02 or bd09")] = None,
    batch: Annotated[str | None, typer.Option(help="Name of this import (default: file name and time)")] = None,
    actor: Annotated[str, typer.Option(help="Who imports (recorded in the case history)")] = "cli",
    db: Annotated[
        str | None,
        typer.Option("--db", "--database-url", help="Database URL (default: $DATABASE_URL)"),
    ] = None,
    lang: LangOption = "zh",
) -> None:
    """Import a 12345 hotline export: rows become cases (located by coordinates or by address);
    the rest wait in the queue for a person. Importing the same file again creates nothing twice."""
    from services import hotline

    store = _open(db)
    try:
        chosen = hotline.load_mapping(mapping) if mapping else hotline.mapping_from_settings(store)
        if coords:
            chosen = hotline.mapping_with(chosen, coords=coords)
        report = hotline.import_export(store, file, mapping=chosen, batch_name=batch, actor=actor)
    except hotline.HotlineError as exc:
        typer.echo(t("cli.error", lang, error=str(exc)), err=True)
        raise typer.Exit(code=2) from None
    finally:
        store.close()
    typer.echo(report.summary(lang))
    for row_no, message in report.errors[:50]:
        typer.echo(f"  ! {row_no}: {message}")
    if len(report.errors) > 50:
        typer.echo(f"  … {len(report.errors) - 50} more")


@app.command()
def export(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(KINDS)}")],
    file: Annotated[Path, typer.Argument(help="Output: .geojson, .gpkg, .zip (Shapefile) or .csv")],
    crs: Annotated[str | None, typer.Option(help="Write in gcj02 or bd09 instead of WGS84")] = None,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Export a kind of data to a file QGIS opens."""
    from services.files import export_file

    if kind not in KINDS:
        _fail(f"KIND must be one of {', '.join(KINDS)}", lang)
    try:
        rows = export_file(_open(db), kind, file, crs=crs)
    except (OSError, ValueError) as exc:
        _fail(str(exc), lang)
    typer.echo(t("cli.export.done", lang, rows=rows, kind=kind, path=file))


def _band(text: str, lang: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.replace("–", "-").split("-", 1))
    except ValueError:
        _fail(f"--band must look like 80-120, not {text!r}", lang)
        raise
    if lo < 1 or hi < lo:
        _fail(f"--band {text}: need 1 <= min <= max", lang)
    return lo, hi


def _read(path: Path, what: str, crs: str | None, lang: str, geometry: str | None = None) -> gpd.GeoDataFrame:
    from services.files import ImportRejected, read_layer

    try:
        frame, report = read_layer(path, crs=crs, what=what, geometry=geometry)  # type: ignore[arg-type]
    except ImportRejected as exc:
        typer.echo(t("cli.import.rejected", lang, problems=str(exc)), err=True)
        raise typer.Exit(code=2) from None
    for w in report.warnings[:10]:
        typer.echo(f"  ! {what}: {w}")
    return frame


def _print_report(report: object, lang: str) -> None:
    findings = getattr(report, "findings", ())
    errors = [f for f in findings if f.severity == "error"]
    warnings_ = [f for f in findings if f.severity == "warning"]
    typer.echo(t("cli.validate.summary", lang, errors=len(errors), warnings=len(warnings_)))
    for f in [*errors, *warnings_][:200]:
        where = f" @ {', '.join(f.grids)}" if f.grids else ""
        typer.echo(f"  {'✗' if f.severity == 'error' else '!'} [{f.code}]{where} {f.message}")


@app.command()
def partition(
    buildings: Annotated[Path | None, typer.Argument(help="Buildings file (polygons; households or OSM levels)")] = None,
    boundary: Annotated[Path | None, typer.Option(help="The village/community boundary file")] = None,
    band: Annotated[str, typer.Option(help="Households per grid, min-max (urban 80-120, villages 30-50)")] = "80-120",
    roads: Annotated[Path | None, typer.Option(help="Roads (lines) the grids should follow")] = None,
    water: Annotated[Path | None, typer.Option(help="Rivers and lakes (polygons) the grids should follow")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of files that carry none: gcj02, bd09, EPSG:4490…")] = None,
    households_field: Annotated[str, typer.Option(help="Column with household counts")] = "households",
    area_per_household: Annotated[float, typer.Option(help="m² of floor area per household, to estimate")] = 90.0,
    out: Annotated[Path | None, typer.Option(help="Output file (.gpkg, .geojson, .zip)")] = None,
    unit: Annotated[str | None, typer.Option(help="Partition this unit from the database into a new draft")] = None,
    all_units: Annotated[bool, typer.Option("--all", help="Partition every unit of the database (to --out)")] = False,
    db: DbOption = None,
    lang: LangOption = "zh",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Partition buildings into micro-grids by household count, following roads and rivers.

    File in, file out: ``gridconsole partition BUILDINGS --boundary FILE --band 80-120 --out grids.gpkg``.
    Buildings without a household count (OpenStreetMap extracts) are estimated from footprint area
    × levels ÷ --area-per-household. ``--unit CODE`` makes a draft in the database instead;
    ``--all --out FILE`` partitions the whole city from the database with a progress bar."""

    lo_hi = _band(band, lang)
    started = time.perf_counter()
    if all_units or unit:
        from services import planning

        store = _open(db)
        if unit:
            try:
                draft_id = planning.create_draft(store, unit, method="partition", band=lo_hi, author="cli")
            except (planning.PlanningError, ValueError) as exc:
                _fail(str(exc), lang)
                return
            state = planning.evaluate(store, draft_id)
            typer.echo(t("cli.partition.draft", lang, draft=draft_id, grids=int((state.grids["kind"] == "base").sum()),
                         share=state.in_band_share))
            _print_report(state.report, lang)
            return
        if out is None:
            _fail("--all needs --out FILE", lang)
            return
        from tqdm import tqdm

        units = store.count("admin_units", where={"level": "village"})
        with tqdm(total=units, unit="unit", disable=quiet, desc="partition") as bar:
            grids, stats = planning.partition_units(store, progress=bar.update)
        from services.files import write_layer

        write_layer(grids, out)
        failed = stats[stats["error"].notna()]
        typer.echo(t("cli.partition.all", lang, units=len(stats), grids=len(grids),
                     households=int(grids["households"].sum()) if len(grids) else 0,
                     share=float(grids["in_band"].mean()) if len(grids) else 0.0,
                     seconds=time.perf_counter() - started, failed=len(failed), path=out))
        for _, row in failed.head(10).iterrows():
            typer.echo(f"  ! {row['unit_code']}: {row['error']}")
        return
    if buildings is None or boundary is None or out is None:
        _fail("give BUILDINGS, --boundary and --out (or --unit / --all with --db)", lang)
        return
    from geo.crs import to_metric
    from geo.households import estimate_households
    from geo.partition import partition as run_partition
    from services.files import write_layer

    b = _read(buildings, "buildings", crs, lang, "polygon")
    parent = _read(boundary, "boundary", crs, lang, "polygon")
    b = b.rename(columns={households_field: "households"}) if households_field in b.columns else b
    estimated = estimate_households(b, area_per_household_m2=area_per_household)
    n_est = int(estimated["households_estimated"].sum())
    if n_est:
        typer.echo(t("cli.partition.estimated", lang, n=n_est, area=area_per_household))
    metric = to_metric(estimated)
    shape = parent.to_crs(metric.crs).geometry.union_all()
    inside = metric.geometry.representative_point().within(shape)
    if (~inside).any():
        typer.echo(t("cli.partition.outside", lang, n=int((~inside).sum())))
    metric = metric[inside.to_numpy() & (metric["households"] > 0).to_numpy()]
    if len(metric) == 0 or metric["households"].sum() < lo_hi[0]:
        _fail(f"the boundary holds {int(metric['households'].sum()) if len(metric) else 0} households: "
              f"no partition can meet band {lo_hi[0]}-{lo_hi[1]}", lang)
    extra: dict[str, object] = {}
    if roads is not None:
        extra["roads"] = _read(roads, "roads", crs, lang, "line").to_crs(metric.crs)
    if water is not None:
        extra["water"] = _read(water, "water", crs, lang, "polygon").to_crs(metric.crs)
    try:
        grids, _labels = run_partition(metric, boundary=shape, band=lo_hi, **extra)  # type: ignore[arg-type]
    except ValueError as exc:
        _fail(str(exc), lang)
        return
    write_layer(grids, out, crs=crs if crs in ("gcj02", "bd09") else None)
    typer.echo(t("cli.partition.done", lang, grids=len(grids), share=float(grids["in_band"].mean()),
                 households=int(grids["households"].sum()), seconds=time.perf_counter() - started, path=out))


@app.command()
def validate(
    grids: Annotated[Path | None, typer.Argument(help="Grids file to check (or --draft ID)")] = None,
    boundary: Annotated[Path | None, typer.Option(help="The unit's boundary file")] = None,
    buildings: Annotated[Path | None, typer.Option(help="Buildings file with households")] = None,
    band: Annotated[str, typer.Option(help="Households per grid, min-max")] = "80-120",
    crs: Annotated[str | None, typer.Option(help="CRS of files that carry none")] = None,
    draft: Annotated[int | None, typer.Option(help="Check a draft in the database")] = None,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Check a draft or a grids file: gaps, overlaps, parts outside the unit, bands, contiguity,
    buildings in no grid or two, grids without a worker. Exit code 1 when there are errors."""
    if draft is not None:
        from services import planning

        try:
            report = planning.evaluate(_open(db), draft).report
        except planning.PlanningError as exc:
            _fail(str(exc), lang)
            return
    else:
        if grids is None or boundary is None:
            _fail("give GRIDS and --boundary, or --draft ID", lang)
            return

        from geo.audit import audit_grids
        from geo.crs import to_metric

        g = to_metric(_read(grids, "grids", crs, lang, "polygon"))
        parent = _read(boundary, "boundary", crs, lang, "polygon")
        b = _read(buildings, "buildings", crs, lang, "polygon") if buildings is not None else None
        if "code" not in g.columns:
            g["code"] = [f"#{i + 1}" for i in range(len(g))]
        report = audit_grids(
            g, parent=parent.to_crs(g.crs).geometry.union_all(), band=_band(band, lang),
            buildings=b.to_crs(g.crs) if b is not None else None,
        )
    _print_report(report, lang)
    raise typer.Exit(code=1 if report.errors else 0)


@app.command()
def publish(
    grids: Annotated[Path | None, typer.Argument(help="Grids file to publish for --unit (or --draft ID)")] = None,
    draft: Annotated[int | None, typer.Option(help="Publish a draft from the database")] = None,
    unit: Annotated[str | None, typer.Option(help="The village/community code the grids file is for")] = None,
    effective: Annotated[str | None, typer.Option(help="Effective date, e.g. 2026-12-01 (default: now)")] = None,
    accept_warnings: Annotated[str | None, typer.Option(help="Reason for publishing despite warnings")] = None,
    author: Annotated[str | None, typer.Option(help="Who publishes")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of a grids file that carries none")] = None,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Publish a draft (or a grids file for a unit) as the unit's next grid version."""
    import pandas as pd

    from services import planning

    store = _open(db)
    when = None
    if effective:
        try:
            when = pd.Timestamp(effective).to_pydatetime()
        except ValueError:
            _fail(f"--effective {effective!r} is not a date", lang)
    if draft is None:
        if grids is None or unit is None:
            _fail("give --draft ID, or a grids file with --unit CODE", lang)
            return
        frame = _read(grids, "grids", crs, lang, "polygon")
        try:
            draft = planning.create_draft(store, unit, method="frame", grids=frame, author=author)  # type: ignore[arg-type]
        except planning.PlanningError as exc:
            _fail(str(exc), lang)
            return
    try:
        result = planning.publish(store, draft, author=author, effective_at=when, accept_warnings=accept_warnings)
    except planning.PublishRefused as exc:
        typer.echo(t("cli.error", lang, error=str(exc)), err=True)
        _print_report(exc.report, lang)
        raise typer.Exit(code=1) from None
    except (planning.PlanningError, planning.ConflictError) as exc:
        _fail(str(exc), lang)
        return
    typer.echo(t("cli.publish.done", lang, unit=result.unit_code, version=result.version, grids=len(result.codes),
                 cases=result.cases_moved, staff=result.staff_links))


@app.command()
def unify(
    layers: Annotated[list[Path], typer.Argument(help="Legacy grid layers, one file per department")],
    names: Annotated[str | None, typer.Option(help="Comma-separated layer names (default: file names)")] = None,
    code_field: Annotated[str, typer.Option(help="Column holding each legacy grid's code")] = "code",
    boundary: Annotated[Path | None, typer.Option(help="Territory to unify (default: union of layers)")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of files that carry none")] = None,
    out: Annotated[Path, typer.Option(help="Unified grids output (.gpkg, .geojson, .zip)")] = Path("unified.gpkg"),
    crosswalk: Annotated[Path, typer.Option(help="Crosswalk table output (.csv)")] = Path("crosswalk.csv"),
    lang: LangOption = "zh",
) -> None:
    """Propose one unified grid set from several departments' legacy layers, with a crosswalk
    from each legacy grid to the unified grids and the places where the layers disagree."""

    from geo.unify import unify as run_unify
    from services.files import write_layer

    labels = names.split(",") if names else [p.stem for p in layers]
    if len(labels) != len(layers):
        _fail("--names must name every layer", lang)
    frames: dict[str, gpd.GeoDataFrame] = {}
    for label, path in zip(labels, layers, strict=True):
        frame = _read(path, label, crs, lang, "polygon")
        if code_field not in frame.columns:
            _fail(f"{path.name} has no {code_field!r} column (use --code-field)", lang)
        frames[label] = frame.rename(columns={code_field: "code"})
    territory = None
    if boundary is not None:
        b = _read(boundary, "boundary", crs, lang, "polygon")
        territory = b.geometry.union_all()
    try:
        result = run_unify(frames, boundary=territory)
    except ValueError as exc:
        _fail(str(exc), lang)
        return
    write_layer(result.grids, out, name="unified")
    result.crosswalk.to_csv(crosswalk, index=False, encoding="utf-8-sig")
    if len(result.disagreements):
        write_layer(result.disagreements, out.with_name(out.stem + "-disagreements" + out.suffix), name="disagreements")
    typer.echo(t("cli.unify.done", lang, layers=len(frames), grids=len(result.grids),
                 agreement=result.agreement, disagreements=len(result.disagreements), path=out))


@app.command()
def assets(force: Annotated[bool, typer.Option(help="Reinstall even when present")] = False) -> None:
    """Install the map's JavaScript and CSS from the npm registry into console/static/vendor."""
    from console.assets import install_assets

    dest = install_assets(force=force)
    typer.echo(f"map assets ready in {dest}")


@app.command()
def info(db: DbOption = None) -> None:
    """Rows per table and the schema version."""
    from services.overview import table_counts

    store = _open(db)
    typer.echo(f"{store.dialect} schema v{store.schema_version()} {store.url}")
    typer.echo(table_counts(store).to_string(index=False))


@app.command()
def coverage(
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the per-community table to this CSV")] = None,
    db: DbOption = None,
) -> None:
    """Camera coverage of roads and open space for every grid and community, and the blind spots
    on roads (stored for the Cameras page; minutes for a whole city)."""
    from tqdm import tqdm

    from services.cameras import compute_coverage, coverage_table

    store = _open(db)
    try:
        bars: dict[str, tqdm] = {}

        def progress(stage: str, done: int, total: int) -> None:
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(total=max(total, 1), desc=stage, unit="item", disable=quiet, dynamic_ncols=True)
            bar.n = done
            bar.refresh()

        try:
            run = compute_coverage(store, progress=progress)
        finally:
            for bar in bars.values():
                bar.close()
        typer.echo(
            f"{run.grids} grids, {run.villages} communities/villages, {run.cameras} cameras, "
            f"{run.blind_spots} blind spots in {run.seconds:.1f} s"
        )
        if out is not None:
            coverage_table(store, level="village").to_csv(out, index=False, encoding="utf-8-sig")
            typer.echo(f"written {out}")
    finally:
        store.close()


@app.command()
def escalate(db: DbOption = None) -> None:
    """Escalate cases not accepted or not resolved in time (the API does this every minute; this verb
    is for a deployment that runs the sweep from cron instead)."""
    from services.cases import escalate_due

    store = _open(db)
    try:
        out = escalate_due(store)
    finally:
        store.close()
    for o in out:
        typer.echo(f"{'escalated' if o.ok else 'skipped'} case {o.case_id}: {o.message}")
    typer.echo(f"{sum(o.ok for o in out)} escalated")


def _region(text: str | None, lang: str) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        _fail(t("cli.bad_region", lang, value=text), lang)
    if not (x0 < x1 and y0 < y1):
        _fail(t("cli.bad_region", lang, value=text), lang)
    return (x0, y0, x1, y1)


@app.command("api")
def api_(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8502,
    address: Annotated[str, typer.Option(help="Listen address")] = "0.0.0.0",
    region: Annotated[
        str | None,
        typer.Option(help="Accept fixes only inside 'min_lon,min_lat,max_lon,max_lat' (default: the city plus 0.2°)"),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Worker processes (each commits its own requests); about one per CPU core")
    ] = 1,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Start the HTTP API: position ingest from phones (OsmAnd / Traccar Client at /osmand); /docs."""
    import uvicorn

    bbox = _region(region, lang)
    url = db or os.environ.get("DATABASE_URL") or None
    _open(url).close()  # fail early with a clear message, and apply migrations once
    if url:
        os.environ["DATABASE_URL"] = url
    if bbox:
        os.environ["GRIDCONSOLE_API_REGION"] = ",".join(str(v) for v in bbox)
    uvicorn.run(
        "api.app:app_from_env",
        factory=True,
        workers=max(1, workers),
        host=address,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=10,
    )


@app.command()
def simulate(
    url: Annotated[str, typer.Option(help="Base URL of the API the phones send to")] = "http://127.0.0.1:8502",
    staff: Annotated[int | None, typer.Option(help="How many on-duty workers to drive (default: all)")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between a phone's fixes")] = 30.0,
    speedup: Annotated[float, typer.Option(help="Simulated seconds per real second")] = 1.0,
    duration: Annotated[float | None, typer.Option(help="Stop after this many real seconds (default: run until Ctrl+C)")] = None,
    backfill: Annotated[
        float, typer.Option(help="First upload this many past hours as phones' offline buffers (batch endpoint)")
    ] = 0.0,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed of the patrols")] = 0,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Drive on-duty workers along the roads of their grids; their phones send positions to the API."""
    from demo.simulate import backfill as send_backfill
    from demo.simulate import plan_patrols
    from demo.simulate import simulate as run_simulation

    store = _open(db)
    try:
        typer.echo(t("cli.sim.planning", lang))
        patrols = plan_patrols(store, limit=staff, seed=seed)
    finally:
        store.close()
    if not len(patrols):
        _fail(t("cli.sim.nobody", lang), lang)
    typer.echo(t("cli.sim.planned", lang, n=len(patrols), url=url))
    if backfill > 0:
        now = time.time()
        stats = send_backfill(url, patrols, start=now - backfill * 3600, end=now, interval_s=interval)
        typer.echo(t("cli.sim.done", lang, **stats.as_dict()))

    def tick(stats: object) -> None:
        s = stats.as_dict()  # type: ignore[attr-defined]
        if s["ticks"] % 10 == 0:
            typer.echo(t("cli.sim.done", lang, **s))

    try:
        sim_duration = None if duration is None else duration * speedup  # the simulator counts simulated seconds
        stats = run_simulation(url, patrols, interval_s=interval, speedup=speedup, duration_s=sim_duration,
                               concurrency=concurrency, on_tick=tick)  # fmt: skip
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    typer.echo(t("cli.sim.done", lang, **stats.as_dict()))


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port of the console")] = 8501,
    api_port: Annotated[int, typer.Option(help="HTTP port of the API (position ingest); 0: no API")] = 8502,
    address: Annotated[str, typer.Option(help="Listen address")] = "0.0.0.0",
    db: DbOption = None,
) -> None:
    """Start the console (Streamlit, map assets served locally) and, beside it, the HTTP API."""
    from console.assets import assets_ready, install_assets

    if not assets_ready():
        install_assets()
    env = dict(os.environ)
    if db:
        env["DATABASE_URL"] = db
    _open(db).close()  # fail early with a clear message, and apply migrations once
    api_proc = None
    if api_port:
        api_cmd = [sys.executable, "-m", "console", "api", "--port", str(api_port), "--address", address]
        api_proc = subprocess.Popen(api_cmd, env=env, cwd=str(ROOT))  # noqa: S603
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "console" / "app.py"),
        "--server.port", str(port),
        "--server.address", address,
    ]  # fmt: skip
    try:
        code = subprocess.call(cmd, env=env, cwd=str(ROOT))
    finally:
        if api_proc is not None:
            api_proc.terminate()
            try:
                api_proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                api_proc.kill()
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
