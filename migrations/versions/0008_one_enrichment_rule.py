"""One definition of "which country is this" and of what is filled in from the point.

- `countries.names_norm`: every name of a country, normalised (generated, GIN-indexed), so
  `country_lookup(text)` finds a country by alpha-2, alpha-3, name or alternate name with an
  index instead of normalising every alternate name of every country per call.
- `incident_place_fill(country, country_code, admin1, lon, lat)`: the enrichment rule single
  creates, patches and bulk loads share (one row, or set-based over a staging table): a given
  code must be a known alpha-2/alpha-3 (it becomes alpha-3, and names the country if none was
  given; with no countries loaded it is taken as given); a given name finds its code; what is
  still missing comes from the loaded boundaries at the point, and admin-1 only from a
  boundary of the incident's own country.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION app_norm_names(name text, alt_names text[]) RETURNS text[]
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT coalesce(array_agg(DISTINCT app_norm(n)), '{}')
            FROM unnest(array_prepend(name, alt_names)) n WHERE n IS NOT NULL
        $$
        """
    )
    op.execute(
        "ALTER TABLE countries ADD COLUMN names_norm text[] "
        "GENERATED ALWAYS AS (app_norm_names(name, alt_names)) STORED"
    )
    op.execute("CREATE INDEX countries_names_norm ON countries USING gin (names_norm)")
    op.execute("DROP INDEX IF EXISTS countries_name")
    op.execute(
        """
        CREATE FUNCTION country_lookup(value text)
        RETURNS TABLE (iso_a2 text, iso_a3 text, name text)
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
            (SELECT c.iso_a2, c.iso_a3, c.name FROM countries c
             WHERE c.iso_a2 = upper(btrim(value)) OR c.iso_a3 = upper(btrim(value))
             ORDER BY c.iso_a3 = upper(btrim(value)) DESC LIMIT 1)
            UNION ALL
            (SELECT c.iso_a2, c.iso_a3, c.name FROM countries c
             WHERE c.names_norm @> ARRAY[app_norm(btrim(value))] ORDER BY c.iso_a3 LIMIT 1)
            LIMIT 1
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION incident_place_fill(
            p_country text, p_code text, p_admin1 text, p_lon float8, p_lat float8
        ) RETURNS TABLE (country text, country_code text, admin1 text, unknown_code boolean)
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
            SELECT coalesce(p_country, given.name, CASE WHEN p_code IS NULL THEN here.name END),
                   code.iso_a3,
                   coalesce(p_admin1, CASE WHEN a1.iso_a3 IS NULL OR a1.iso_a3 = code.iso_a3
                                           THEN a1.name END),
                   p_code IS NOT NULL AND given.iso_a3 IS NULL AND known.any
            FROM (SELECT ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326) AS g) pt
            -- With no countries loaded a code cannot be checked: it is taken as given.
            CROSS JOIN (SELECT EXISTS (SELECT 1 FROM countries) AS any) known
            LEFT JOIN LATERAL (
                SELECT l.iso_a3, l.name FROM country_lookup(p_code) l
                WHERE p_code IS NOT NULL AND length(btrim(p_code)) IN (2, 3)
                  AND upper(btrim(p_code)) IN (l.iso_a2, l.iso_a3)
            ) given ON true
            LEFT JOIN LATERAL (
                SELECT l.iso_a3 FROM country_lookup(p_country) l
                WHERE p_code IS NULL AND p_country IS NOT NULL
            ) named ON true
            LEFT JOIN LATERAL (
                SELECT a.name, a.iso_a3 FROM area_parts p JOIN areas a ON a.id = p.area_id
                WHERE p_code IS NULL AND named.iso_a3 IS NULL AND a.kind = 'country'
                  AND p.geom && pt.g AND ST_Intersects(p.geom, pt.g)
                ORDER BY a.id LIMIT 1
            ) here ON true
            CROSS JOIN LATERAL (
                SELECT coalesce(given.iso_a3, named.iso_a3,
                                CASE WHEN NOT known.any THEN upper(btrim(p_code)) END,
                                CASE WHEN p_code IS NULL
                                          AND (p_country IS NULL OR here.name = p_country)
                                     THEN here.iso_a3 END) AS iso_a3
            ) code
            LEFT JOIN LATERAL (
                SELECT a.name, a.iso_a3 FROM area_parts p JOIN areas a ON a.id = p.area_id
                WHERE p_admin1 IS NULL AND a.kind = 'admin1'
                  AND p.geom && pt.g AND ST_Intersects(p.geom, pt.g)
                ORDER BY a.id LIMIT 1
            ) a1 ON true
        $$
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS incident_place_fill(text, text, text, float8, float8)"
    )
    op.execute("DROP FUNCTION IF EXISTS country_lookup(text)")
    op.execute("DROP INDEX IF EXISTS countries_names_norm")
    op.execute("ALTER TABLE countries DROP COLUMN IF EXISTS names_norm")
    op.execute("DROP FUNCTION IF EXISTS app_norm_names(text, text[])")
    op.execute("CREATE INDEX countries_name ON countries (app_norm(name))")
