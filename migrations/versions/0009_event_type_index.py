"""An index for filters on the event type, newest first.

`event_type = 'Battles'` (an OGC API CQL2 filter, `/v1?event_type=`, the ACLED API's most
common filter) with a bbox used to walk the date index and discard the other types: on the
1M-row benchmark, 20,676 rows read for 101 returned (170 ms). Walking this one reads 4,340
(12 ms).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS incidents_type_date ON incidents "
        "(event_type, event_date DESC, id DESC) WHERE deleted_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS incidents_type_date")
