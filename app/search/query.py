"""Turns a resolved SearchFilter into one SQL WHERE clause with `$n` parameters, and says
what it reads (`source_sql`: the live store, or the store as of an instant).

Every endpoint that selects incidents (list, polygon search, export, stats, grid, tiles) builds
its WHERE here, from the filter and the field registry (a field filtered by value gets its
clause with no edit here). Values are always bound parameters; the SQL text depends only on
which filters are present, so each combination is one prepared statement.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from app.core.geo import circle_envelopes, inner_box
from app.incidents.fields import BY_NAME, Filter
from app.incidents.uncertainty import defaults_km, effective_sql, largest_default_km
from app.search.filters import Match, SearchFilter, Sort

POINT = "ST_SetSRID(ST_MakePoint({lon}, {lat}), 4326)"


@dataclass
class Params:
    """Positional parameters: `add(value)` returns its `$n` placeholder."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


@dataclass
class Where:
    clauses: list[str]
    params: Params
    distance_sql: str | None  # metres from `near`, when there is one

    @property
    def sql(self) -> str:
        return " AND ".join(self.clauses)


def build_where(f: SearchFilter, params: Params | None = None, alias: str = "i") -> Where:
    p = params or Params()
    a = alias
    clauses = [f"{a}.deleted_at IS NULL"]
    raw = f.raw
    distance_sql = None

    envelopes = list(f.envelopes)
    if f.near is not None:
        point = POINT.format(lon=p.add(f.near.longitude), lat=p.add(f.near.latitude))
        distance_sql = f"ST_Distance({a}.geom::geography, {point}::geography)"
        if f.radius_m is not None:
            clauses += _circle_clauses(f, point, p, a)
    if envelopes:
        clauses.append(_envelope_sql(a, envelopes, p))
    if f.area is not None:
        clauses.append(f"ST_Intersects({a}.geom, ST_GeomFromWKB({p.add(f.area.wkb)}, 4326))")
    if f.geometry_json is not None:
        clauses.append(
            f"ST_Intersects({a}.geom, ST_SetSRID(ST_GeomFromGeoJSON({p.add(f.geometry_json)}), "
            "4326))"
        )
    if raw.start is not None:
        clauses.append(f"{a}.event_date >= {p.add(raw.start)}")
    if raw.end is not None:
        clauses.append(f"{a}.event_date <= {p.add(raw.end)}")
    if f.actor_pattern is not None:
        clauses.append(f"{a}.actors_norm ~ {p.add(f.actor_pattern)}")
    clauses += attribute_clauses(f, p, a)
    for name, minimum in raw.minimums.items():
        clauses.append(f"{a}.{name} >= {p.add(minimum)}")
    if raw.q:
        clauses.append(
            f"{a}.notes_tsv @@ websearch_to_tsquery('english'::regconfig, {p.add(raw.q)})"
        )
    clauses += [condition(p) for condition in f.conditions]
    return Where(clauses=clauses, params=p, distance_sql=distance_sql)


