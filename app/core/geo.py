"""Geodesy for query planning: degree envelopes that surely contain a geodesic circle.

The radius search tests points against these envelopes with the GiST index (`geom && env`),
then checks the exact spheroid distance on the candidates only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WGS84_A = 6_378_137.0
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)
# Shortest length of one degree of latitude (at the equator): a(1-e²)·π/180.
MIN_METRES_PER_DEGREE_LAT = WGS84_A * (1 - WGS84_E2) * math.pi / 180
MARGIN = 1.001


@dataclass(frozen=True)
class Envelope:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


def metres_per_degree_lon(lat: float) -> float:
    phi = math.radians(lat)
    return (math.pi / 180) * WGS84_A * math.cos(phi) / math.sqrt(1 - WGS84_E2 * math.sin(phi) ** 2)


def split_antimeridian(
    min_lon: float, min_lat: float, max_lon: float, max_lat: float
) -> list[Envelope]:
    """Envelopes in [-180, 180]; one that crosses the antimeridian becomes two."""
    if max_lon - min_lon >= 360:
        return [Envelope(-180, min_lat, 180, max_lat)]
    if min_lon < -180:
        return [
            Envelope(min_lon + 360, min_lat, 180, max_lat),
            Envelope(-180, min_lat, max_lon, max_lat),
        ]
    if max_lon > 180:
        return [
            Envelope(min_lon, min_lat, 180, max_lat),
            Envelope(-180, min_lat, max_lon - 360, max_lat),
        ]
    return [Envelope(min_lon, min_lat, max_lon, max_lat)]


def circle_envelopes(lat: float, lon: float, radius_m: float) -> list[Envelope]:
    """Envelopes containing every point within `radius_m` (geodesic) of (lat, lon).

    Along a geodesic of length r from the centre, latitude changes by at most r divided by the
    smallest meridian degree, and longitude by at most r divided by the shortest parallel
    degree met in the latitude band, so these bounds are safe (plus a 0.1% margin).
    """
    dlat = radius_m / MIN_METRES_PER_DEGREE_LAT * MARGIN
    min_lat, max_lat = lat - dlat, lat + dlat
    if min_lat <= -89.9 or max_lat >= 89.9:
        return [Envelope(-180, max(min_lat, -90), 180, min(max_lat, 90))]
    widest = max(abs(min_lat), abs(max_lat))
    dlon = radius_m / metres_per_degree_lon(widest) * MARGIN
    if dlon >= 180:
        return [Envelope(-180, min_lat, 180, max_lat)]
    return split_antimeridian(lon - dlon, min_lat, lon + dlon, max_lat)


def bbox_envelopes(
    min_lon: float, min_lat: float, max_lon: float, max_lat: float
) -> list[Envelope]:
    """A client bbox; `min_lon > max_lon` means it crosses the antimeridian."""
    if min_lon > max_lon:
        return [Envelope(min_lon, min_lat, 180, max_lat), Envelope(-180, min_lat, max_lon, max_lat)]
    return [Envelope(min_lon, min_lat, max_lon, max_lat)]


MAX_METRES_PER_DEGREE_LAT = 111_694.0  # the meridian degree is longest at the poles


def inner_box(lat: float, lon: float, radius_m: float) -> Envelope | None:
    """A box every point of which is within `radius_m` of (lat, lon): half-sides of r/2 in
    metres, so the path along a meridian then a parallel (>= the geodesic) is at most r.
    Points inside it skip the exact spheroid distance. None near poles or the antimeridian."""
    half = radius_m / 2 * 0.999
    dlat = half / MAX_METRES_PER_DEGREE_LAT
    if abs(lat) + dlat >= 89:
        return None
    closest_to_equator = 0.0 if abs(lat) <= dlat else abs(lat) - dlat
    dlon = half / metres_per_degree_lon(closest_to_equator)
    if lon - dlon < -180 or lon + dlon > 180:
        return None
    return Envelope(lon - dlon, lat - dlat, lon + dlon, lat + dlat)
