"""What a re-import needs to skip unchanged rows without validating them again.

`incidents.source_digest`: an MD5 (as uuid) of the raw row an import wrote the incident from
(with the file's header and the mapping's version), and `source_version`, the version it
wrote. A later import of a row with the same external id and digest, when the incident is
still at that version (nothing wrote it since) and live, is unchanged: counted, not staged.
`incident_history` copies every column of `incidents`, so it gets them too.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("incidents", "incident_history"):
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN source_digest uuid, ADD COLUMN source_version integer"
        )


def downgrade() -> None:
    for table in ("incidents", "incident_history"):
        op.execute(
            f"ALTER TABLE {table} DROP COLUMN IF EXISTS source_digest, "
            "DROP COLUMN IF EXISTS source_version"
        )
