"""What a set-based bulk load needs: one pairwise "possible duplicate" rule, and load phases.

- `incident_duplicate_box(geom)`: the box around a point that holds everything within 2 km
  (what a GiST index is probed with); `incident_duplicate_pair(...)`: whether two incidents are
  possible duplicates (within 2 km geodesic and 1 day, same event type, different external
  ids, an actor in common; actors compared lower-cased). Both are plain expressions PostgreSQL
  inlines into the calling query.
- `incident_possible_duplicates(...)` (single creates) is rewritten over the pair rule, and
  returns the earliest ten matches (it returned any ten); bulk loads apply the same rule as one
  join of the batch against the store and against its own earlier rows.
- `incident_lat_cell(geom)`: the 0.02-degree band of latitude (2.2 km) a point is in, and the
  index `incidents_duplicates` on (event type, band, date) of live incidents: candidates of
  the rule are found by three short range scans (bands either side, three days), which is
  several times cheaper than a GiST probe where incidents cluster (towns, many per day).
- `incident_revisions` loses its foreign key to `incidents`: the check ran once per revision
  row (a tenth of a bulk load's time), for a guarantee the schema already gives: revisions are
  only written by the statements that write their incident, incidents are never deleted (a
  delete is a soft delete; TRUNCATE empties both). `tests/ingest/test_set_based_load.py`
  checks every revision has its incident version after every kind of load.
- `import_jobs.phase` and `import_jobs.indexes`: a load that rebuilds indexes records the
  definitions it dropped before dropping them, so a load killed at any point can put them back
  (`incidents import` of the same file does, first thing).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OLD_DUPLICATES = """
CREATE OR REPLACE FUNCTION incident_possible_duplicates(
    p_lon float8, p_lat float8, p_event_type text, p_event_date date,
    p_external_id text, p_actors text[]
) RETURNS bigint[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(d.id ORDER BY d.id), '{}') FROM (
        SELECT i.id FROM incidents i
        WHERE cardinality(array_remove(p_actors, NULL)) > 0
          AND i.geom && ST_Expand(ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326),
                                  0.0182 / greatest(cos(radians(p_lat)), 0.01), 0.0182)
          AND i.deleted_at IS NULL
          AND i.event_type = p_event_type
          AND i.event_date BETWEEN p_event_date - 1 AND p_event_date + 1
          AND i.external_id IS DISTINCT FROM p_external_id
          AND ARRAY[lower(i.actor1), lower(i.assoc_actor_1), lower(i.actor2),
                    lower(i.assoc_actor_2)]
              && (SELECT array_agg(lower(a)) FROM unnest(p_actors) a)
          AND _ST_DWithin(i.geom::geography,
                          ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326)::geography,
                          2000, true)
        LIMIT 10
    ) d
$$
"""


def upgrade() -> None:
    # 2 km is 0.0182 degrees of latitude (with margin); longitude degrees shrink with latitude.
    op.execute(
        """
        CREATE FUNCTION incident_duplicate_box(g geometry) RETURNS geometry
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT ST_Expand(g, 0.0182 / greatest(cos(radians(ST_Y(g))), 0.01), 0.0182)
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION incident_duplicate_pair(
            a_geom geometry, a_type text, a_date date, a_external_id text, a_actors text[],
            b_geom geometry, b_type text, b_date date, b_external_id text, b_actors text[]
        ) RETURNS boolean
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT a_type = b_type
               AND b_date BETWEEN a_date - 1 AND a_date + 1
               AND a_external_id IS DISTINCT FROM b_external_id
               AND a_actors && b_actors
               AND _ST_DWithin(a_geom::geography, b_geom::geography, 2000, true)
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION incident_lat_cell(g geometry) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT floor(ST_Y(g) / 0.02)::integer $$
        """
    )
    op.execute(
        "CREATE INDEX incidents_duplicates ON incidents "
        "(event_type, incident_lat_cell(geom), event_date) WHERE deleted_at IS NULL"
    )
    # The actors of an incident as the pair rule compares them.
    op.execute(
        """
        CREATE FUNCTION incident_duplicate_actors(a1 text, a2 text, a3 text, a4 text)
        RETURNS text[]
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT array_remove(ARRAY[lower(a1), lower(a2), lower(a3), lower(a4)], NULL)
        $$
        """
    )
    op.execute(
        """
        CREATE OR REPLACE FUNCTION incident_possible_duplicates(
            p_lon float8, p_lat float8, p_event_type text, p_event_date date,
            p_external_id text, p_actors text[]
        ) RETURNS bigint[]
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
            SELECT coalesce(array_agg(d.id ORDER BY d.id), '{}') FROM (
                SELECT i.id FROM incidents i,
                     (SELECT ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326) AS g,
                             incident_duplicate_actors(p_actors[1], p_actors[2], p_actors[3],
                                                       p_actors[4]) AS actors) p
                WHERE cardinality(p.actors) > 0
                  AND i.event_type = p_event_type
                  AND incident_lat_cell(i.geom) = ANY (ARRAY[
                      incident_lat_cell(p.g) - 1, incident_lat_cell(p.g),
                      incident_lat_cell(p.g) + 1])
                  AND i.event_date BETWEEN p_event_date - 1 AND p_event_date + 1
                  AND i.geom && incident_duplicate_box(p.g)
                  AND i.deleted_at IS NULL
                  AND incident_duplicate_pair(
                      p.g, p_event_type, p_event_date, p_external_id, p.actors,
                      i.geom, i.event_type, i.event_date, i.external_id,
                      incident_duplicate_actors(i.actor1, i.assoc_actor_1, i.actor2,
                                                i.assoc_actor_2))
                ORDER BY i.id
                LIMIT 10
            ) d
        $$
        """
    )
    op.execute(
        "ALTER TABLE incident_revisions DROP CONSTRAINT IF EXISTS incident_revisions_incident_id_fkey"
    )
    op.execute(
        "ALTER TABLE import_jobs ADD COLUMN phase text NOT NULL DEFAULT 'rows' "
        "CHECK (phase IN ('rows', 'loading', 'indexing', 'done'))"
    )
    op.execute("ALTER TABLE import_jobs ADD COLUMN indexes jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE import_jobs DROP COLUMN IF EXISTS indexes")
    op.execute(
        "ALTER TABLE incident_revisions DROP CONSTRAINT IF EXISTS "
        "incident_revisions_incident_id_fkey"
    )
    op.execute(
        "ALTER TABLE incident_revisions ADD CONSTRAINT incident_revisions_incident_id_fkey "
        "FOREIGN KEY (incident_id) REFERENCES incidents (id) ON DELETE CASCADE"
    )
    op.execute("ALTER TABLE import_jobs DROP COLUMN IF EXISTS phase")
    op.execute(OLD_DUPLICATES)
    op.execute("DROP INDEX IF EXISTS incidents_duplicates")
    op.execute("DROP FUNCTION IF EXISTS incident_lat_cell(geometry)")
    op.execute("DROP FUNCTION IF EXISTS incident_duplicate_actors(text, text, text, text)")
    op.execute(
        "DROP FUNCTION IF EXISTS incident_duplicate_pair(geometry, text, date, text, text[], "
        "geometry, text, date, text, text[])"
    )
    op.execute("DROP FUNCTION IF EXISTS incident_duplicate_box(geometry)")
