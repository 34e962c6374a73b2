"""Hexagon grid rollup: live incidents per month and hexagon for the common cell sizes.

`incident_hex_q` / `incident_hex_r` are the one definition of which flat-topped hexagon a
point falls in (axial coordinates, cube rounding), used by /v1/stats/grid and by the trigger
that keeps `incident_grid_cells` current for edges of 10, 25, 50 and 100 km. Same delta rows
(`incident_rollup_deltas`) and compaction as migration 0006.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

EDGES_KM = "ARRAY[10, 25, 50, 100]"
# Each delta row once per edge, its EPSG:6933 coordinates in edges (float8, computed once:
# OFFSET 0 keeps the hexagon functions' many references to x and y from recomputing them).
SCALED = (
    "SELECT e.km, d.month, d.sign, d.fatalities, d.px / (e.km * 1000)::float8 AS x, "
    f"d.py / (e.km * 1000)::float8 AS y FROM d CROSS JOIN unnest({EDGES_KM}) AS e(km) OFFSET 0"
)

# x, y: EPSG:6933 metres divided by the hexagon edge. One non-STRICT expression each, so
# PostgreSQL inlines the functions into the calling query when x and y are plain columns
# (callers compute them in a subquery behind OFFSET 0).
AXIAL_Q = "(2.0 / 3 * x)"
AXIAL_R = "(-1.0 / 3 * x + sqrt(3) / 3 * y)"
Q_FAR = (
    f"abs(round({AXIAL_Q}) - {AXIAL_Q}) > abs(round({AXIAL_R}) - {AXIAL_R}) "
    f"AND abs(round({AXIAL_Q}) - {AXIAL_Q}) > "
    f"abs(round(-{AXIAL_Q} - {AXIAL_R}) + {AXIAL_Q} + {AXIAL_R})"
)
R_FAR = (
    f"abs(round({AXIAL_R}) - {AXIAL_R}) > abs(round(-{AXIAL_Q} - {AXIAL_R}) + {AXIAL_Q} + "
    f"{AXIAL_R})"
)


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION incident_hex_q(x float8, y float8) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT (CASE WHEN {Q_FAR}
                         THEN -round({AXIAL_R}) - round(-{AXIAL_Q} - {AXIAL_R})
                         ELSE round({AXIAL_Q}) END)::integer
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION incident_hex_r(x float8, y float8) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT (CASE WHEN {Q_FAR} THEN round({AXIAL_R})
                         WHEN {R_FAR} THEN -round({AXIAL_Q}) - round(-{AXIAL_Q} - {AXIAL_R})
                         ELSE round({AXIAL_R}) END)::integer
        $$
        """
    )
    op.execute(
        """
        CREATE TABLE incident_grid_cells (
            edge_km smallint NOT NULL,
            month date NOT NULL,
            q integer NOT NULL,
            r integer NOT NULL,
            incidents bigint NOT NULL,
            fatalities bigint NOT NULL,
            merged boolean NOT NULL DEFAULT false
        )
        """
    )
    op.execute("CREATE INDEX incident_grid_cells_month ON incident_grid_cells (edge_km, month)")
    op.execute(
        "CREATE INDEX incident_grid_cells_deltas ON incident_grid_cells (edge_km, month) "
        "WHERE NOT merged"
    )
    op.execute(
        f"""
        CREATE FUNCTION incident_grid_cells_apply() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        DECLARE
            cols constant text := 'event_date, fatalities, geom';
            src text;
        BEGIN
            src := incident_rollup_deltas(TG_OP, cols);
            EXECUTE format($sql$
                WITH d AS MATERIALIZED (
                    SELECT date_trunc('month', event_date)::date AS month, sign, fatalities,
                           ST_X(p) AS px, ST_Y(p) AS py
                    FROM (SELECT ST_Transform(geom, 6933) AS p, * FROM (%s) s0 OFFSET 0) s1
                )
                INSERT INTO incident_grid_cells (edge_km, month, q, r, incidents, fatalities)
                SELECT km, month, incident_hex_q(x, y), incident_hex_r(x, y), sum(sign),
                       sum(sign * fatalities)
                FROM ({SCALED}) c
                GROUP BY 1, 2, 3, 4
                HAVING sum(sign) <> 0 OR sum(sign * fatalities) <> 0
            $sql$, src);
            RETURN NULL;
        END
        $fn$
        """
    )
    op.execute(
        "CREATE TRIGGER incidents_grid_insert AFTER INSERT ON incidents "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION incident_grid_cells_apply()"
    )
    op.execute(
        "CREATE TRIGGER incidents_grid_update AFTER UPDATE ON incidents "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION incident_grid_cells_apply()"
    )
    op.execute(
        "CREATE TRIGGER incidents_grid_delete AFTER DELETE ON incidents "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION incident_grid_cells_apply()"
    )
    op.execute(
        """
        CREATE FUNCTION incident_grid_cells_truncate() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            TRUNCATE incident_grid_cells;
            RETURN NULL;
        END
        $fn$
        """
    )
    op.execute(
        "CREATE TRIGGER incidents_grid_truncate AFTER TRUNCATE ON incidents "
        "FOR EACH STATEMENT EXECUTE FUNCTION incident_grid_cells_truncate()"
    )
    op.execute(
        """
        CREATE FUNCTION incident_grid_cells_compact() RETURNS bigint
        LANGUAGE plpgsql VOLATILE AS $fn$
        DECLARE
            folded bigint;
        BEGIN
            -- One at a time, as incident_rollups_compact (0006).
            IF NOT pg_try_advisory_xact_lock(hashtext('incident_grid_cells_compact')) THEN
                RETURN 0;
            END IF;
            WITH dirty AS (
                SELECT DISTINCT edge_km, month, q, r FROM incident_grid_cells WHERE NOT merged
            ), gone AS (
                DELETE FROM incident_grid_cells c USING dirty d
                WHERE (c.edge_km, c.month, c.q, c.r) = (d.edge_km, d.month, d.q, d.r)
                RETURNING c.*
            ), merged AS (
                INSERT INTO incident_grid_cells (edge_km, month, q, r, incidents, fatalities,
                                                 merged)
                SELECT edge_km, month, q, r, sum(incidents), sum(fatalities), true FROM gone
                GROUP BY edge_km, month, q, r
                HAVING sum(incidents) <> 0 OR sum(fatalities) <> 0
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM gone) + 0 * (SELECT count(*) FROM merged)
            INTO folded;
            RETURN folded;
        END
        $fn$
        """
    )
    op.execute(
        f"""
        WITH d AS MATERIALIZED (
            SELECT date_trunc('month', event_date)::date AS month, 1 AS sign, fatalities,
                   ST_X(p) AS px, ST_Y(p) AS py
            FROM (SELECT ST_Transform(geom, 6933) AS p, event_date, fatalities FROM incidents
                  WHERE deleted_at IS NULL OFFSET 0) s
        )
        INSERT INTO incident_grid_cells (edge_km, month, q, r, incidents, fatalities, merged)
        SELECT km, month, incident_hex_q(x, y), incident_hex_r(x, y), count(*),
               sum(fatalities), true
        FROM ({SCALED}) c
        GROUP BY 1, 2, 3, 4
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS incidents_grid_truncate ON incidents")
    op.execute("DROP TRIGGER IF EXISTS incidents_grid_delete ON incidents")
    op.execute("DROP TRIGGER IF EXISTS incidents_grid_update ON incidents")
    op.execute("DROP TRIGGER IF EXISTS incidents_grid_insert ON incidents")
    op.execute("DROP FUNCTION IF EXISTS incident_grid_cells_compact()")
    op.execute("DROP FUNCTION IF EXISTS incident_grid_cells_truncate()")
    op.execute("DROP FUNCTION IF EXISTS incident_grid_cells_apply()")
    op.execute("DROP TABLE IF EXISTS incident_grid_cells")
    op.execute("DROP FUNCTION IF EXISTS incident_hex_r(float8, float8)")
    op.execute("DROP FUNCTION IF EXISTS incident_hex_q(float8, float8)")
