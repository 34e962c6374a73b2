"""Loads the gazetteer: countries and GeoNames places, set-based (COPY into a staging table,
then one upsert), idempotent on geonameid."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import asyncpg

from app.places.sources import PlaceRecord, country_facts, country_names

STAGING_DDL = """
CREATE TEMP TABLE staging_places (
    geonameid bigint, name text, ascii_name text, alternate_names text[],
    feature_class text, feature_code text, country_code text, country_code3 text,
    admin1 text, admin2 text, population bigint, lon float8, lat float8
) ON COMMIT DROP
"""
STAGING_COLUMNS = [
    "geonameid",
    "name",
    "ascii_name",
    "alternate_names",
    "feature_class",
    "feature_code",
    "country_code",
    "country_code3",
    "admin1",
    "admin2",
    "population",
    "lon",
    "lat",
]

UPSERT_SQL = """
WITH up AS (
INSERT INTO places AS p (geonameid, name, ascii_name, alternate_names, feature_class, feature_code,
                         country_code, country_code3, admin1, admin2, population, geom, source)
SELECT DISTINCT ON (geonameid) geonameid, name, ascii_name, alternate_names, feature_class,
       feature_code, country_code, country_code3, admin1, admin2, population,
       ST_SetSRID(ST_MakePoint(lon, lat), 4326), 'geonames'
FROM staging_places
ORDER BY geonameid
ON CONFLICT (geonameid) DO UPDATE SET
    name = EXCLUDED.name, ascii_name = EXCLUDED.ascii_name,
    alternate_names = EXCLUDED.alternate_names, feature_class = EXCLUDED.feature_class,
    feature_code = EXCLUDED.feature_code, country_code = EXCLUDED.country_code,
    country_code3 = EXCLUDED.country_code3, admin1 = EXCLUDED.admin1, admin2 = EXCLUDED.admin2,
    population = EXCLUDED.population, geom = EXCLUDED.geom
WHERE (p.name, p.ascii_name, p.alternate_names, p.feature_code, p.admin1, p.admin2,
       p.population, p.geom)
   IS DISTINCT FROM
      (EXCLUDED.name, EXCLUDED.ascii_name, EXCLUDED.alternate_names, EXCLUDED.feature_code,
       EXCLUDED.admin1, EXCLUDED.admin2, EXCLUDED.population, EXCLUDED.geom)
RETURNING id
)
INSERT INTO changed_places SELECT id FROM up
"""

NAMES_SQL = """
INSERT INTO place_names (place_id, name_norm)
SELECT DISTINCT p.id, app_norm(n)
FROM changed_places c
JOIN places p ON p.id = c.id
JOIN staging_places s ON s.geonameid = p.geonameid,
LATERAL unnest(array_prepend(s.name, array_prepend(s.ascii_name, s.alternate_names))) n
WHERE n IS NOT NULL AND app_norm(n) <> ''
ON CONFLICT DO NOTHING
"""

COUNTRIES_SQL = """
INSERT INTO countries (iso_a2, iso_a3, name, iso_n3, acled_region)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::smallint[])
ON CONFLICT (iso_a2) DO UPDATE SET iso_a3 = EXCLUDED.iso_a3, name = EXCLUDED.name,
    iso_n3 = EXCLUDED.iso_n3, acled_region = EXCLUDED.acled_region
"""

# Above this many rows it is faster to drop the trigram index and build it again.
REBUILD_INDEX_ABOVE = 20_000


@dataclass
class LoadReport:
    rows: int
    upserted: int
    names: int
    seconds: float


def _tuples(records: Iterable[PlaceRecord]) -> Iterator[tuple[object, ...]]:
    for r in records:
        yield (
            r.geonameid,
            r.name,
            r.ascii_name,
            list(r.alternate_names),
            r.feature_class,
            r.feature_code,
            r.country_code,
            r.country_code3,
            r.admin1,
            r.admin2,
            r.population,
            r.longitude,
            r.latitude,
        )


async def load_countries(conn: asyncpg.Connection) -> int:
    names = country_names()
    facts = country_facts()
    a2 = list(names)
    await conn.execute(
        COUNTRIES_SQL,
        a2,
        [names[c][0] for c in a2],
        [names[c][1] for c in a2],
        [facts.get(c, (None, None))[0] for c in a2],
        [facts.get(c, (None, None))[1] for c in a2],
    )
    return len(a2)


async def load_places(conn: asyncpg.Connection, records: Iterable[PlaceRecord]) -> LoadReport:
    """Upsert places and rebuild their search names, in one transaction."""
    started = time.perf_counter()
    async with conn.transaction():
        await load_countries(conn)
        await conn.execute(STAGING_DDL)
        await conn.execute("CREATE TEMP TABLE changed_places (id bigint) ON COMMIT DROP")
        await conn.copy_records_to_table(
            "staging_places", records=_tuples(records), columns=STAGING_COLUMNS
        )
        rows = int(await conn.fetchval("SELECT count(*) FROM staging_places"))
        await conn.execute("ANALYZE staging_places")
        status = await conn.execute(UPSERT_SQL)
        upserted = int(status.split()[-1])
        rebuild = upserted > REBUILD_INDEX_ABOVE
        if rebuild:
            await conn.execute("DROP INDEX IF EXISTS place_names_trgm")
        await conn.execute(
            "DELETE FROM place_names pn USING changed_places c WHERE pn.place_id = c.id"
        )
        status = await conn.execute(NAMES_SQL)
        names = int(status.split()[-1])
        if rebuild:
            await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            await conn.execute(
                "CREATE INDEX place_names_trgm ON place_names USING gin (name_norm gin_trgm_ops)"
            )
    await conn.execute("ANALYZE places")
    await conn.execute("ANALYZE place_names")
    return LoadReport(
        rows=rows, upserted=upserted, names=names, seconds=time.perf_counter() - started
    )
