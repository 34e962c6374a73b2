"""Rollup deltas as SQL text, so a big load can compute them beside its write.

The rollup triggers (0006, 0007) run one aggregate per statement over its transition tables.
For a load of a million rows that aggregate (and capturing the transition tables it reads)
is a quarter of the write, on the one core the INSERT already uses. These functions return
the statements the triggers run, for any source of delta rows and any target tables:

- `incident_rollups_sql(src, month_table, tiles_table)`: the monthly and tile-cell deltas;
- `incident_grid_sql(src, grid_table)`: the hexagon deltas;
- `incident_rollup_columns()`: the columns those read, listed once for triggers and loads.

The triggers EXECUTE them over their transition tables into the rollup tables (the same
statements as before). A rebuilding load (`incidents import`) disables the rollup triggers
inside its write transaction (which holds the lock that keeps other writers out until it
commits), has a second connection EXECUTE them over the batch and the rows it replaces into
work tables while the INSERT runs, and appends those rows to the rollups before committing.

`app_norm_all(text[])`: `app_norm` of each element, IMMUTABLE, so a filter on normalised names
is folded to constants at planning time and the planner sees the values (the
`ARRAY(SELECT app_norm(x) FROM unnest(...))` it replaces hid them: the admin-1 and admin-2
indexes were in no plan). Those indexes lose their INCLUDE columns (stats read rollups now).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# As in 0006 and 0007 (the text of those migrations, kept as it was).
HALF = "20037508.342789244"
CELL = "(40075016.68557849 / 16384)"
MAX_LAT = "85.0511287798066"
CX = f"least(floor((ST_X(g) + {HALF}) / {CELL})::int, 16383)"
CY = f"least(floor(({HALF} - ST_Y(g)) / {CELL})::int, 16383)"
MONTH_KEYS = (
    "month, country, country_code, admin1, admin2, event_type, sub_event_type, disorder_type"
)
EDGES_KM = "ARRAY[10, 25, 50, 100]"
SCALED = (
    "SELECT e.km, d.month, d.sign, d.fatalities, d.px / (e.km * 1000)::float8 AS x, "
    f"d.py / (e.km * 1000)::float8 AS y FROM d CROSS JOIN unnest({EDGES_KM}) AS e(km) OFFSET 0"
)
ROLLUP_COLS = (
    "event_date, country, country_code, admin1, admin2, event_type, sub_event_type, "
    "disorder_type, fatalities, geom"
)
GRID_COLS = "event_date, fatalities, geom"


def _rollups(src: str, month: str, tiles: str) -> str:
    """The monthly and tile-cell statement; each argument a format() placeholder."""
    return f"""
        WITH d AS ({src}),
        months AS (
            INSERT INTO {month}
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
        INSERT INTO {tiles} (cx, cy, incidents, fatalities, sum_x, sum_y)
        SELECT {CX}, {CY}, sum(sign), sum(sign * fatalities), sum(sign * ST_X(g)),
               sum(sign * ST_Y(g))
        FROM merc GROUP BY 1, 2
        HAVING sum(sign) <> 0 OR sum(sign * fatalities) <> 0
            OR sum(sign * ST_X(g)) <> 0 OR sum(sign * ST_Y(g)) <> 0
    """


def _grid(src: str, grid: str) -> str:
    return f"""
        WITH d AS MATERIALIZED (
            SELECT date_trunc('month', event_date)::date AS month, sign, fatalities,
                   ST_X(p) AS px, ST_Y(p) AS py
            FROM (SELECT ST_Transform(geom, 6933) AS p, * FROM ({src}) s0 OFFSET 0) s1
        )
        INSERT INTO {grid} (edge_km, month, q, r, incidents, fatalities)
        SELECT km, month, incident_hex_q(x, y), incident_hex_r(x, y), sum(sign),
               sum(sign * fatalities)
        FROM ({SCALED}) c
        GROUP BY 1, 2, 3, 4
        HAVING sum(sign) <> 0 OR sum(sign * fatalities) <> 0
    """


def _trigger(name: str, cols: str, statement: str) -> str:
    """`cols`: the columns' list as SQL (a literal, or the function that lists them)."""
    return f"""
        CREATE OR REPLACE FUNCTION {name}() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        DECLARE
            cols constant text := {cols};
            src text;
        BEGIN
            src := incident_rollup_deltas(TG_OP, cols);
            EXECUTE {statement};
            RETURN NULL;
        END
        $fn$
    """


INDEXES_NOW = {
    "incidents_admin1": "(app_norm(admin1), event_date DESC)",
    "incidents_admin2": "(app_norm(admin2), event_date DESC)",
    "incidents_country": "(country_code, event_date DESC)",
}
INDEXES_BEFORE = {
    "incidents_admin1": "(app_norm(admin1), event_date DESC) INCLUDE (admin1, fatalities, "
    "event_type)",
    "incidents_admin2": "(app_norm(admin2), event_date DESC) INCLUDE (admin2, fatalities, "
    "event_type)",
    "incidents_country": "(country_code, event_date DESC) INCLUDE (fatalities, event_type)",
}


def _indexes(definitions: dict[str, str]) -> None:
    for name, columns in definitions.items():
        op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute(f"CREATE INDEX {name} ON incidents {columns} WHERE deleted_at IS NULL")


def upgrade() -> None:
    # The columns the monthly and tile deltas read: the trigger's and a load's one list.
    op.execute(
        f"""
        CREATE FUNCTION incident_rollup_columns() RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$ SELECT '{ROLLUP_COLS}'::text $fn$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION incident_rollups_sql(src text, month_table text, tiles_table text)
        RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
            SELECT format($sql${_rollups("%1$s", "%2$I", "%3$I")}$sql$,
                          src, month_table, tiles_table)
        $fn$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION incident_grid_sql(src text, grid_table text)
        RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
            SELECT format($sql${_grid("%1$s", "%2$I")}$sql$, src, grid_table)
        $fn$
        """
    )
    op.execute(
        _trigger(
            "incident_rollups_apply",
            "incident_rollup_columns()",
            "incident_rollups_sql(src, 'incident_rollup_month', 'incident_tile_cells')",
        )
    )
    op.execute(
        _trigger(
            "incident_grid_cells_apply",
            f"'{GRID_COLS}'",
            "incident_grid_sql(src, 'incident_grid_cells')",
        )
    )
    op.execute(
        """
        CREATE FUNCTION app_norm_all(names text[]) RETURNS text[]
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
            SELECT coalesce(array_agg(app_norm(x)), '{}') FROM unnest(names) AS x
        $fn$
        """
    )
    _indexes(INDEXES_NOW)


def downgrade() -> None:
    _indexes(INDEXES_BEFORE)
    op.execute("DROP FUNCTION IF EXISTS app_norm_all(text[])")
    op.execute(
        _trigger(
            "incident_rollups_apply",
            f"'{ROLLUP_COLS}'",
            "format($sql$"
            + _rollups("%s", "incident_rollup_month", "incident_tile_cells")
            + "$sql$, src)",
        )
    )
    op.execute(
        _trigger(
            "incident_grid_cells_apply",
            f"'{GRID_COLS}'",
            "format($sql$" + _grid("%s", "incident_grid_cells") + "$sql$, src)",
        )
    )
    op.execute("DROP FUNCTION IF EXISTS incident_grid_sql(text, text)")
    op.execute("DROP FUNCTION IF EXISTS incident_rollups_sql(text, text, text)")
    op.execute("DROP FUNCTION IF EXISTS incident_rollup_columns()")
