"""Alerts: geofence subscriptions, an outbox of webhook deliveries, and their attempts.

`alert_filter` is a search filter resolved into values the database compares (a circle, bbox
envelopes, an area's or a polygon's geometry, dates, taxonomy values, normalised names,
countries, an actor-alias pattern, a minimum of fatalities, a full-text query) plus `box`, an
envelope covering its spatial part (the world when it has none) that a GiST index on the
subscriptions is probed with. `alert_filter_matches(filter, <incident columns>)` is the one
definition of "this state of an incident matches", the same conditions as a search
(`app/search/query.py`), used for subscriptions and for live streams
(`app/alerts/stream.py`).

`incident_alert_states(id, version, op)` gives the states a revision is matched on: the
version it wrote and, for an update or a delete, the version before it (an incident that moves
out of a circle is an update its subscriber hears of).

The outbox: a statement-level trigger on `incident_revisions` (a revision is written in the
same statement as every change to an incident, by every write path) joins the statement's
revisions with the active subscriptions, set-based, and writes, in the writing transaction,
one `alert_matches` row per subscription with the changes it matched (an array of revision
seqs): an acknowledged write is never missed by an alert. A bulk import that matches two
million (subscription, change) pairs writes ten thousand small rows, not two million
deliveries. The delivery workers expand them into `alert_deliveries` (one row per event, with
its state and attempts) as they go (`app/alerts/delivery.py`).

A delivery or a match names its subscription without a foreign key: a subscription deleted
while a write matches it must not make that write fail (and the check would cost a lookup per
row); `app/alerts/service.py` deletes a subscription's matches and deliveries with it and the
worker drops any left behind. A bbox compares as a search's does (`&&` with each of its one or
two envelopes; no subquery, so the function stays inlined). With no active subscription the
trigger does nothing. JIT is off inside it (compiling the join cost more than running it for
every batch measured). A NOTIFY on `alert_deliveries` wakes the delivery workers when it
wrote matches.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# The incident columns a filter reads, in the order alert_filter_matches takes them.
STATE_COLUMNS = (
    "geom, event_date, fatalities, event_type, sub_event_type, disorder_type, admin1, admin2, "
    "country_code, country, actors_norm, notes_tsv"
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TYPE alert_filter AS (
            box geometry,
            center geography,
            radius_m float8,
            bbox geometry,
            region geometry,
            polygon geometry,
            start_date date,
            end_date date,
            event_types text[],
            sub_event_types text[],
            disorder_types text[],
            admin1 text[],
            admin2 text[],
            country_codes text[],
            country_names text[],
            actor_pattern text,
            min_fatalities integer,
            q text
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION alert_filter_matches(
            f alert_filter, p_geom geometry, p_event_date date, p_fatalities integer,
            p_event_type text, p_sub_event_type text, p_disorder_type text, p_admin1 text,
            p_admin2 text, p_country_code text, p_country text, p_actors_norm text,
            p_notes_tsv tsvector
        ) RETURNS boolean
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
        SELECT (f.center IS NULL OR _ST_DWithin(p_geom::geography, f.center, f.radius_m, true))
           AND (f.bbox IS NULL OR ST_GeometryN(f.bbox, 1) && p_geom
                OR coalesce(ST_GeometryN(f.bbox, 2) && p_geom, false))
           AND (f.region IS NULL OR ST_Intersects(f.region, p_geom))
           AND (f.polygon IS NULL OR ST_Intersects(f.polygon, p_geom))
           AND (f.start_date IS NULL OR p_event_date >= f.start_date)
           AND (f.end_date IS NULL OR p_event_date <= f.end_date)
           AND (f.event_types IS NULL OR p_event_type = ANY (f.event_types))
           AND (f.sub_event_types IS NULL OR p_sub_event_type = ANY (f.sub_event_types))
           AND (f.disorder_types IS NULL OR p_disorder_type = ANY (f.disorder_types))
           AND (f.admin1 IS NULL OR app_norm(p_admin1) = ANY (f.admin1))
           AND (f.admin2 IS NULL OR app_norm(p_admin2) = ANY (f.admin2))
           AND ((f.country_codes IS NULL AND f.country_names IS NULL)
                OR p_country_code = ANY (coalesce(f.country_codes, '{}'))
                OR app_norm(p_country) = ANY (coalesce(f.country_names, '{}')))
           AND (f.actor_pattern IS NULL OR p_actors_norm ~ f.actor_pattern)
           AND (f.min_fatalities IS NULL OR p_fatalities >= f.min_fatalities)
           AND (f.q IS NULL OR p_notes_tsv @@ websearch_to_tsquery('english'::regconfig, f.q))
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION incident_alert_states(p_id bigint, p_version integer, p_op text)
        RETURNS TABLE (geom geometry, event_date date, fatalities integer, event_type text,
            sub_event_type text, disorder_type text, admin1 text, admin2 text,
            country_code text, country text, actors_norm text, notes_tsv tsvector)
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
        SELECT {STATE_COLUMNS} FROM incidents WHERE id = p_id AND version = p_version
        UNION ALL
        SELECT {STATE_COLUMNS} FROM incident_history
        WHERE id = p_id AND (version = p_version OR (p_op <> 'create' AND version = p_version - 1))
        $$
        """
    )
    op.execute(
        """
        CREATE TABLE alert_subscriptions (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            key_id bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
            name text NOT NULL,
            webhook_url text NOT NULL,
            filter jsonb NOT NULL,
            match alert_filter NOT NULL,
            status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
            disabled_reason text,
            disabled_at timestamptz,
            secret text NOT NULL,
            previous_secret text,
            previous_secret_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX alert_subscriptions_key ON alert_subscriptions (key_id, created_at)")
    op.execute(
        "CREATE INDEX alert_subscriptions_box ON alert_subscriptions USING gist (((match).box)) "
        "WHERE status = 'active'"
    )
    op.execute(
        """
        CREATE TABLE alert_deliveries (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            subscription_id uuid NOT NULL,
            revision_seq bigint NOT NULL,
            message_id uuid NOT NULL DEFAULT gen_random_uuid(),
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_status_code integer,
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            delivered_at timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) "
        "WHERE status = 'pending'"
    )
    op.execute(
        "CREATE INDEX alert_deliveries_subscription ON alert_deliveries (subscription_id, id)"
    )
    op.execute(
        """
        CREATE TABLE alert_matches (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            subscription_id uuid NOT NULL,
            revision_seqs bigint[] NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE alert_attempts (
            delivery_id bigint NOT NULL REFERENCES alert_deliveries (id) ON DELETE CASCADE,
            attempt integer NOT NULL,
            at timestamptz NOT NULL DEFAULT now(),
            status_code integer,
            error text,
            duration_ms integer NOT NULL,
            PRIMARY KEY (delivery_id, attempt)
        )
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION alert_outbox_capture() RETURNS trigger
        LANGUAGE plpgsql SET jit = off AS $fn$
        DECLARE
            queued bigint;
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM alert_subscriptions WHERE status = 'active') THEN
                RETURN NULL;
            END IF;
            INSERT INTO alert_matches (subscription_id, revision_seqs)
            SELECT s.id, array_agg(DISTINCT r.seq ORDER BY r.seq)
            FROM new_revisions r
            CROSS JOIN LATERAL incident_alert_states(r.incident_id, r.version, r.op) st
            JOIN alert_subscriptions s ON s.status = 'active' AND (s.match).box && st.geom
             AND alert_filter_matches(s.match, {", ".join("st." + c for c in STATE_COLUMNS.split(", "))})
            GROUP BY s.id;
            GET DIAGNOSTICS queued = ROW_COUNT;
            IF queued > 0 THEN
                PERFORM pg_notify('alert_deliveries', '');
            END IF;
            RETURN NULL;
        END
        $fn$
        """
    )
    op.execute(
        "CREATE TRIGGER incident_revisions_alerts AFTER INSERT ON incident_revisions "
        "REFERENCING NEW TABLE AS new_revisions FOR EACH STATEMENT "
        "EXECUTE FUNCTION alert_outbox_capture()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS incident_revisions_alerts ON incident_revisions")
    op.execute("DROP FUNCTION IF EXISTS alert_outbox_capture()")
    op.execute("DROP TABLE IF EXISTS alert_attempts")
    op.execute("DROP TABLE IF EXISTS alert_matches")
    op.execute("DROP TABLE IF EXISTS alert_deliveries")
    op.execute("DROP TABLE IF EXISTS alert_subscriptions")
    op.execute("DROP FUNCTION IF EXISTS incident_alert_states(bigint, integer, text)")
    op.execute(
        "DROP FUNCTION IF EXISTS alert_filter_matches(alert_filter, geometry, date, integer, "
        "text, text, text, text, text, text, text, text, tsvector)"
    )
    op.execute("DROP TYPE IF EXISTS alert_filter")
