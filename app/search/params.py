"""The search parameters, declared once and derived from the field registry.

`PARAMS` lists every filter a search takes: the place and area filters, then one parameter per
filterable field of `app.incidents.fields` (`event_type=`, `admin1=`, `min_fatalities=`, ...).
From it come the query-string dependency of every endpoint that searches (`filter_query`), the
body of `POST /v1/incidents/search` (`SearchBody`), the options of `incidents export`
(`cli_options`) and the parsing into a `RawFilter` (`build_raw_filter`), which checks each value
and names the parameter when it is wrong.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import BaseModel, Field, create_model

from app.core.errors import Unprocessable, field_error
from app.core.geojson import KHANAQIN_POLYGON, PolygonGeometry
from app.core.schemas import input_config
from app.incidents.fields import FIELDS, Filter, IncidentField
from app.search.filters import MAX_RADIUS_KM, Match, RawFilter
from app.taxonomy.data import (
    canonical_disorder_type,
    canonical_event_type,
    canonical_sub_event_type,
)


class Role(enum.StrEnum):
    """Where a parameter's value goes in the RawFilter."""

    near = "near"
    radius = "radius"
    bbox = "bbox"
    within = "within"
    start = "start"
    end = "end"
    values = "values"
    actor = "actor"
    country = "country"
    minimum = "minimum"
    text = "text"
    match = "match"
    as_of = "as_of"


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # str, float, int or dt.date
    role: Role
    description: str
    constraints: dict[str, Any]
    field: IncidentField | None = None
    examples: tuple[Any, ...] = ()

    def annotation(self) -> Any:
        return self.kind | None


_CANONICAL: dict[str, Callable[[str], str | None]] = {
    "event_type": canonical_event_type,
    "sub_event_type": canonical_sub_event_type,
    "disorder_type": canonical_disorder_type,
}


def _field_params(field: IncidentField) -> list[Param]:
    """The parameters one filterable field contributes (none for the actor fields after the
    first: `actor` covers all four)."""
    text = {"max_length": 1000}
    if field.filter is Filter.dates:
        return [
            Param("start", dt.date, Role.start, f"First {field.name}, inclusive", {}, field),
            Param("end", dt.date, Role.end, f"Last {field.name}, inclusive", {}, field),
        ]
    if field.filter in (Filter.values, Filter.taxonomy):
        described = "Comma-separated " + field.name.replace("_", " ") + "s"
        if field.filter is Filter.taxonomy:
            described += " (GET /v1/taxonomy)"
        return [Param(field.name, str, Role.values, described, {"max_length": 2000}, field)]
    if field.filter is Filter.names:
        return [
            Param(
                field.name,
                str,
                Role.values,
                "Exact, case- and accent-insensitive; comma-separated",
                {"max_length": 500},
                field,
            )
        ]
    if field.filter is Filter.country:
        return [
            Param(
                field.name,
                str,
                Role.country,
                "Name, alpha-2 or alpha-3; comma-separated",
                {"max_length": 500},
                field,
            )
        ]
    if field.filter is Filter.minimum:
        return [
            Param(
                f"min_{field.name}",
                int,
                Role.minimum,
                f"Lowest {field.name}",
                {"ge": 0, "le": 10_000_000},
                field,
            )
        ]
    if field.filter is Filter.actor:
        return [
            Param(
                "actor",
                str,
                Role.actor,
                "Matches any actor field and known aliases (ISIS = ISIL = Daesh = Islamic "
                "State), case-insensitive; comma-separated",
                {"max_length": 500},
                field,
            )
        ]
    if field.filter is Filter.text:
        return [Param("q", str, Role.text, f"Full-text search over {field.name}", text, field)]
    return []


_AS_OF_DOC = (
    "RFC 3339 instant with its offset (2025-03-31T23:59:59Z): the incidents as they stood "
    "then (later creations absent, later deletions present, later edits undone); not in the "
    "future"
)


