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

    from services.auth import Principal
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
        _demo_users(store, lang)  # an upgraded database gets its demo users
        store.close()
        return
    started = time.perf_counter()
    with Bar(spec, disable=quiet) as bar:
        city = generate(spec, seed=seed, progress=bar.update)
        bar.loading(len(list(city.tables())))
        load_demo(store, city, progress=bar.loaded)
    summary = ", ".join(f"{k} {v:,}" for k, v in city.summary().items())
    typer.echo(t("cli.demo.done", lang, summary=summary, seconds=time.perf_counter() - started))
    _demo_users(store, lang)
    store.close()


def _demo_users(store: Store, lang: str) -> None:
    """The demo users (one per role, and a district dispatcher) when the users table is empty."""
    from demo.users import DEMO_PASSWORD, create_demo_users

    made = create_demo_users(store)
    if made:
        typer.echo(t("cli.demo.users", lang, users=", ".join(made), password=DEMO_PASSWORD))


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
    from services.auth import audit

    store = _open(db)
    try:
        rows = export_file(store, kind, file, crs=crs)
        # every export is written to the audit log (staff carry workers' phone numbers)
        audit(store, f"cli@{_os_user()}", f"export.{kind}", target=str(file)[:200], detail=f"{rows} rows", client="cli")
    except (OSError, ValueError) as exc:
        _fail(str(exc), lang)
    finally:
        store.close()
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
    token: Annotated[
        str | None,
        typer.Option(envvar="GRIDCONSOLE_API_TOKEN",
                     help="A gateway's API token (role admin, unit covering the workers); default: one made for this run, valid a day"),
    ] = None,
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
        if token is None:  # the operator at this machine may: a relay token for this run only
            import pandas as pd

            from services import auth

            by = _operator(store, None)
            token = auth.create_api_token(store, by, name="simulator", role="admin", unit_code=by.unit_code,
                                          expires_at=pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1))  # fmt: skip
    finally:
        store.close()
    if not len(patrols):
        _fail(t("cli.sim.nobody", lang), lang)
    typer.echo(t("cli.sim.planned", lang, n=len(patrols), url=url))
    if backfill > 0:
        now = time.time()
        stats = send_backfill(url, patrols, start=now - backfill * 3600, end=now, interval_s=interval, token=token)
        typer.echo(t("cli.sim.done", lang, **stats.as_dict()))

    def tick(stats: object) -> None:
        s = stats.as_dict()  # type: ignore[attr-defined]
        if s["ticks"] % 10 == 0:
            typer.echo(t("cli.sim.done", lang, **s))

    try:
        sim_duration = None if duration is None else duration * speedup  # the simulator counts simulated seconds
        stats = run_simulation(url, patrols, interval_s=interval, speedup=speedup, duration_s=sim_duration,
                               concurrency=concurrency, on_tick=tick, token=token)  # fmt: skip
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    typer.echo(t("cli.sim.done", lang, **stats.as_dict()))


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port of the console")] = 8501,
    api_port: Annotated[int, typer.Option(help="HTTP port of the API (position ingest); 0: no API")] = 8502,
    address: Annotated[str, typer.Option(help="Listen address")] = "0.0.0.0",
    jobs: Annotated[
        bool, typer.Option("--jobs/--no-jobs", help="Also run the maintenance jobs (track retention at 03:00)")
    ] = True,
    db: DbOption = None,
) -> None:
    """Start the console (Streamlit, map assets served locally) and, beside it, the HTTP API and
    the maintenance jobs (``gridconsole jobs``)."""
    import signal

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
    jobs_proc = None
    if jobs:
        jobs_proc = subprocess.Popen([sys.executable, "-m", "console", "jobs"], env=env, cwd=str(ROOT))  # noqa: S603

    def terminated(signum: int, frame: object) -> None:  # SIGTERM: stop all three, as Ctrl+C does
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "console" / "app.py"),
        "--server.port", str(port),
        "--server.address", address,
    ]  # fmt: skip
    procs = [p for p in (api_proc, jobs_proc) if p is not None]
    try:
        console_proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT))  # noqa: S603
        procs.insert(0, console_proc)
        code = console_proc.wait()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    raise typer.Exit(code)


# ------------------------------------------------------------------------------ users and tokens

user_app = typer.Typer(no_args_is_help=True, help="Console users: add, change a password, list, disable.")
token_app = typer.Typer(no_args_is_help=True, help="API and device tokens: create (shown once), revoke, list.")
retention_app = typer.Typer(no_args_is_help=True, help="Retention of GPS tracks (setting tracks.retention_days).")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(retention_app, name="retention")

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
]


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def _city_code(store: Store) -> str | None:
    rows = store.read("admin_units", where={"level": "city"}, columns=["code"], geometry=False)
    return str(sorted(rows["code"].astype(str))[0]) if len(rows) else None


