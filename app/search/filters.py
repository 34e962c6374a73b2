"""The search filter at its two stages.

`RawFilter` is what the client asked, syntactically valid (built by `app.search.params` from
the query string, a search body or the command line). `SearchFilter` is that filter resolved
against the database (place names, areas, countries, actor aliases: `app.search.resolve`),
every value ready to be bound as a SQL parameter. Incident lists, the polygon search, stats,
grid, tiles and export all take a `SearchFilter`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from app.areas.service import AreaRef
from app.core.geo import Envelope

DEFAULT_RADIUS_KM = 25.0
MAX_RADIUS_KM = 20_000.0


class Sort(enum.StrEnum):
    newest = "-event_date"
    oldest = "event_date"
    deadliest = "-fatalities"
    distance = "distance"
    stored = "id"  # storage order: new incidents come last, so pages do not shift


class Match(enum.StrEnum):
    """How a radius search treats an incident's location uncertainty (`uncertainty_km`)."""

    point = "point"  # its point is inside the circle
    certain = "certain"  # its whole uncertainty disc is: distance + uncertainty <= radius
    possible = "possible"  # its disc touches the circle: distance - uncertainty <= radius


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
class RawFilter:
    """What the client asked, syntactically valid, not yet resolved against the database."""

    near: str | None = None
    radius_km: float | None = None
    bbox: tuple[float, float, float, float] | None = None
    within: str | None = None
    geometry: dict[str, Any] | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    actors: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    q: str | None = None
    # field -> accepted values, for the fields filtered by value or name (event_type, admin1..)
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # field -> lower bound (min_fatalities)
    minimums: dict[str, int] = field(default_factory=dict)
    match: Match = Match.point
    # The store as it stood at this instant (timezone-aware), instead of as it stands now.
    as_of: dt.datetime | None = None

    def between(self, start: dt.date | None, end: dt.date | None) -> RawFilter:
        """The same filter over other dates."""
        return replace(self, start=start, end=end)


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
    # Further conditions in SQL, written into the WHERE with the query's parameters (e.g. an
    # OGC API CQL2 filter); `described` echoes them in `meta`.
    conditions: list[Callable[[Any], str]] = field(default_factory=list)
    described: dict[str, Any] = field(default_factory=dict)

    def between(self, start: dt.date | None, end: dt.date | None) -> SearchFilter:
        return replace(self, raw=self.raw.between(start, end))

    def nearest_first(self) -> bool:
        """`near` without a radius, sorted by distance: the k nearest (growing circles)."""
        return self.near is not None and self.radius_m is None

    def dimensions(self) -> frozenset[str]:
        """What the filter constrains, by name: `dates`, `bbox`, `near`, `within`, `geometry`,
        `actor`, `q`, `min_<field>` and the names of the fields filtered by value. A rollup
        can answer the filter when it carries every one (`app.search.rollups`)."""
        raw = self.raw
        present = {
            "dates": raw.start is not None or raw.end is not None,
            "bbox": bool(self.envelopes),
            "near": self.near is not None,
            "within": self.area is not None,
            "geometry": self.geometry_json is not None,
            "actor": bool(raw.actors),
            "country": bool(raw.countries),
            "q": bool(raw.q),
            "conditions": bool(self.conditions),
            "match": raw.match is not Match.point,
            # No rollup keeps the past: a question about another instant counts incidents.
            "as_of": raw.as_of is not None,
        }
        names = {name for name, on in present.items() if on}
        names.update(name for name, values in raw.values.items() if values)
        names.update(f"min_{name}" for name in raw.minimums)
        return frozenset(names)

    def as_of_meta(self) -> str | None:
        """`meta.as_of`: the instant answered for (None: now)."""
        return None if self.raw.as_of is None else self.raw.as_of.isoformat()

    def meta(self) -> dict[str, Any]:
        """The filters as applied, echoed in responses so clients see what was understood."""
        raw = self.raw
        applied: dict[str, Any] = {}
        if self.near is not None:
            applied["near"] = {"latitude": self.near.latitude, "longitude": self.near.longitude}
            if self.radius_m is not None:
                applied["radius_km"] = self.radius_m / 1000
            if raw.match is not Match.point:
                applied["match"] = raw.match.value
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
        for name, values in raw.values.items():
            if values:
                applied[name] = list(values)
        if raw.actors:
            applied["actor"] = {"query": list(raw.actors), "matched_groups": self.actor_groups}
        if raw.countries:
            applied["country"] = self.country_codes or self.country_names
        for name, minimum in raw.minimums.items():
            applied[f"min_{name}"] = minimum
        if raw.q:
            applied["q"] = raw.q
        if raw.as_of is not None:
            applied["as_of"] = raw.as_of.isoformat()
        applied.update(self.described)
        return applied
