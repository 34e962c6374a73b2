"""Ingest and sync: possible duplicates on incidents, resumable import jobs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One GiST over (point, date): radius/bbox searches use its first column as before, and
    # "within 2 km and 1 day" (duplicate detection on ingest) and "near X between dates" probe
    # both dimensions at once instead of scanning every incident near a busy city.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute("DROP INDEX IF EXISTS incidents_geom_gist")
    op.execute(
        "CREATE INDEX incidents_geom_gist ON incidents USING gist (geom, event_date) "
        "WHERE deleted_at IS NULL"
    )
    op.execute(
        "ALTER TABLE incidents ADD COLUMN possible_duplicates bigint[] NOT NULL DEFAULT '{}'"
    )
    op.execute(
        """
        CREATE TABLE import_jobs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            fingerprint text NOT NULL,
            path text NOT NULL,
            format text,
            rows_done bigint NOT NULL DEFAULT 0,
            inserted bigint NOT NULL DEFAULT 0,
            updated bigint NOT NULL DEFAULT 0,
            unchanged bigint NOT NULL DEFAULT 0,
            failed bigint NOT NULL DEFAULT 0,
            status text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'done', 'failed')),
            started_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX import_jobs_fingerprint ON import_jobs (fingerprint, status)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS incidents_geom_gist")
    op.execute(
        "CREATE INDEX incidents_geom_gist ON incidents USING gist (geom) WHERE deleted_at IS NULL"
    )
    op.execute("DROP TABLE IF EXISTS import_jobs")
    op.execute("ALTER TABLE incidents DROP COLUMN IF EXISTS possible_duplicates")
