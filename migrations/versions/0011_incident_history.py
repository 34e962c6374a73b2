"""Every version of every incident as a row, with the time it was valid.

`incident_history` holds each superseded version of an incident (the columns of `incidents`,
plus `valid`, the `tstzrange` during which it was the current version); the current version
is the row in `incidents` (valid from its `updated_at`). A statement-level trigger fills it
from the statement's transition tables whenever an UPDATE changes an incident's version
(patches, deletes, bulk upserts alike: one INSERT…SELECT per statement). A bulk create writes
no history at all: there is nothing superseded yet.

So `incident_revisions` no longer stores each version's JSON: a revision names the version,
and the change feed and the revisions endpoint read that version's row (current or history).
Creating a million incidents writes a million small revision rows, not a gigabyte of JSON.
Existing revisions' JSON becomes history rows here.

A migration that adds a column to `incidents` adds it to `incident_history` too (the trigger
copies the columns the two tables share; `tests/core/test_migrations.py` checks they match).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The stored (not generated) columns of incidents, from the catalog, in order.
COLUMNS_SQL = (
    "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
    "WHERE attrelid = 'incidents'::regclass AND attnum > 0 AND NOT attisdropped "
    "AND attgenerated = ''"
)


def upgrade() -> None:
    op.execute(
        "CREATE TABLE incident_history "
        "(LIKE incidents INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)"
    )
    op.execute("ALTER TABLE incident_history ALTER COLUMN id DROP IDENTITY IF EXISTS")
    op.execute("ALTER TABLE incident_history ADD COLUMN valid tstzrange NOT NULL")
    op.execute("ALTER TABLE incident_history ADD PRIMARY KEY (id, version)")
    op.execute(
        # `updated_at` is the writing transaction's start: two overlapping writers of one row
        # can commit in the other order, so a range is clamped (empty) rather than inverted;
        # readers of a past moment take the highest version valid then.
        f"""
        CREATE FUNCTION incident_history_capture() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        DECLARE
            cols text;
        BEGIN
            SELECT ({COLUMNS_SQL}) INTO cols;
            EXECUTE format(
                'INSERT INTO incident_history (%1$s, valid) '
                'SELECT %2$s, '
                'tstzrange(o.updated_at, greatest(o.updated_at, n.updated_at), ''[)'') '
                'FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE n.version <> o.version',
                cols, regexp_replace(cols, '([^, ]+)', 'o.\\1', 'g'));
            RETURN NULL;
        END
        $fn$
        """
    )
    op.execute(
        "CREATE TRIGGER incidents_history AFTER UPDATE ON incidents "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION incident_history_capture()"
    )
    # A truncated store has no history either.
    op.execute(
        """
        CREATE FUNCTION incident_history_truncate() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            TRUNCATE incident_history;
            RETURN NULL;
        END
        $fn$
        """
    )
    op.execute(
        "CREATE TRIGGER incidents_history_truncate AFTER TRUNCATE ON incidents "
        "FOR EACH STATEMENT EXECUTE FUNCTION incident_history_truncate()"
    )
    # Existing superseded versions, from their revisions' JSON.
    op.execute(
        f"""
        DO $do$
        DECLARE cols text;
        BEGIN
            SELECT ({COLUMNS_SQL}) INTO cols;
            EXECUTE format($sql$
                INSERT INTO incident_history (%1$s, valid)
                SELECT %2$s, tstzrange(v.r_changed, greatest(v.r_changed, v.r_next), '[)')
                FROM (
                    SELECT r.incident_id AS r_id, r.version AS r_version, r.op AS r_op,
                           r.changed_at AS r_changed, r.data AS r_data,
                           lead(r.changed_at) OVER w AS r_next,
                           (jsonb_populate_record(NULL::incidents,
                               r.data - 'possible_duplicates' - 'sources')).*,
                           r.data->'sources' AS j_sources,
                           r.data->'possible_duplicates' AS j_dups
                    FROM incident_revisions r
                    WINDOW w AS (PARTITION BY r.incident_id ORDER BY r.version)
                ) v
                JOIN incidents cur ON cur.id = v.r_id AND cur.version > v.r_version
            $sql$, cols, (
                SELECT string_agg(CASE c
                    WHEN 'id' THEN 'v.r_id'
                    WHEN 'version' THEN 'v.r_version'
                    WHEN 'geom' THEN 'ST_SetSRID(ST_MakePoint((v.r_data->>''longitude'')::float8, '
                                     '(v.r_data->>''latitude'')::float8), 4326)'
                    WHEN 'sources' THEN 'coalesce(v.j_sources, ''[]'')'
                    WHEN 'possible_duplicates' THEN 'coalesce(ARRAY(SELECT '
                        'jsonb_array_elements_text(v.j_dups)::bigint), ''{{}}'')'
                    WHEN 'deleted_at' THEN 'CASE WHEN v.r_op = ''delete'' THEN v.r_changed END'
                    WHEN 'updated_at' THEN 'v.r_changed'
                    ELSE 'v.' || c END, ', ')
                FROM unnest(string_to_array(cols, ', ')) c));
        END
        $do$
        """
    )
    op.execute("ALTER TABLE incident_revisions DROP COLUMN data")


def downgrade() -> None:
    op.execute("ALTER TABLE incident_revisions DISABLE TRIGGER incident_revisions_no_change")
    op.execute("ALTER TABLE incident_revisions ADD COLUMN data jsonb")
    op.execute(
        """
        UPDATE incident_revisions r SET data = (
            SELECT to_jsonb(x) - 'geom' - 'deleted_at' - 'actors_norm' - 'notes_tsv' - 'valid'
                   || jsonb_build_object('id', x.id::text, 'latitude', ST_Y(x.geom),
                                         'longitude', ST_X(x.geom),
                                         'possible_duplicates', x.possible_duplicates::text[])
            FROM (SELECT i.*, NULL::tstzrange AS valid FROM incidents i
                  WHERE i.id = r.incident_id AND i.version = r.version
                  UNION ALL
                  SELECT h.* FROM incident_history h
                  WHERE h.id = r.incident_id AND h.version = r.version) x
            LIMIT 1)
        """
    )
    op.execute("UPDATE incident_revisions SET data = '{}' WHERE data IS NULL")
    op.execute("ALTER TABLE incident_revisions ALTER COLUMN data SET NOT NULL")
    op.execute("ALTER TABLE incident_revisions ENABLE TRIGGER incident_revisions_no_change")
    op.execute("DROP TRIGGER IF EXISTS incidents_history ON incidents")
    op.execute("DROP TRIGGER IF EXISTS incidents_history_truncate ON incidents")
    op.execute("DROP FUNCTION IF EXISTS incident_history_capture()")
    op.execute("DROP FUNCTION IF EXISTS incident_history_truncate()")
    op.execute("DROP TABLE IF EXISTS incident_history")