def _params() -> tuple[Param, ...]:
    params = [
        Param(
            "near",
            str,
            Role.near,
            "`lat,lon` or a place name (`near=Khanaqin`)",
            {"max_length": 200},
            examples=("Khanaqin", "34.348,45.391"),
        ),
        Param(
            "radius_km",
            float,
            Role.radius,
            "With `near`: geodesic radius in km (default 25; with `sort=distance` and no "
            "radius, the `limit` nearest are returned)",
            {"gt": 0, "le": MAX_RADIUS_KM},
        ),
        Param(
            "bbox",
            str,
            Role.bbox,
            "minLon,minLat,maxLon,maxLat; minLon > maxLon crosses the antimeridian",
            {"max_length": 200},
            examples=("44.5,33.5,46.0,35.0",),
        ),
        Param(
            "match",
            Match,
            Role.match,
            "With `near`: how an incident's `uncertainty_km` counts. `point` (default): its "
            "point is inside the circle; `certain`: its whole uncertainty disc is (distance + "
            "uncertainty <= radius); `possible`: the disc touches the circle (distance - "
            "uncertainty <= radius)",
            {},
        ),
        Param("within", str, Role.within, "An area id or name", {"max_length": 200}),
    ]
    seen = {p.name for p in params}
    for field in FIELDS:
        for param in _field_params(field):
            if param.name not in seen:
                seen.add(param.name)
                params.append(param)
    params.append(
        Param(
            "as_of",
            dt.datetime,
            Role.as_of,
            _AS_OF_DOC,
            {},
            examples=("2025-03-31T23:59:59Z",),
        )
    )
    return tuple(params)


PARAMS: tuple[Param, ...] = _params()
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}


# ---- parsing --------------------------------------------------------------------------------


def split_list(value: str | None) -> list[str]:
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_bbox(value: str | None, name: str = "bbox") -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    parts = value.split(",")
    problem = Unprocessable(
        f"{name}: expected minLon,minLat,maxLon,maxLat in degrees",
        errors=[field_error(name, "expected minLon,minLat,maxLon,maxLat", value[:100])],
    )
    if len(parts) != 4:
        raise problem
    try:
        min_lon, min_lat, max_lon, max_lat = (float(p) for p in parts)
    except ValueError as exc:
        raise problem from exc
    values = (min_lon, min_lat, max_lon, max_lat)
    if any(v != v or v in (float("inf"), float("-inf")) for v in values):
        raise problem
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise Unprocessable(
            f"{name}: longitudes must be within [-180, 180]",
            errors=[field_error(name, "longitude out of range", value[:100])],
        )
    if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90) or min_lat > max_lat:
        raise Unprocessable(
            f"{name}: latitudes must be within [-90, 90] with minLat <= maxLat",
            errors=[field_error(name, "latitude out of range or inverted", value[:100])],
        )
    return values


def parse_latlon(value: str) -> tuple[float, float] | None:
    """`lat,lon` → floats; None when the text is not two numbers (so it is a place name)."""
    parts = value.split(",")
    if len(parts) != 2:
        return None
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if lat != lat or lon != lon:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise Unprocessable(
            "near: latitude must be within [-90, 90] and longitude within [-180, 180]",
            errors=[field_error("near", "coordinates out of range", value[:100])],
        )
    return lat, lon


def _canonical_values(param: Param, values: list[str]) -> tuple[str, ...]:
    taxonomy = param.field is not None and param.field.filter is Filter.taxonomy
    canon = _CANONICAL.get(param.name) if taxonomy else None
    if canon is None:
        return tuple(values)
    out = []
    for value in values:
        canonical = canon(value)
        if canonical is None:
            raise Unprocessable(
                f"{param.name}: unknown value '{value}'; see GET /v1/taxonomy",
                errors=[field_error(param.name, "not in the taxonomy", value)],
            )
        out.append(canonical)
    return tuple(out)