def _operator(store: Store, unit: str | None) -> Principal:
    """The administrator at the machine: a token-kind admin principal ``cli@<os user>`` over the city
    (or over ``unit`` itself when it lies outside the city or there is no city yet)."""
    from services.auth import Principal

    city = _city_code(store)
    code = city if city and (unit is None or Principal("cli", "admin", city).covers(unit)) else (unit or city)
    return Principal(f"cli@{_os_user()}", "admin", code or "0", kind="token")


def _check_role(role: str | None, lang: str) -> str:
    from services.auth import ROLES

    if role not in ROLES:
        _fail(t("cli.user.bad_role", lang, role=role or "", roles=", ".join(ROLES)), lang)
    return str(role)


def _check_unit(store: Store, unit: str, lang: str) -> str:
    """A unit code that is digits and, once the database has units, one of its units or grids."""
    from services.auth import AuthError, jurisdiction_prefix

    code = str(unit).strip()
    try:
        jurisdiction_prefix(code)
    except AuthError:
        _fail(t("cli.user.bad_unit", lang, unit=unit), lang)
    if store.count("admin_units") and not (
        store.count("admin_units", where={"code": code}) or store.count("grids", where={"code": code})
    ):
        _fail(t("cli.user.unknown_unit", lang, unit=code), lang)
    return code


def _read_password(from_stdin: bool, lang: str) -> str:
    """A new password: the first line of stdin, or typed twice without echo; checked for length."""
    from services.auth import MIN_PASSWORD

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            _fail(t("cli.user.password_empty", lang), lang)
    else:
        password = typer.prompt(t("cli.user.password_prompt", lang), hide_input=True)
        again = typer.prompt(t("cli.user.password_confirm", lang), hide_input=True)
        if password != again:
            _fail(t("cli.user.password_mismatch", lang), lang)
    if len(password) < MIN_PASSWORD:
        _fail(t("cli.user.password_short", lang, n=MIN_PASSWORD), lang)
    return password


def _user_row(store: Store, username: str, lang: str) -> dict[str, object]:
    rows = store.read("users", where={"username": username}, columns=["username", "unit_code"], geometry=False)
    if not len(rows):
        _fail(t("cli.user.unknown", lang, username=username), lang)
    return {str(k): v for k, v in rows.iloc[0].to_dict().items()}


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Sign-in name: 2–64 letters, digits or . _ @ -")],
    role: Annotated[str, typer.Option(help="admin, planner, dispatcher, viewer, department or grid_worker")],
    unit: Annotated[str, typer.Option(help="Jurisdiction: the code of the city, a district, a street or a community")],
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    password_stdin: PasswordStdin = False,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Add a console user (asks for the password twice, or reads it with --password-stdin). The
    first user of an empty database must be an administrator."""
    from services import auth

    store = _open(db)
    try:
        role = _check_role(role, lang)
        code = _check_unit(store, unit, lang)
        if store.count("users", where={"username": username}):
            _fail(t("cli.user.exists", lang, username=username), lang)
        first = store.count("users") == 0
        if first and role != "admin":
            _fail(t("cli.user.first_admin", lang), lang)
        password = _read_password(password_stdin, lang)
        operator = _operator(store, code)
        try:
            if first:
                with store.transaction():
                    auth.bootstrap_admin(store, username=username, password=password, unit_code=code)
                    if name:
                        store.update("users", {"username": username}, {"display_name": name})
                    auth.audit(store, operator, "user.bootstrap", target=username, detail=f"role=admin unit={code}")
            else:
                auth.create_user(store, operator, username=username, role=role, unit_code=code, password=password,
                                 display_name=name)  # fmt: skip
        except auth.AuthError as exc:
            _fail(str(exc), lang)
        typer.echo(t("cli.user.created", lang, username=username, role=role, unit=code))
    finally:
        store.close()


@user_app.command("passwd")
def user_passwd(
    username: Annotated[str, typer.Argument(help="Whose password")],
    password_stdin: PasswordStdin = False,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Set a user's password (asked twice, or --password-stdin); ends the user's sessions."""
    from services import auth

    store = _open(db)
    try:
        row = _user_row(store, username, lang)
        password = _read_password(password_stdin, lang)
        try:
            auth.set_password(store, _operator(store, str(row["unit_code"])), username=username, password=password)
        except auth.AuthError as exc:
            _fail(str(exc), lang)
        typer.echo(t("cli.user.password_set", lang, username=username))
    finally:
        store.close()


