"""Rollups for dashboards, kept current by the write path.

- `incident_rollup_month`: live incidents and fatalities per month and attribute key (country,
  admin1, admin2, event/sub-event/disorder type); serves /v1/stats over whole months.
- `incident_tile_cells`: live incidents per Web Mercator cell of zoom 14 (a 64x64 grid of a
  zoom-8 tile), with fatalities and coordinate sums; serves unfiltered cluster tiles (z0-z8).

Statement-level triggers (with transition tables, so a 50,000-row bulk statement costs one
aggregate, not 50,000) append *delta* rows: never an update of a shared row, so concurrent
writers never wait on or deadlock over a rollup row. Readers sum the rows of a key;
`incident_rollups_compact()` folds the deltas into one row per key (run after bulk loads and
periodically by the API). Missing attributes are stored as '' so keys compare with `=`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Web Mercator: half the world's width in metres, and the size of a zoom-14 cell (a tile of
# zoom z is split into 64x64 cells, so zoom 8 clusters are exactly these cells).
HALF = "20037508.342789244"
CELL = "(40075016.68557849 / 16384)"
# The latitude where Web Mercator's square world ends (ST_TileEnvelope's edge).
MAX_LAT = "85.0511287798066"
# A point's zoom-14 cell; points on the world's east or south edge belong to the last cell.
CX = f"least(floor((ST_X(g) + {HALF}) / {CELL})::int, 16383)"
CY = f"least(floor(({HALF} - ST_Y(g)) / {CELL})::int, 16383)"

MONTH_KEYS = (
    "month, country, country_code, admin1, admin2, event_type, sub_event_type, disorder_type"
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE incident_rollup_month (
            month date NOT NULL,
            country text NOT NULL,
            country_code text NOT NULL,
            admin1 text NOT NULL,
            admin2 text NOT NULL,
            event_type text NOT NULL,
            sub_event_type text NOT NULL,
            disorder_type text NOT NULL,
            incidents bigint NOT NULL,
            fatalities bigint NOT NULL,
            merged boolean NOT NULL DEFAULT false
        )
        """
    )
    op.execute("CREATE INDEX incident_rollup_month_month ON incident_rollup_month (month)")
    # The filters stats apply most: admin-1 by name (normalised, as on incidents) and country.
    op.execute(
        "CREATE INDEX incident_rollup_month_admin1 ON incident_rollup_month "
        "(app_norm(admin1), month)"
    )
    op.execute(
        "CREATE INDEX incident_rollup_month_country ON incident_rollup_month (country_code, month)"
    )
    op.execute(
        "CREATE INDEX incident_rollup_month_deltas ON incident_rollup_month (month) "
        "WHERE NOT merged"
    )
    op.execute(
        """
        CREATE TABLE incident_tile_cells (
            cx integer NOT NULL,
            cy integer NOT NULL,
            incidents bigint NOT NULL,
            fatalities bigint NOT NULL,
            sum_x float8 NOT NULL,
            sum_y float8 NOT NULL,
            merged boolean NOT NULL DEFAULT false
        )
        """
    )
    op.execute("CREATE INDEX incident_tile_cells_xy ON incident_tile_cells (cx, cy)")
    op.execute(
        "CREATE INDEX incident_tile_cells_deltas ON incident_tile_cells (cx, cy) WHERE NOT merged"
    )

    # The live rows a statement added (+1) and removed (-1), from its transition tables, as SQL
    # text: which tables exist depends on the operation, so each rollup trigger runs its one
    # aggregate dynamically over this source (planned per statement, not per row).
    op.execute(
        """
        CREATE FUNCTION incident_rollup_deltas(op text, cols text) RETURNS text
        LANGUAGE sql IMMUTABLE AS $fn$
            SELECT CASE op
                WHEN 'INSERT' THEN
                    format('SELECT %s, 1 AS sign FROM new_rows WHERE deleted_at IS NULL', cols)
                WHEN 'DELETE' THEN
                    format('SELECT %s, -1 AS sign FROM old_rows WHERE deleted_at IS NULL', cols)
                ELSE format('SELECT %1$s, 1 AS sign FROM new_rows WHERE deleted_at IS NULL '
                            'UNION ALL SELECT %1$s, -1 FROM old_rows WHERE deleted_at IS NULL',
                            cols)
            END
        $fn$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION incident_rollups_apply() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        DECLARE
            cols constant text := 'event_date, country, country_code, admin1, admin2, '
                || 'event_type, sub_event_type, disorder_type, fatalities, geom';
            src text;
        BEGIN
            src := incident_rollup_deltas(TG_OP, cols);
            EXECUTE format($sql$
                WITH d AS (%s),
                months AS (
                    INSERT INTO incident_rollup_month
                        ({MONTH_KEYS}, incidents, fatalities)
                    SELECT date_trunc('month', event_date)::date, coalesce(country, ''),
                           coalesce(country_code, ''), coalesce(admin1, ''),
                           coalesce(admin2, ''), event_type, coalesce(sub_event_type, ''),
                           coalesce(disorder_type, ''), sum(sign), sum(sign * fatalities)
                    FROM d GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
                    HAVING sum(sign) <> 0 OR sum(sign * fatalities) <> 0
                ),
                merc AS MATERIALIZED (
                    SELECT ST_Transform(geom, 3857) AS g, sign, fatalities FROM d
                    WHERE ST_Y(geom) BETWEEN -{MAX_LAT} AND {MAX_LAT}
                )
                INSERT INTO incident_tile_cells (cx, cy, incidents, fatalities, sum_x, sum_y)
                SELECT {CX}, {CY}, sum(sign), sum(sign * fatalities), sum(sign * ST_X(g)),
                       sum(sign * ST_Y(g))
                FROM merc GROUP BY 1, 2
                HAVING sum(sign) <> 0 OR sum(sign * fatalities) <> 0
                    OR sum(sign * ST_X(g)) <> 0 OR sum(sign * ST_Y(g)) <> 0
            $sql$, src);
            RETURN NULL;
        END
        $fn$
        """
    )
    op.execute(
        "CREATE TRIGGER incidents_rollups_insert AFTER INSERT ON incidents "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION incident_rollups_apply()"
    )
    op.execute(
        "CREATE TRIGGER incidents_rollups_update AFTER UPDATE ON incidents "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION incident_rollups_apply()"
    )
    op.execute(
        "CREATE TRIGGER incidents_rollups_delete AFTER DELETE ON incidents "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION incident_rollups_apply()"
    )
    op.execute(
        """
        CREATE FUNCTION incident_rollups_truncate() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            TRUNCATE incident_rollup_month, incident_tile_cells;
            RETURN NULL;
        END
        $fn$
        """
    )
    op.execute(
        "CREATE TRIGGER incidents_rollups_truncate AFTER TRUNCATE ON incidents "
        "FOR EACH STATEMENT EXECUTE FUNCTION incident_rollups_truncate()"
    )

    # Folds every key that has deltas into one merged row. Safe beside writers (their deltas
    # are not visible to this statement's snapshot and stay for the next run) and beside
    # another compaction (a row deleted by both is summed by the one that deleted it).
    op.execute(
        f"""
        CREATE FUNCTION incident_rollups_compact() RETURNS bigint
        LANGUAGE plpgsql VOLATILE AS $fn$
        DECLARE
            folded bigint;
        BEGIN
            -- One compaction at a time (two deleting the same rows in different orders could
            -- deadlock); a caller that finds one running skips, the next round folds the rest.
            IF NOT pg_try_advisory_xact_lock(hashtext('incident_rollups_compact')) THEN
                RETURN 0;
            END IF;
            WITH dirty_months AS (
                SELECT DISTINCT {MONTH_KEYS} FROM incident_rollup_month WHERE NOT merged
            ), gone_months AS (
                DELETE FROM incident_rollup_month r USING dirty_months d
                WHERE (r.month, r.country, r.country_code, r.admin1, r.admin2, r.event_type,
                       r.sub_event_type, r.disorder_type)
                    = (d.month, d.country, d.country_code, d.admin1, d.admin2, d.event_type,
                       d.sub_event_type, d.disorder_type)
                RETURNING r.*
            ), merged_months AS (
                INSERT INTO incident_rollup_month ({MONTH_KEYS}, incidents, fatalities, merged)
                SELECT {MONTH_KEYS}, sum(incidents), sum(fatalities), true FROM gone_months
                GROUP BY {MONTH_KEYS} HAVING sum(incidents) <> 0 OR sum(fatalities) <> 0
                RETURNING 1
            ), dirty_cells AS (
                SELECT DISTINCT cx, cy FROM incident_tile_cells WHERE NOT merged
            ), gone_cells AS (
                DELETE FROM incident_tile_cells c USING dirty_cells d
                WHERE (c.cx, c.cy) = (d.cx, d.cy)
                RETURNING c.*
            ), merged_cells AS (
                INSERT INTO incident_tile_cells (cx, cy, incidents, fatalities, sum_x, sum_y,
                                                 merged)
                SELECT cx, cy, sum(incidents), sum(fatalities), sum(sum_x), sum(sum_y), true
                FROM gone_cells GROUP BY cx, cy
                HAVING sum(incidents) <> 0 OR sum(fatalities) <> 0
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM gone_months) + (SELECT count(*) FROM gone_cells)
                   + 0 * ((SELECT count(*) FROM merged_months)
                          + (SELECT count(*) FROM merged_cells))
            INTO folded;
            RETURN folded;
        END
        $fn$
        """
    )
    # Existing incidents: one merged row per key.
    op.execute(
        f"""
        INSERT INTO incident_rollup_month ({MONTH_KEYS}, incidents, fatalities, merged)
        SELECT date_trunc('month', event_date)::date, coalesce(country, ''),
               coalesce(country_code, ''), coalesce(admin1, ''), coalesce(admin2, ''),
               event_type, coalesce(sub_event_type, ''), coalesce(disorder_type, ''),
               count(*), sum(fatalities), true
        FROM incidents WHERE deleted_at IS NULL GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        """
    )
    op.execute(
        f"""
        INSERT INTO incident_tile_cells (cx, cy, incidents, fatalities, sum_x, sum_y, merged)
        SELECT {CX}, {CY}, count(*), sum(fatalities), sum(ST_X(g)), sum(ST_Y(g)), true
        FROM (SELECT ST_Transform(geom, 3857) AS g, fatalities FROM incidents
              WHERE deleted_at IS NULL AND ST_Y(geom) BETWEEN -{MAX_LAT} AND {MAX_LAT}) s
        GROUP BY 1, 2
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS incidents_rollups_truncate ON incidents")
    op.execute("DROP TRIGGER IF EXISTS incidents_rollups_delete ON incidents")
    op.execute("DROP TRIGGER IF EXISTS incidents_rollups_update ON incidents")
    op.execute("DROP TRIGGER IF EXISTS incidents_rollups_insert ON incidents")
    op.execute("DROP FUNCTION IF EXISTS incident_rollups_compact()")
    op.execute("DROP FUNCTION IF EXISTS incident_rollups_truncate()")
    op.execute("DROP FUNCTION IF EXISTS incident_rollups_apply()")
    op.execute("DROP FUNCTION IF EXISTS incident_rollup_deltas(text, text)")
    op.execute("DROP TABLE IF EXISTS incident_tile_cells")
    op.execute("DROP TABLE IF EXISTS incident_rollup_month")