def _typed(param: Param, value: Any) -> Any:
    """A value from the query string or the command line (text) as the parameter's type,
    within its constraints; values of a search body are typed by pydantic already."""
    if value is None:
        return None
    if not isinstance(value, param.kind) or isinstance(value, bool):
        try:
            if param.kind is dt.date:
                value = dt.date.fromisoformat(str(value).strip())
            elif param.kind is dt.datetime:
                value = dt.datetime.fromisoformat(str(value).strip())
            else:
                value = param.kind(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError) as exc:
            raise Unprocessable(
                f"{param.name}: not a valid {param.kind.__name__}",
                errors=[
                    field_error(param.name, f"expected {param.kind.__name__}", str(value)[:100])
                ],
            ) from exc
    _check_constraints(param, value)
    return value


def _check_constraints(param: Param, value: Any) -> None:
    limits = param.constraints
    broken = None
    if "max_length" in limits and len(str(value)) > limits["max_length"]:
        broken = f"at most {limits['max_length']} characters"
    elif isinstance(value, (int, float)):
        if value != value:
            broken = "a number"
        elif "gt" in limits and not value > limits["gt"]:
            broken = f"greater than {limits['gt']}"
        elif "ge" in limits and not value >= limits["ge"]:
            broken = f"at least {limits['ge']}"
        elif "le" in limits and not value <= limits["le"]:
            broken = f"at most {limits['le']}"
    if broken is not None:
        shown = str(value)[:100]
        raise Unprocessable(
            f"{param.name}: must be {broken}", errors=[field_error(param.name, broken, shown)]
        )