def _set_active(username: str, active: bool, db: str | None, lang: str) -> None:
    from services import auth

    store = _open(db)
    try:
        row = _user_row(store, username, lang)
        try:
            auth.set_active(store, _operator(store, str(row["unit_code"])), username=username, active=active)
        except auth.AuthError as exc:
            _fail(str(exc), lang)
        typer.echo(t("cli.user.enabled" if active else "cli.user.disabled", lang, username=username))
    finally:
        store.close()


@user_app.command("disable")
def user_disable(
    username: Annotated[str, typer.Argument(help="Who")], db: DbOption = None, lang: LangOption = "zh"
) -> None:
    """Disable a user: no more sign-ins, every session ended (the user and the history stay)."""
    _set_active(username, False, db, lang)


@user_app.command("enable")
def user_enable(
    username: Annotated[str, typer.Argument(help="Who")], db: DbOption = None, lang: LangOption = "zh"
) -> None:
    """Enable a disabled user again."""
    _set_active(username, True, db, lang)


@user_app.command("list")
def user_list(db: DbOption = None, lang: LangOption = "zh") -> None:
    """Users: username, role, jurisdiction, active, last sign-in (never a password or its hash)."""
    import pandas as pd

    store = _open(db)
    try:
        cols = ["username", "display_name", "role", "unit_code", "active"]
        users = store.read("users", columns=cols, order_by=["username"], geometry=False)
        if not len(users):
            typer.echo(t("cli.user.none", lang))
            return
        last: list[str] = []
        for name in users["username"]:  # one indexed look-up (actor, ts) per user
            rows = store.read("audit_log", where={"actor": str(name), "action": ["signin", "signin.oidc"]},
                              columns=["ts"], order_by=["-ts"], limit=1, geometry=False)  # fmt: skip
            ts = rows["ts"].iloc[0] if len(rows) else None
            last.append("-" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M UTC"))
        users["last_signin"] = last
        users["display_name"] = users["display_name"].fillna("")
        typer.echo(_table(users))
    finally:
        store.close()


def _table(frame: object) -> str:
    """A frame as a plain left-aligned text table (header, then one line per row)."""
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    cells = [[str(c) for c in frame.columns]]
    cells += [["" if v is None else str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(frame.columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def _device_name(device: str) -> str:
    return f"device:{device}"


@token_app.command("create")
def token_create(
    unit: Annotated[str, typer.Option(help="Jurisdiction: the code of the city, a district, a street or a community")],
    name: Annotated[str | None, typer.Argument(help="What the token is for (with --device: device:<id>)")] = None,
    role: Annotated[str | None, typer.Option(help="The token's role (with --device: grid_worker)")] = None,
    days: Annotated[int | None, typer.Option(help="Valid for this many days (default: until revoked)")] = None,
    device: Annotated[
        str | None, typer.Option(help="A phone's device id: the token is named device:<id>, role grid_worker")
    ] = None,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Create an API token and print it once on standard output (only its hash is kept)."""
    import pandas as pd

    from services import auth

    if device is not None:
        if not device.strip():
            _fail(t("cli.token.name_needed", lang), lang)
        wanted = _device_name(device.strip())
        if name and name != wanted:
            _fail(t("cli.token.device_name", lang, name=name, wanted=wanted), lang)
        if role and role != "grid_worker":
            _fail(t("cli.token.device_role", lang), lang)
        name, role = wanted, "grid_worker"
    if not name:
        _fail(t("cli.token.name_needed", lang), lang)
        return
    if days is not None and not 1 <= days <= 36500:
        _fail(t("cli.token.bad_days", lang, days=days), lang)
    store = _open(db)
    try:
        role = _check_role(role, lang)
        code = _check_unit(store, unit, lang)
        if device is not None and not store.count("staff", where={"device_id": device.strip()}):
            typer.echo(t("cli.token.no_device", lang, device=device.strip()), err=True)
        active = store.read("api_tokens", where={"name": name, "revoked_at": None}, columns=["name"], geometry=False)
        if len(active):
            typer.echo(t("cli.token.duplicate", lang, name=name), err=True)
        now = pd.Timestamp.now(tz="UTC")
        expires = now + pd.Timedelta(days=days) if days is not None else None
        try:
            token = auth.create_api_token(store, _operator(store, code), name=name, role=role, unit_code=code,
                                          expires_at=expires, now=now)  # fmt: skip
        except auth.AuthError as exc:
            _fail(str(exc), lang)
            return
        when = t("cli.token.never", lang) if expires is None else t("cli.token.expires", lang, ts=f"{expires:%Y-%m-%d %H:%M} UTC")
        typer.echo(t("cli.token.created", lang, name=name, role=role, unit=code, expires=when), err=True)
        typer.echo(token)
    finally:
        store.close()


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str | None, typer.Argument(help="The token's name")] = None,
    device: Annotated[str | None, typer.Option(help="Revoke the token of this device id (device:<id>)")] = None,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Revoke every active token called NAME (or the device's token)."""
    from services import auth

    if device:
        name = _device_name(device.strip())
    if not name:
        _fail(t("cli.token.name_needed", lang), lang)
        return
    store = _open(db)
    try:
        active = store.read("api_tokens", where={"name": name, "revoked_at": None}, columns=["unit_code"], geometry=False)
        if not len(active):
            _fail(t("cli.token.unknown", lang, name=name), lang)
        try:
            n = auth.revoke_api_token(store, _operator(store, str(active["unit_code"].iloc[0])), name=name)
        except auth.AuthError as exc:
            _fail(str(exc), lang)
            return
        typer.echo(t("cli.token.revoked", lang, n=n, name=name))
    finally:
        store.close()


@token_app.command("list")
def token_list(db: DbOption = None, lang: LangOption = "zh") -> None:
    """Tokens: name, role, jurisdiction, created, expires, status (never the tokens themselves)."""
    import pandas as pd

    store = _open(db)
    try:
        cols = ["name", "role", "unit_code", "username", "created_at", "expires_at", "revoked_at"]
        rows = store.read("api_tokens", columns=cols, order_by=["name", "created_at"], geometry=False)
        if not len(rows):
            typer.echo(t("cli.token.none", lang))
            return
        now = pd.Timestamp.now(tz="UTC")
        rows["status"] = [
            "revoked" if pd.notna(r) else "expired" if pd.notna(e) and e <= now else "active"
            for r, e in zip(rows["revoked_at"], rows["expires_at"], strict=True)
        ]
        for c in ("created_at", "expires_at", "revoked_at"):
            rows[c] = [pd.Timestamp(v).strftime("%Y-%m-%d %H:%M") if pd.notna(v) else "-" for v in rows[c]]
        rows["username"] = rows["username"].fillna("-")
        typer.echo(_table(rows))
    finally:
        store.close()


# ------------------------------------------------------------------------------ retention and jobs


@retention_app.command("run")
def retention_run(
    days: Annotated[
        int | None, typer.Option(help="Keep this many days this once (default: the setting; 0: keep forever)")
    ] = None,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Delete GPS tracks older than the retention now (what `gridconsole jobs` does daily at 03:00)."""
    from services.retention import mark_run, purge_tracks

    if days is not None and not 0 <= days <= 3650:
        _fail(t("cli.retention.bad_days", lang, days=days), lang)
    store = _open(db)
    try:
        report = purge_tracks(store, retention_days=days)
        if days is None:
            mark_run(store, "retention")
    finally:
        store.close()
    if report.cutoff is None:
        typer.echo(t("cli.retention.off", lang))
        return
    typer.echo(t("cli.retention.done", lang, positions=report.positions, cutoff=f"{report.cutoff:%Y-%m-%d %H:%M} UTC",
                 partitions=len(report.partitions), presence=report.grid_presence, latest=report.latest_positions,
                 seconds=report.seconds, days=report.retention_days))  # fmt: skip


@retention_app.command("set")
def retention_set(
    days: Annotated[str, typer.Argument(help="Days of tracks to keep, 0..3650 (0: keep forever)")],
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Set tracks.retention_days (what the console's settings page edits)."""
    from services.settings import set_retention_days

    store = _open(db)
    try:
        try:
            value = set_retention_days(store, days)
        except ValueError:
            _fail(t("cli.retention.bad_days", lang, days=days), lang)
            return
    finally:
        store.close()
    typer.echo(t("cli.retention.set", lang, days=value))


@app.command("jobs")
def jobs_(
    every: Annotated[float, typer.Option(help="Seconds between checks for due jobs (at most)")] = 3600.0,
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Run the maintenance jobs until stopped (SIGTERM or Ctrl+C): track retention daily at 03:00
    city time, and at start when the last run was missed. `gridconsole serve` starts this beside
    the console and the API; a failed run is logged and tried again at the next check."""
    import logging
    import signal

    from services.retention import Scheduler, retention_job

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url = db or os.environ.get("DATABASE_URL") or None
    _open(url).close()  # fail early with a clear message (a wrong URL); later outages are retried
    scheduler = Scheduler(lambda: _open(url), [retention_job()])

    def stop(signum: int, frame: object) -> None:
        scheduler.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    typer.echo(t("cli.jobs.started", lang, jobs="retention", every=every))
    scheduler.run_forever(every=max(1.0, every))
    typer.echo(t("cli.jobs.stopped", lang))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