def _circle_clauses(f: SearchFilter, point: str, p: Params, a: str) -> list[str]:
    """Within `radius_m` of `near`, as `match` asks: the index condition (envelopes), then the
    exact geodesic test, skipped for points inside a box sure to be in reach. `_ST_DWithin`
    (no index support, no selectivity guess) instead of ST_DWithin: the envelopes are what the
    index uses, and ST_DWithin's tiny selectivity estimate made the planner sort every
    candidate instead of walking the date index."""
    assert f.near is not None and f.radius_m is not None
    lat, lon, radius = f.near.latitude, f.near.longitude, f.radius_m
    geog = f"{a}.geom::geography, {point}::geography"
    # Boxes inside the reach: the circle's own, and for `match`, each precision's default.
    sure: list[str | None] = []
    if f.raw.match is Match.point:
        reach = p.add(radius)
        index = _envelope_sql(a, circle_envelopes(lat, lon, radius), p)
        sure.append(_inside(a, lat, lon, radius, p))
    elif f.raw.match is Match.certain:
        # The whole disc inside: only points inside the circle qualify, so its envelope.
        reach = f"({p.add(radius)} - 1000.0 * {effective_sql(a)})"
        index = _envelope_sql(a, circle_envelopes(lat, lon, radius), p)
        for precision, km in defaults_km().items():
            if km * 1000 < radius:
                sure.append(_default_inside(a, precision, lat, lon, radius - km * 1000, p))
        index = f"{index} AND {reach} >= 0"
    else:
        # The disc touches the circle: within radius + uncertainty. Every incident without an
        # uncertainty of its own larger than the largest default is inside the circle grown
        # by that default; the few others are found by their uncertainty's index.
        grown = largest_default_km()
        reach = f"({p.add(radius)} + 1000.0 * {effective_sql(a)})"
        envelopes = _envelope_sql(a, circle_envelopes(lat, lon, radius + grown * 1000), p)
        index = f"({envelopes} OR {a}.uncertainty_km > {p.add(grown)})"
        sure.append(_inside(a, lat, lon, radius, p))
        for precision, km in defaults_km().items():
            sure.append(_default_inside(a, precision, lat, lon, radius + km * 1000, p))
    exact = f"_ST_DWithin({geog}, {reach}, true)"
    boxes = [box for box in sure if box is not None]
    if boxes:
        exact = "(" + " OR ".join([*boxes, exact]) + ")"
    return [index, exact]


def _inside(a: str, lat: float, lon: float, radius_m: float, p: Params) -> str | None:
    """Points in a box every point of which is within `radius_m` (None where there is none)."""
    inner = inner_box(lat, lon, radius_m)
    if inner is None:
        return None
    return (
        f"(ST_X({a}.geom) BETWEEN {p.add(inner.min_lon)} AND {p.add(inner.max_lon)}"
        f" AND ST_Y({a}.geom) BETWEEN {p.add(inner.min_lat)} AND {p.add(inner.max_lat)})"
    )


def _default_inside(
    a: str, precision: int, lat: float, lon: float, radius_m: float, p: Params
) -> str | None:
    """An incident with its precision's default uncertainty, inside the box of `radius_m`."""
    box = _inside(a, lat, lon, radius_m, p)
    if box is None:
        return None
    return f"({a}.uncertainty_km IS NULL AND {a}.geo_precision = {p.add(precision)} AND {box})"


def source_sql(f: SearchFilter, p: Params, alias: str = "i") -> str:
    """What a search reads: `incidents`, or the store as it stood at `as_of` (every version
    valid then: `incidents_as_of`, migration 0017)."""
    if f.raw.as_of is None:
        return f"incidents {alias}"
    return f"incidents_as_of({p.add(f.raw.as_of)}::timestamptz) {alias}"


def as_of_arms(f: SearchFilter, p: Params, alias: str = "i") -> list[tuple[str, str]]:
    """The two halves of the store at `as_of`, as (relation, condition) pairs: the current
    rows written by then and the superseded versions valid then. A page query runs its
    ORDER BY ... LIMIT in each (each planned as a live query is: by its date index, say)
    and merges the two pages; `incidents_as_of` is the same union for everything else."""
    instant = f"{p.add(f.raw.as_of)}::timestamptz"
    return [
        (f"incidents {alias}", f"{alias}.updated_at <= {instant}"),
        (f"incident_history {alias}", f"{alias}.valid @> {instant}"),
    ]


def _names_match(column: str, values: list[str], p: Params) -> str:
    """`column` (normalised) equal to one of `values`, normalised by IMMUTABLE functions of the
    parameter, so the planner folds them to constants and sees them (migration 0014). One
    value compares with `=`: an index on (name, date) then also gives the newest-first order,
    which `= ANY(...)` does not, so a rare name is read from its index, not by walking dates."""
    if len(values) == 1:
        return f"{column} = app_norm({p.add(values[0])}::text)"
    return f"{column} = ANY(app_norm_all({p.add(values)}::text[]))"