def check_as_of(value: dt.datetime, name: str = "as_of") -> dt.datetime:
    """An instant with its offset, not in the future (as UTC)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise Unprocessable(
            f"{name}: give the UTC offset (RFC 3339, e.g. 2025-03-31T23:59:59Z)",
            errors=[field_error(name, "no UTC offset", value.isoformat())],
        )
    instant = value.astimezone(dt.UTC)
    if instant > dt.datetime.now(dt.UTC):
        raise Unprocessable(
            f"{name}: in the future; the store cannot answer for a moment it has not reached",
            errors=[field_error(name, "in the future", value.isoformat())],
        )
    return instant


# `as_of` on an endpoint that reads one incident: a plain query parameter (no dependency on
# the hot path), checked by `check_as_of` when given.
AsOfQuery = Annotated[
    dt.datetime | None, Query(description=_AS_OF_DOC, examples=["2025-03-31T23:59:59Z"])
]


def build_raw_filter(
    values: Mapping[str, Any], geometry: dict[str, Any] | None = None
) -> RawFilter:
    """A RawFilter from parameter values by name (missing or None: not filtered)."""
    unknown = [name for name in values if name not in BY_NAME]
    if unknown:
        raise Unprocessable(
            f"{unknown[0]}: not a search parameter",
            errors=[field_error(name, "not a search parameter") for name in unknown],
        )
    args: dict[str, Any] = {"values": {}, "minimums": {}, "geometry": geometry}
    for param in PARAMS:
        value = _typed(param, values.get(param.name))
        if value is None:
            continue
        role = param.role
        if role is Role.near:
            if not value.strip():
                raise Unprocessable("near: empty", errors=[field_error("near", "empty")])
            args["near"] = value.strip()
        elif role is Role.radius:
            if not 0 < value <= MAX_RADIUS_KM:
                raise Unprocessable(
                    f"radius_km: must be in (0, {MAX_RADIUS_KM:g}]",
                    errors=[field_error("radius_km", "out of range", value)],
                )
            args["radius_km"] = value
        elif role is Role.bbox:
            args["bbox"] = parse_bbox(value)
        elif role is Role.within:
            args["within"] = value.strip() or None
        elif role in (Role.start, Role.end):
            args[role.value] = value
        elif role is Role.values:
            found = _canonical_values(param, split_list(value))
            if found:
                args["values"][param.name] = found
        elif role is Role.actor:
            args["actors"] = tuple(split_list(value))
        elif role is Role.country:
            args["countries"] = tuple(split_list(value))
        elif role is Role.minimum:
            assert param.field is not None
            args["minimums"][param.field.name] = value
        elif role is Role.text:
            args["q"] = value.strip() or None
        elif role is Role.match:
            args["match"] = Match(value)
        elif role is Role.as_of:
            args["as_of"] = check_as_of(value)
    raw = RawFilter(**args)
    if raw.start is not None and raw.end is not None and raw.end < raw.start:
        raise Unprocessable(
            "end: must not be before start",
            errors=[field_error("end", "before start", raw.end.isoformat())],
        )
    if raw.match is not Match.point and raw.near is None:
        raise Unprocessable(
            "match: only meaningful with near", errors=[field_error("match", "needs near")]
        )
    if raw.radius_km is not None and raw.near is None:
        raise Unprocessable(
            "radius_km: only meaningful with near", errors=[field_error("radius_km", "needs near")]
        )
    return raw


# ---- the three surfaces: query string, search body, command line ---------------------------


_SCHEMA_TYPES: dict[type, dict[str, Any]] = {
    str: {"type": "string"},
    float: {"type": "number"},
    int: {"type": "integer"},
    dt.date: {"type": "string", "format": "date"},
    dt.datetime: {"type": "string", "format": "date-time"},
    Match: {"type": "string", "enum": [m.value for m in Match]},
}
_SCHEMA_CONSTRAINTS = {
    "max_length": "maxLength",
    "gt": "exclusiveMinimum",
    "ge": "minimum",
    "le": "maximum",
}


def _openapi_parameter(p: Param) -> dict[str, Any]:
    schema = dict(_SCHEMA_TYPES[p.kind])
    schema.update({_SCHEMA_CONSTRAINTS[k]: v for k, v in p.constraints.items()})
    doc: dict[str, Any] = {
        "name": p.name,
        "in": "query",
        "required": False,
        "description": p.description,
        "schema": schema,
    }
    if p.examples:
        doc["examples"] = {str(n): {"value": v} for n, v in enumerate(p.examples)}
    return doc


# The query-string filters in OpenAPI, for the routes whose filter is `filter_query`: they are
# read from the query string by `filter_query` itself, not by the framework (one pass over
# the parameters given, instead of a validation per declared parameter on every request).
FILTER_OPENAPI: dict[str, Any] = {"parameters": [_openapi_parameter(p) for p in PARAMS]}


async def filter_query(request: Request) -> RawFilter:
    """Dependency: the search filter from the query string (its parameters: `PARAMS`,
    documented by `FILTER_OPENAPI`); each value typed and checked by `build_raw_filter`, a
    problem (422) naming the parameter."""
    query = request.query_params
    return build_raw_filter({name: query[name] for name in BY_NAME if name in query})


class _SearchBodyBase(BaseModel):
    """`POST /v1/incidents/search`: the query-string filters, plus a polygon."""

    model_config = input_config(
        {
            "geometry": KHANAQIN_POLYGON,
            "start": "2020-01-01",
            "event_type": "Violence against civilians",
        }
    )

    geometry: PolygonGeometry | None = None

    def to_raw(self) -> RawFilter:
        values = self.model_dump(exclude={"geometry"}, exclude_none=True)
        geometry = self.geometry.model_dump() if self.geometry is not None else None
        return build_raw_filter(values, geometry=geometry)


_BODY_FIELDS: dict[str, Any] = {
    p.name: (p.annotation(), Field(default=None, description=p.description, **p.constraints))
    for p in PARAMS
}
SearchBody: type[_SearchBodyBase] = create_model(
    "SearchBody", __base__=_SearchBodyBase, __doc__=_SearchBodyBase.__doc__, **_BODY_FIELDS
)


def cli_options(option: Callable[..., Any]) -> list[inspect.Parameter]:
    """The export command's filter options (`--near`, `--event-type`, ...): `option` is
    `typer.Option`, passed in so this module needs no command-line library."""
    return [
        inspect.Parameter(
            p.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[str | None, option(help=p.description)],
        )
        for p in PARAMS
    ]
