"""The one search filter: parsed once from the query string (or the search body), resolved
once against the database (place names, areas, countries, actor aliases), then turned into SQL
by `app.incidents.query`. Incident lists, the polygon search, stats, grid, tiles and export all
take this object."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import Unprocessable, field_error
from app.incidents.geo import Envelope, bbox_envelopes
from app.taxonomy.data import (
    canonical_disorder_type,
    canonical_event_type,
    canonical_sub_event_type,
)

DEFAULT_RADIUS_KM = 25.0
MAX_RADIUS_KM = 20_000.0


class Sort(enum.StrEnum):
    newest = "-event_date"
    oldest = "event_date"
    deadliest = "-fatalities"
    distance = "distance"


class OutputFormat(enum.StrEnum):
    json = "json"
    geojson = "geojson"
    csv = "csv"
    ndjson = "ndjson"


@dataclass(frozen=True)
class NearPoint:
    latitude: float
    longitude: float
    place: dict[str, Any] | None = None  # the gazetteer entry when `near` was a name


@dataclass(frozen=True)
class AreaRef:
    id: int
    name: str
    kind: str
    # The polygon itself, bound as a parameter: with a custom plan it is a constant, so PostGIS
    # estimates the selectivity from its extent and caches its prepared form across rows.
    wkb: bytes


@dataclass
class RawFilter:
    """What the client asked, syntactically valid, not yet resolved against the database."""

    near: str | None = None
    radius_km: float | None = None
    bbox: tuple[float, float, float, float] | None = None
    within: str | None = None
    geometry: dict[str, Any] | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    event_types: list[str] = field(default_factory=list)
    sub_event_types: list[str] = field(default_factory=list)
    disorder_types: list[str] = field(default_factory=list)
    actors: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    admin1: list[str] = field(default_factory=list)
    admin2: list[str] = field(default_factory=list)
    min_fatalities: int | None = None
    q: str | None = None


@dataclass
class SearchFilter:
    """A resolved filter: every value ready to be bound as a SQL parameter."""

    raw: RawFilter
    near: NearPoint | None = None
    radius_m: float | None = None  # None with `near`: nearest-first without a radius (KNN)
    envelopes: list[Envelope] = field(default_factory=list)
    area: AreaRef | None = None
    geometry_json: str | None = None
    country_codes: list[str] = field(default_factory=list)
    country_names: list[str] = field(default_factory=list)
    actor_pattern: str | None = None
    actor_groups: list[dict[str, Any]] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        """The filters as applied, echoed in responses so clients see what was understood."""
        raw = self.raw
        applied: dict[str, Any] = {}
        if self.near is not None:
            applied["near"] = {"latitude": self.near.latitude, "longitude": self.near.longitude}
            if self.radius_m is not None:
                applied["radius_km"] = self.radius_m / 1000
        if raw.bbox is not None:
            applied["bbox"] = list(raw.bbox)
        if self.area is not None:
            applied["within"] = {
                "id": str(self.area.id),
                "name": self.area.name,
                "kind": self.area.kind,
            }
        if raw.geometry is not None:
            applied["geometry"] = raw.geometry.get("type")
        for key in ("start", "end"):
            value = getattr(raw, key)
            if value is not None:
                applied[key] = value.isoformat()
        for key, value in (
            ("event_type", raw.event_types),
            ("sub_event_type", raw.sub_event_types),
            ("disorder_type", raw.disorder_types),
            ("admin1", raw.admin1),
            ("admin2", raw.admin2),
        ):
            if value:
                applied[key] = value
        if raw.actors:
            applied["actor"] = {"query": raw.actors, "matched_groups": self.actor_groups}
        if raw.countries:
            applied["country"] = self.country_codes or self.country_names
        if raw.min_fatalities is not None:
            applied["min_fatalities"] = raw.min_fatalities
        if raw.q:
            applied["q"] = raw.q
        return applied


def split_list(value: str | None) -> list[str]:
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def _canonical_list(name: str, values: list[str], canon: Any) -> list[str]:
    out = []
    for value in values:
        canonical = canon(value)
        if canonical is None:
            raise Unprocessable(
                f"{name}: unknown value '{value}'; see GET /v1/taxonomy",
                errors=[field_error(name, "not in the taxonomy", value)],
            )
        out.append(canonical)
    return out


def _disorder(value: str) -> str | None:
    return canonical_disorder_type(value)


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    parts = value.split(",")
    problem = Unprocessable(
        "bbox: expected minLon,minLat,maxLon,maxLat in degrees",
        errors=[field_error("bbox", "expected minLon,minLat,maxLon,maxLat", value[:100])],
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
            "bbox: longitudes must be within [-180, 180]",
            errors=[field_error("bbox", "longitude out of range", value[:100])],
        )
    if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90) or min_lat > max_lat:
        raise Unprocessable(
            "bbox: latitudes must be within [-90, 90] with minLat <= maxLat",
            errors=[field_error("bbox", "latitude out of range or inverted", value[:100])],
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


def build_raw_filter(
    *,
    near: str | None = None,
    radius_km: float | None = None,
    bbox: str | None = None,
    within: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    event_type: str | None = None,
    sub_event_type: str | None = None,
    disorder_type: str | None = None,
    actor: str | None = None,
    country: str | None = None,
    admin1: str | None = None,
    admin2: str | None = None,
    min_fatalities: int | None = None,
    q: str | None = None,
    geometry: dict[str, Any] | None = None,
) -> RawFilter:
    if start is not None and end is not None and end < start:
        raise Unprocessable(
            "end: must not be before start",
            errors=[field_error("end", "before start", end.isoformat())],
        )
    if radius_km is not None and near is None:
        raise Unprocessable(
            "radius_km: only meaningful with near", errors=[field_error("radius_km", "needs near")]
        )
    if near is not None and not near.strip():
        raise Unprocessable("near: empty", errors=[field_error("near", "empty")])
    return RawFilter(
        near=near.strip() if near else None,
        radius_km=radius_km,
        bbox=parse_bbox(bbox),
        within=within.strip() if within else None,
        geometry=geometry,
        start=start,
        end=end,
        event_types=_canonical_list("event_type", split_list(event_type), canonical_event_type),
        sub_event_types=_canonical_list(
            "sub_event_type", split_list(sub_event_type), canonical_sub_event_type
        ),
        disorder_types=_canonical_list("disorder_type", split_list(disorder_type), _disorder),
        actors=split_list(actor),
        countries=split_list(country),
        admin1=split_list(admin1),
        admin2=split_list(admin2),
        min_fatalities=min_fatalities,
        q=q.strip() if q and q.strip() else None,
    )


def bbox_to_envelopes(raw: RawFilter) -> list[Envelope]:
    return bbox_envelopes(*raw.bbox) if raw.bbox else []


Text = Annotated[str | None, Query(max_length=1000)]


async def filter_query(
    near: Annotated[
        str | None,
        Query(
            max_length=200,
            description="`lat,lon` or a place name (`near=Khanaqin`)",
            examples=["Khanaqin", "34.348,45.391"],
        ),
    ] = None,
    radius_km: Annotated[
        float | None,
        Query(
            gt=0,
            le=MAX_RADIUS_KM,
            description="With `near`: geodesic radius in km (default 25; with "
            "`sort=distance` and no radius, the `limit` nearest are returned)",
        ),
    ] = None,
    bbox: Annotated[
        str | None,
        Query(
            max_length=200,
            description="minLon,minLat,maxLon,maxLat; minLon > maxLon crosses the antimeridian",
            examples=["44.5,33.5,46.0,35.0"],
        ),
    ] = None,
    within: Annotated[str | None, Query(max_length=200, description="An area id or name")] = None,
    start: Annotated[dt.date | None, Query(description="First event_date, inclusive")] = None,
    end: Annotated[dt.date | None, Query(description="Last event_date, inclusive")] = None,
    event_type: Annotated[
        str | None, Query(max_length=1000, description="Comma-separated event types")
    ] = None,
    sub_event_type: Annotated[str | None, Query(max_length=2000)] = None,
    disorder_type: Annotated[str | None, Query(max_length=1000)] = None,
    actor: Annotated[
        str | None,
        Query(
            max_length=500,
            description="Matches any actor field and known aliases "
            "(ISIS = ISIL = Daesh = Islamic State), case-insensitive; comma-separated",
        ),
    ] = None,
    country: Annotated[
        str | None, Query(max_length=500, description="Name, alpha-2 or alpha-3")
    ] = None,
    admin1: Annotated[
        str | None, Query(max_length=500, description="Exact, case/accent-insensitive")
    ] = None,
    admin2: Annotated[str | None, Query(max_length=500)] = None,
    min_fatalities: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
    q: Annotated[
        str | None, Query(max_length=500, description="Full-text search over notes")
    ] = None,
) -> RawFilter:
    """Dependency: the search filter from the query string."""
    return build_raw_filter(
        near=near,
        radius_km=radius_km,
        bbox=bbox,
        within=within,
        start=start,
        end=end,
        event_type=event_type,
        sub_event_type=sub_event_type,
        disorder_type=disorder_type,
        actor=actor,
        country=country,
        admin1=admin1,
        admin2=admin2,
        min_fatalities=min_fatalities,
        q=q,
    )


class PolygonGeometry(BaseModel):
    """A GeoJSON Polygon or MultiPolygon in lon/lat (RFC 7946)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    type: Annotated[str, Field(pattern="^(Polygon|MultiPolygon)$")]
    coordinates: list[Any]


