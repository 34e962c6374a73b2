"""A resolved search filter as an `alert_filter` (migration 0016): the values the database
compares when it matches changes to subscriptions and to live streams.

`filter_sql(f, p)` is a `ROW(...)::alert_filter` expression with `$n` parameters. Its `box`
covers the filter's spatial part (the circle's envelopes, the bbox, the polygon or the area;
the world without one): the GiST index on subscriptions is probed with each changed point.
"""

from __future__ import annotations

from app.core.errors import Unprocessable, field_error
from app.core.geo import Envelope, circle_envelopes
from app.incidents.fields import BY_NAME, FIELDS, Filter
from app.search.filters import Match, RawFilter, SearchFilter
from app.search.query import Params

# Fields filtered by value (the field registry) -> their alert_filter attribute. A field the
# registry makes filterable must be listed here (tests/alerts/test_matching.py checks it).
VALUE_ATTRIBUTES = {
    "event_type": "event_types",
    "sub_event_type": "sub_event_types",
    "disorder_type": "disorder_types",
    "admin1": "admin1",
    "admin2": "admin2",
}
MINIMUM_ATTRIBUTES = {"fatalities": "min_fatalities"}
VALUE_FILTERS = (Filter.values, Filter.taxonomy, Filter.names)
FILTERED_BY_VALUE = tuple(f.name for f in FIELDS if f.filter in VALUE_FILTERS)
FILTERED_BY_MINIMUM = tuple(f.name for f in FIELDS if f.filter is Filter.minimum)

WORLD = Envelope(-180.0, -90.0, 180.0, 90.0)

# The arguments after the filter of `alert_filter_matches` (migration 0016), over `st`, a row of
# `incident_alert_states`.
STATE_ARGS = (
    "st.geom, st.event_date, st.fatalities, st.event_type, st.sub_event_type, "
    "st.disorder_type, st.admin1, st.admin2, st.country_code, st.country, st.actors_norm, "
    "st.notes_tsv"
)


def _envelopes_sql(envelopes: list[Envelope], p: Params) -> str:
    parts = [
        f"ST_MakeEnvelope({p.add(e.min_lon)}::float8, {p.add(e.min_lat)}::float8, "
        f"{p.add(e.max_lon)}::float8, {p.add(e.max_lat)}::float8, 4326)"
        for e in envelopes
    ]
    return parts[0] if len(parts) == 1 else "ST_Collect(ARRAY[" + ", ".join(parts) + "])"


def check_subscribable(raw: RawFilter) -> RawFilter:
    """Alerts hear of changes from now on, by their points: `as_of` and `match` are 422s."""
    if raw.as_of is not None:
        raise Unprocessable(
            "as_of: alerts and streams follow the store from now on",
            errors=[field_error("as_of", "not for alerts", raw.as_of.isoformat())],
        )
    if raw.match is not Match.point:
        raise Unprocessable(
            "match: alerts and streams match an incident's point (match=point)",
            errors=[field_error("match", "only point for alerts", raw.match.value)],
        )
    return raw


def filter_sql(f: SearchFilter, p: Params) -> str:
    """The filter as `ROW(...)::alert_filter`, its values bound through `p`."""
    raw = f.raw
    if f.conditions:
        raise Unprocessable(
            "filter: only search parameters can be subscribed to",
            errors=[field_error("filter", "unsupported condition")],
        )
    center = radius = bbox = region = polygon = "NULL"
    covers: list[str] = []
    if f.near is not None and f.radius_m is not None:
        center = (
            f"ST_SetSRID(ST_MakePoint({p.add(f.near.longitude)}::float8, "
            f"{p.add(f.near.latitude)}::float8), 4326)::geography"
        )
        radius = f"{p.add(f.radius_m)}::float8"
        covers.append(
            _envelopes_sql(circle_envelopes(f.near.latitude, f.near.longitude, f.radius_m), p)
        )
    if f.envelopes:
        bbox = _envelopes_sql(f.envelopes, p)
        covers.append(bbox)
    if f.geometry_json is not None:
        polygon = f"ST_SetSRID(ST_GeomFromGeoJSON({p.add(f.geometry_json)}::text), 4326)"
        covers.append(f"ST_Envelope({polygon})")
    if f.area is not None:
        region = f"ST_GeomFromWKB({p.add(f.area.wkb)}::bytea, 4326)"
        covers.append(f"ST_Envelope({region})")
    box = covers[0] if covers else _envelopes_sql([WORLD], p)

    def text_array(values: list[str] | None, normalise: bool = False) -> str:
        if values is None:
            return "NULL"
        placeholder = f"{p.add(list(values))}::text[]"
        return f"app_norm_all({placeholder})" if normalise else placeholder

    attributes = dict.fromkeys(VALUE_ATTRIBUTES.values(), "NULL")
    for name, values in raw.values.items():
        if name not in VALUE_ATTRIBUTES:
            raise Unprocessable(
                f"filter.{name}: cannot be subscribed to",
                errors=[field_error(f"filter.{name}", "not available for alerts")],
            )
        normalise = BY_NAME[name].filter is Filter.names
        attributes[VALUE_ATTRIBUTES[name]] = text_array(list(values), normalise)
    countries = bool(f.country_codes or f.country_names)
    codes = text_array(f.country_codes if countries else None)
    names = text_array(f.country_names if countries else None, normalise=True)
    minimum = "NULL"
    for name, value in raw.minimums.items():
        if name not in MINIMUM_ATTRIBUTES:
            raise Unprocessable(
                f"filter.min_{name}: cannot be subscribed to",
                errors=[field_error(f"filter.min_{name}", "not available for alerts")],
            )
        minimum = f"{p.add(value)}::integer"
    start = f"{p.add(raw.start)}::date" if raw.start is not None else "NULL"
    end = f"{p.add(raw.end)}::date" if raw.end is not None else "NULL"
    actor = f"{p.add(f.actor_pattern)}::text" if f.actor_pattern is not None else "NULL"
    q = f"{p.add(raw.q)}::text" if raw.q else "NULL"
    row = [
        box,
        center,
        radius,
        bbox,
        region,
        polygon,
        start,
        end,
        attributes["event_types"],
        attributes["sub_event_types"],
        attributes["disorder_types"],
        attributes["admin1"],
        attributes["admin2"],
        codes,
        names,
        actor,
        minimum,
        q,
    ]
    return "ROW(" + ", ".join(row) + ")::alert_filter"
