"""Time travel (`as_of`) and location uncertainty.

`incidents_as_of(t)` is the store as it stood at instant `t`: the current rows written at or
before `t` (a current row is valid from its `updated_at`) and the superseded versions whose
`valid` range holds `t` (`incident_history`, migration 0011), deleted ones included (readers
filter `deleted_at` as they do on `incidents`). It is one inlinable SQL function, so a query
over it is planned as a UNION ALL of the two tables with its conditions pushed into both:
a radius search uses the GiST index on `incidents.geom` and the new GiST index on
`incident_history (geom, valid)`; a date filter `incident_history (event_date, valid)`
(btree_gist); a page in date order each table's (event_date, id) btree, the current rows
written by then `incidents (updated_at)`; a get-one the primary keys. The write paths keep
every version's range apart: an update sets `updated_at` to `greatest(now(), updated_at)`, so a version never starts before
the one it supersedes (two overlapping writers of one row used to be able to invert them).

`uncertainty_km` (>= 0, optional) on incidents and their history: how far from its point the
incident may have happened, as given (or as a UCDP import derived it from `where_prec`); the
default for its `geo_precision` is applied when it is read (`app/incidents/uncertainty.py`).
A partial index on it finds the few incidents whose uncertainty is larger than every default:
`match=possible` searches those and the circle grown by the largest default, both from
indexes, then checks each exactly.

A migration that adds a column to `incidents` (and `incident_history`) calls
`incidents_as_of_refresh()` afterwards, so the function returns the new row type.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")  # since 0003; kept on downgrade
    for table in ("incidents", "incident_history"):
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN uncertainty_km real "
            f"CONSTRAINT {table}_uncertainty_km_check CHECK (uncertainty_km >= 0)"
        )
        op.execute(
            f"CREATE INDEX {table}_uncertainty ON {table} (uncertainty_km) "
            "WHERE uncertainty_km IS NOT NULL"
        )
    op.execute("CREATE INDEX incident_history_geom_valid ON incident_history USING gist (geom, valid)")
    op.execute(
        "CREATE INDEX incident_history_date_valid ON incident_history USING gist (event_date, valid)"
    )
    # Newest-first pages of the past walk each half by date, as live pages walk incidents'
    # (event_date, id); and "written by then" on incidents is a range of updated_at.
    op.execute("CREATE INDEX incident_history_date_id ON incident_history (event_date, id)")
    op.execute("CREATE INDEX incidents_updated_at ON incidents (updated_at)")
    op.execute(
        """
        CREATE FUNCTION incidents_as_of_refresh() RETURNS void
        LANGUAGE plpgsql AS $fn$
        DECLARE
            cols text;
        BEGIN
            SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
            FROM pg_attribute
            WHERE attrelid = 'incidents'::regclass AND attnum > 0 AND NOT attisdropped;
            EXECUTE 'DROP FUNCTION IF EXISTS incidents_as_of(timestamptz)';
            EXECUTE format(
                'CREATE FUNCTION incidents_as_of(t timestamptz) RETURNS SETOF incidents '
                'LANGUAGE sql STABLE PARALLEL SAFE AS $body$ '
                'SELECT %1$s FROM incidents WHERE updated_at <= t '
                'UNION ALL '
                'SELECT %1$s FROM incident_history WHERE valid @> t '
                '$body$', cols);
        END
        $fn$
        """
    )
    op.execute("SELECT incidents_as_of_refresh()")
    op.execute("ANALYZE incident_history")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS incidents_as_of(timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS incidents_as_of_refresh()")
    op.execute("DROP INDEX IF EXISTS incident_history_geom_valid")
    op.execute("DROP INDEX IF EXISTS incident_history_date_valid")
    op.execute("DROP INDEX IF EXISTS incident_history_date_id")
    op.execute("DROP INDEX IF EXISTS incidents_updated_at")
    for table in ("incidents", "incident_history"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS uncertainty_km")
