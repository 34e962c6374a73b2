"""Covering indexes for dashboard filters: stats over a governorate or country read only the
index (date and fatalities included) instead of visiting every matching row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEXES = {
    "incidents_admin1": "app_norm(admin1), event_date DESC",
    "incidents_admin2": "app_norm(admin2), event_date DESC",
    "incidents_country": "country_code, event_date DESC",
}
INCLUDE = {
    "incidents_admin1": "admin1, fatalities, event_type",
    "incidents_admin2": "admin2, fatalities, event_type",
    "incidents_country": "fatalities, event_type",
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute(
            f"CREATE INDEX {name} ON incidents ({columns}) INCLUDE ({INCLUDE[name]}) "
            "WHERE deleted_at IS NULL"
        )


def downgrade() -> None:
    for name, columns in INDEXES.items():
        op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute(f"CREATE INDEX {name} ON incidents ({columns}) WHERE deleted_at IS NULL")