class SearchBody(BaseModel):
    """`POST /v1/incidents/search`: the query-string filters, plus a polygon."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [
                            [[45.0, 34.0], [45.8, 34.0], [45.8, 34.7], [45.0, 34.7], [45.0, 34.0]]
                        ],
                    },
                    "start": "2020-01-01",
                    "event_type": "Violence against civilians",
                }
            ]
        },
    )

    geometry: PolygonGeometry | None = None
    near: Annotated[str, Field(max_length=200)] | None = None
    radius_km: Annotated[float, Field(gt=0, le=MAX_RADIUS_KM)] | None = None
    bbox: Annotated[str, Field(max_length=200)] | None = None
    within: Annotated[str, Field(max_length=200)] | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    event_type: Annotated[str, Field(max_length=1000)] | None = None
    sub_event_type: Annotated[str, Field(max_length=2000)] | None = None
    disorder_type: Annotated[str, Field(max_length=1000)] | None = None
    actor: Annotated[str, Field(max_length=500)] | None = None
    country: Annotated[str, Field(max_length=500)] | None = None
    admin1: Annotated[str, Field(max_length=500)] | None = None
    admin2: Annotated[str, Field(max_length=500)] | None = None
    min_fatalities: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    q: Annotated[str, Field(max_length=500)] | None = None

    def to_raw(self) -> RawFilter:
        values = self.model_dump(exclude={"geometry"})
        geometry = self.geometry.model_dump() if self.geometry is not None else None
        return build_raw_filter(**values, geometry=geometry)