def attribute_clauses(
    f: SearchFilter, p: Params, a: str = "i", blank_is_null: bool = False
) -> list[str]:
    """Value, name and country filters: columns the monthly rollup shares with incidents.

    `blank_is_null`: the rollup stores a missing name as '' (so keys compare with `=`); a
    filter value that normalises to '' must still match nothing there, as NULL does."""
    clauses: list[str] = []
    for name, values in f.raw.values.items():
        if BY_NAME[name].filter is Filter.names:
            clauses.append(_names_match(f"app_norm({a}.{name})", list(values), p))
            if blank_is_null:
                clauses.append(f"{a}.{name} <> ''")
        else:
            clauses.append(f"{a}.{name} = ANY({p.add(list(values))}::text[])")
    if f.country_codes or f.country_names:
        country = f"NULLIF({a}.country, '')" if blank_is_null else f"{a}.country"
        parts = []
        if f.country_codes:
            parts.append(f"{a}.country_code = ANY({p.add(f.country_codes)}::text[])")
        if f.country_names:
            parts.append(_names_match(f"app_norm({country})", f.country_names, p))
        clauses.append("(" + " OR ".join(parts) + ")")
    return clauses


def _envelope_sql(alias: str, envelopes: list[Any], p: Params) -> str:
    parts = [
        f"{alias}.geom && ST_MakeEnvelope({p.add(e.min_lon)}, {p.add(e.min_lat)}, "
        f"{p.add(e.max_lon)}, {p.add(e.max_lat)}, 4326)"
        for e in envelopes
    ]
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


@dataclass(frozen=True)
class Order:
    """A keyset order: the SQL ORDER BY, and how to continue after a given row."""

    sort: Sort
    order_by: str
    key_columns: tuple[str, ...]
    descending: bool = False

    @property
    def by_keys(self) -> str:
        """The same order over a page query's key columns (`k_<column>`)."""
        way = "DESC" if self.descending else "ASC"
        return ", ".join(f"k_{c} {way}" for c in self.key_columns)


def order_for(sort: Sort, distance_sql: str | None, alias: str = "i") -> Order:
    a = alias
    if sort is Sort.oldest:
        return Order(sort, f"{a}.event_date ASC, {a}.id ASC", ("event_date", "id"))
    if sort is Sort.deadliest:
        return Order(sort, f"{a}.fatalities DESC, {a}.id DESC", ("fatalities", "id"), True)
    if sort is Sort.distance and distance_sql is not None:
        return Order(sort, f"{distance_sql} ASC, {a}.id ASC", ("distance", "id"))
    if sort is Sort.stored:
        return Order(sort, f"{a}.id ASC", ("id",))
    return Order(Sort.newest, f"{a}.event_date DESC, {a}.id DESC", ("event_date", "id"), True)


def keyset_clause(
    order: Order, after: dict[str, Any], p: Params, distance_sql: str | None, alias: str = "i"
) -> str:
    """Rows strictly after the cursor's row in `order` (row comparison, index-friendly)."""
    a = alias
    last_id = int(after["id"])
    if order.sort is Sort.oldest:
        date = dt.date.fromisoformat(after["event_date"])
        return f"({a}.event_date, {a}.id) > ({p.add(date)}, {p.add(last_id)})"
    if order.sort is Sort.deadliest:
        return f"({a}.fatalities, {a}.id) < ({p.add(int(after['fatalities']))}, {p.add(last_id)})"
    if order.sort is Sort.distance and distance_sql is not None:
        return f"({distance_sql}, {a}.id) > ({p.add(float(after['distance']))}, {p.add(last_id)})"
    if order.sort is Sort.stored:
        return f"{a}.id > {p.add(last_id)}"
    date = dt.date.fromisoformat(after["event_date"])
    return f"({a}.event_date, {a}.id) < ({p.add(date)}, {p.add(last_id)})"
