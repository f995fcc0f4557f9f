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
    db: DbOption = None,
    lang: LangOption = "zh",
) -> None:
    """Import a file; on any error nothing is written and every problem is listed."""
    from services.files import ImportRejected, import_file

    if kind not in KINDS:
        _fail(f"KIND must be one of {', '.join(KINDS)}", lang)
    store = _open(db)
    try:
        report = import_file(store, kind, file, crs=crs, mode=mode, layer=layer)  # type: ignore[arg-type]
    except ImportRejected as exc:
        typer.echo(t("cli.import.rejected", lang, problems=str(exc)), err=True)
        raise typer.Exit(code=2) from None
    except (OSError, ValueError) as exc:
        _fail(str(exc), lang)
    typer.echo(t("cli.import.done", lang, rows=report.rows_written, kind=kind, repaired=report.repaired))
    for w in report.warnings[:20]:
        typer.echo(f"  ! {w}")


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
def serve(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8501,
    address: Annotated[str, typer.Option(help="Listen address")] = "0.0.0.0",
    db: DbOption = None,
) -> None:
    """Start the console (Streamlit) with the map's assets served locally."""
    from console.assets import assets_ready, install_assets

    if not assets_ready():
        install_assets()
    env = dict(os.environ)
    if db:
        env["DATABASE_URL"] = db
    _open(db).close()  # fail early with a clear message, and apply migrations once
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "console" / "app.py"),
        "--server.port", str(port),
        "--server.address", address,
    ]  # fmt: skip
    raise typer.Exit(subprocess.call(cmd, env=env, cwd=str(ROOT)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
