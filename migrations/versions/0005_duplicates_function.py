"""One definition of "possible duplicate", shared by single creates and bulk ingest.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Live incidents within 2 km and 1 day, same event type, an actor in common; at most 10
    # (enough to flag, and a batch of identical rows must not compare every pair).
    op.execute(
        """
        CREATE FUNCTION incident_possible_duplicates(
            p_lon float8, p_lat float8, p_event_type text, p_event_date date,
            p_external_id text, p_actors text[]
        ) RETURNS bigint[]
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
            SELECT coalesce(array_agg(d.id ORDER BY d.id), '{}') FROM (
                SELECT i.id FROM incidents i
                WHERE cardinality(array_remove(p_actors, NULL)) > 0
                  AND i.geom && ST_Expand(ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326),
                                          0.0182 / greatest(cos(radians(p_lat)), 0.01), 0.0182)
                  AND i.deleted_at IS NULL
                  AND i.event_type = p_event_type
                  AND i.event_date BETWEEN p_event_date - 1 AND p_event_date + 1
                  AND i.external_id IS DISTINCT FROM p_external_id
                  AND ARRAY[lower(i.actor1), lower(i.assoc_actor_1), lower(i.actor2),
                            lower(i.assoc_actor_2)]
                      && (SELECT array_agg(lower(a)) FROM unnest(p_actors) a)
                  AND _ST_DWithin(i.geom::geography,
                                  ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326)::geography,
                                  2000, true)
                LIMIT 10
            ) d
        $$
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS incident_possible_duplicates(float8, float8, text, date, text, "
        "text[])"
    )
