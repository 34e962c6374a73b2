"""Incident store: incidents, revisions (history + change feed), API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # PostGIS may already exist (created by a superuser); creating it needs privileges.
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute(
        """
        CREATE TABLE incidents (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            external_id text UNIQUE,
            event_date date NOT NULL,
            event_date_end date,
            time_precision smallint NOT NULL DEFAULT 1,
            disorder_type text,
            event_type text NOT NULL,
            sub_event_type text,
            actor1 text,
            assoc_actor_1 text,
            actor2 text,
            assoc_actor_2 text,
            civilian_targeting boolean NOT NULL DEFAULT false,
            fatalities integer NOT NULL DEFAULT 0,
            fatalities_low integer,
            fatalities_high integer,
            country text,
            country_code text,
            admin1 text,
            admin2 text,
            admin3 text,
            location text,
            geom geometry(Point, 4326) NOT NULL,
            geo_precision smallint,
            source text,
            source_scale text,
            sources jsonb NOT NULL DEFAULT '[]',
            notes text,
            tags text[] NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            version integer NOT NULL DEFAULT 1,
            deleted_at timestamptz,
            CONSTRAINT fatalities_non_negative CHECK (fatalities >= 0),
            CONSTRAINT time_precision_range CHECK (time_precision IN (1, 2, 3)),
            CONSTRAINT end_after_start CHECK (event_date_end IS NULL OR event_date_end >= event_date)
        )
        """
    )
    # Live rows only: every query filters on deleted_at IS NULL, so the partial indexes match.
    op.execute(
        "CREATE INDEX incidents_geom_gist ON incidents USING gist (geom) WHERE deleted_at IS NULL"
    )
    op.execute(
        "CREATE INDEX incidents_date_id ON incidents (event_date DESC, id DESC) "
        "WHERE deleted_at IS NULL"
    )
    op.execute(
        """
        CREATE TABLE incident_revisions (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
            version integer NOT NULL,
            op text NOT NULL CHECK (op IN ('create', 'update', 'delete')),
            changed_by text,
            changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            changed_fields text[] NOT NULL DEFAULT '{}',
            data jsonb NOT NULL,
            txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            UNIQUE (incident_id, version)
        )
        """
    )
    op.execute("CREATE INDEX incident_revisions_feed ON incident_revisions (txid, seq)")
    # The audit trail is append-only: no UPDATE or DELETE of a revision, whoever asks.
    op.execute(
        """
        CREATE FUNCTION incident_revisions_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'incident_revisions is append-only';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER incident_revisions_no_change BEFORE UPDATE OR DELETE ON incident_revisions "
        "FOR EACH ROW EXECUTE FUNCTION incident_revisions_append_only()"
    )
    op.execute(
        """
        CREATE TABLE api_keys (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text NOT NULL,
            prefix text NOT NULL UNIQUE,
            key_hash text NOT NULL,
            scopes text[] NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS api_keys")
    op.execute("DROP TABLE IF EXISTS incident_revisions")
    op.execute("DROP FUNCTION IF EXISTS incident_revisions_append_only()")
    op.execute("DROP TABLE IF EXISTS incidents")
    # The postgis extension is left in place: other databases objects may depend on it.
