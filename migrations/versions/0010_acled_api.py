"""What the ACLED-compatible API needs: actor-type codes, numeric country codes, ACLED regions.

- `incidents.inter1`, `incidents.inter2`: ACLED's actor-type codes (1 State forces ... 8
  External/other forces), stored when a file carries them (ACLED exports do);
  `acled_inter(actor)` derives a code from an actor's name where none was stored.
- `acled_regions` (ACLED's 17 regions) and `countries.iso_n3` / `countries.acled_region`, filled
  by `incidents places load`: the `iso` and `region` columns of ACLED rows.
- A partial index over deleted incidents for `/api/deleted/read`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

REGIONS = [
    (1, "Western Africa"),
    (2, "Middle Africa"),
    (3, "Eastern Africa"),
    (4, "Southern Africa"),
    (5, "Northern Africa"),
    (7, "South Asia"),
    (9, "Southeast Asia"),
    (11, "Middle East"),
    (12, "Europe"),
    (13, "Caucasus and Central Asia"),
    (14, "Central America"),
    (15, "South America"),
    (16, "Caribbean"),
    (17, "East Asia"),
    (18, "North America"),
    (19, "Oceania"),
    (20, "Antarctica"),
]


def upgrade() -> None:
    op.execute(
        "ALTER TABLE incidents ADD COLUMN inter1 smallint, ADD COLUMN inter2 smallint, "
        "ADD CONSTRAINT inter_codes CHECK (inter1 BETWEEN 0 AND 8 AND inter2 BETWEEN 0 AND 8)"
    )
    op.execute("CREATE TABLE acled_regions (code smallint PRIMARY KEY, name text NOT NULL)")
    values = ", ".join(f"({code}, '{name}')" for code, name in REGIONS)
    op.execute(f"INSERT INTO acled_regions (code, name) VALUES {values}")
    op.execute(
        "ALTER TABLE countries ADD COLUMN iso_n3 smallint, "
        "ADD COLUMN acled_region smallint REFERENCES acled_regions (code)"
    )
    # An actor's ACLED type from its name, following ACLED's naming conventions ("Military
    # Forces of Iraq", "Protesters (Iraq)", "Civilians (Iraq)", "Unidentified Armed Group",
    # "... Communal Militia", "Islamic State (Iraq)"); NULL when the name says nothing.
    op.execute(
        r"""
        CREATE FUNCTION acled_inter(actor text) RETURNS smallint
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT CASE
                WHEN actor IS NULL OR btrim(actor) = '' THEN 0
                WHEN actor ~* '^(military|police|government|state) forces of' THEN 1
                WHEN actor ~* '^(civilians|refugees|prisoners|health workers|journalists)'
                    THEN 7
                WHEN actor ~* '^protesters' THEN 6
                WHEN actor ~* '^rioters' THEN 5
                WHEN actor ~* '(communal|ethnic|clan|tribal) militia|militia \(' THEN 4
                WHEN actor ~* ('(private security|united nations|peacekeep|multinational|'
                               || 'international|foreign|mercenar|wagner)') THEN 8
                WHEN actor ~* '(militia|unidentified armed group)' THEN 3
                WHEN actor ~* ('(islamic state|al.?qaeda|al.?shabaab|boko haram|rebel|'
                               || 'liberation|front|insurgent|taliban|tahrir al.?sham|'
                               || 'workers.? party|PKK|jihad|mujahid)') THEN 2
                ELSE NULL
            END::smallint
        $$
        """
    )
    op.execute(
        "CREATE INDEX incidents_deleted ON incidents (deleted_at, id) WHERE deleted_at IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS incidents_deleted")
    op.execute("DROP FUNCTION IF EXISTS acled_inter(text)")
    op.execute("ALTER TABLE countries DROP COLUMN IF EXISTS acled_region, DROP COLUMN IF EXISTS iso_n3")
    op.execute("DROP TABLE IF EXISTS acled_regions")
    op.execute(
        "ALTER TABLE incidents DROP CONSTRAINT IF EXISTS inter_codes, "
        "DROP COLUMN IF EXISTS inter2, DROP COLUMN IF EXISTS inter1"
    )
