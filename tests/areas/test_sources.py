"""The offline boundary readers: codes, names and geometries, without a database.

The WKB is decoded by a small reader here rather than with the module's own code, so a mistake
in the writer (byte order, counts, ring closure) cannot hide itself.
"""

from __future__ import annotations

import sqlite3
import struct
from collections import Counter
from pathlib import Path

import pytest
import shapefile
import shapely

from app.areas import sources
from app.areas.sources import Boundary, default_admin1_path, iter_admin1, iter_countries

KHANAQIN = (45.391, 34.348)  # lon, lat: Diyala governorate, near the Iranian border
BAGHDAD = (44.366, 33.315)

Polygon = list[list[tuple[float, float]]]


class WkbReader:
    """Just enough ISO WKB to read Polygons and MultiPolygons, either byte order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _unpack(self, fmt: str, order: str) -> tuple[float | int, ...]:
        values = struct.unpack_from(order + fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def _header(self) -> tuple[str, int]:
        byte = self.data[self.pos]
        assert byte in (0, 1), f"bad byte-order marker {byte}"
        self.pos += 1
        order = "<" if byte == 1 else ">"
        (geometry_type,) = self._unpack("I", order)
        return order, int(geometry_type)

    def _polygon(self, order: str) -> Polygon:
        (ring_count,) = self._unpack("I", order)
        rings = []
        for _ in range(int(ring_count)):
            (point_count,) = self._unpack("I", order)
            coords = self._unpack(f"{2 * int(point_count)}d", order)
            rings.append(
                [(float(x), float(y)) for x, y in zip(coords[::2], coords[1::2], strict=True)]
            )
        return rings

    def read(self) -> list[Polygon]:
        order, geometry_type = self._header()
        if geometry_type == 3:
            polygons = [self._polygon(order)]
        elif geometry_type == 6:
            (count,) = self._unpack("I", order)
            polygons = []
            for _ in range(int(count)):
                inner_order, inner_type = self._header()
                assert inner_type == 3
                polygons.append(self._polygon(inner_order))
        else:
            raise AssertionError(f"unexpected WKB type {geometry_type}")
        assert self.pos == len(self.data), "trailing bytes after the geometry"
        return polygons


def read_wkb(data: bytes) -> list[Polygon]:
    return WkbReader(data).read()


def ring_contains(ring: list[tuple[float, float]], x: float, y: float) -> bool:
    inside = False
    for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y1 > y) != (y0 > y) and x < (x0 - x1) * (y - y1) / (y0 - y1) + x1:
            inside = not inside
    return inside


def contains(polygons: list[Polygon], x: float, y: float) -> bool:
    """Inside an exterior ring and outside its holes, for some polygon."""
    return any(
        ring_contains(rings[0], x, y) and not any(ring_contains(h, x, y) for h in rings[1:])
        for rings in polygons
    )


def bbox(polygons: list[Polygon]) -> tuple[float, float, float, float]:
    xs = [x for rings in polygons for x, _ in rings[0]]
    ys = [y for rings in polygons for _, y in rings[0]]
    return min(xs), min(ys), max(xs), max(ys)


def check_rings(polygons: list[Polygon]) -> None:
    assert polygons
    for rings in polygons:
        assert rings
        for ring in rings:
            assert len(ring) >= 4
            assert ring[0] == ring[-1], "ring not closed"
            for x, y in ring:
                assert -180.0 <= x <= 180.0 and -90.0 <= y <= 90.0


# ---- countries ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def countries() -> list[Boundary]:
    return list(iter_countries())


def by_code(boundaries: list[Boundary], code: str) -> Boundary:
    matches = [b for b in boundaries if b.code == code]
    assert len(matches) == 1, f"{len(matches)} boundaries with code {code}"
    return matches[0]


def test_countries_count_and_unique_codes(countries: list[Boundary]) -> None:
    assert len(countries) > 200
    assert all(b.kind == "country" for b in countries)
    codes = Counter(b.code for b in countries)
    assert None not in codes
    assert [c for c, n in codes.items() if n > 1] == []


def test_iraq_is_a_multipolygon_with_the_right_extent(countries: list[Boundary]) -> None:
    iraq = by_code(countries, "IRQ")
    assert (iraq.name, iraq.iso_a2, iraq.iso_a3) == ("Iraq", "IQ", "IRQ")
    assert iraq.wkb[:5] == b"\x01\x06\x00\x00\x00"  # little-endian MultiPolygon
    polygons = read_wkb(iraq.wkb)
    check_rings(polygons)
    min_x, min_y, max_x, max_y = bbox(polygons)
    assert min_x == pytest.approx(38.8, abs=0.3) and max_x == pytest.approx(48.6, abs=0.3)
    assert min_y == pytest.approx(29.0, abs=0.3) and max_y == pytest.approx(37.4, abs=0.3)
    assert "العراق" in iraq.alt_names
    assert iraq.name not in iraq.alt_names


def test_points_in_iraq(countries: list[Boundary]) -> None:
    iraq = read_wkb(by_code(countries, "IRQ").wkb)
    assert contains(iraq, *KHANAQIN)
    assert contains(iraq, *BAGHDAD)
    assert not contains(iraq, 51.389, 35.689)  # Tehran
    assert not contains(read_wkb(by_code(countries, "IRN").wkb), *KHANAQIN)


@pytest.mark.parametrize(
    ("code", "iso_a2", "iso_a3", "name"),
    [
        ("FRA", "FR", "FRA", "France"),  # ISO_A2/ISO_A3 are -99 in Natural Earth
        ("NOR", "NO", "NOR", "Norway"),  # likewise
        ("TWN", "TW", "TWN", "Taiwan"),  # ISO_A2 is 'CN-TW'
        ("PSE", "PS", "PSE", "Palestine"),
        ("SSD", "SS", "SSD", "South Sudan"),  # NAME is the abbreviated 'S. Sudan'
        ("KOS", "XK", None, "Kosovo"),  # no ISO alpha-3: Natural Earth's own code
    ],
)
def test_country_codes_fall_back(
    countries: list[Boundary], code: str, iso_a2: str, iso_a3: str | None, name: str
) -> None:
    country = by_code(countries, code)
    assert (country.iso_a2, country.iso_a3, country.name) == (iso_a2, iso_a3, name)


def test_no_missing_value_markers(countries: list[Boundary]) -> None:
    for b in countries:
        assert b.iso_a2 is None or (len(b.iso_a2) == 2 and b.iso_a2.isalpha())
        assert b.iso_a3 is None or (len(b.iso_a3) == 3 and b.iso_a3.isalpha())
        assert "-99" not in b.alt_names
        assert not any(n.isdigit() for n in b.alt_names)  # NAME_LEN is not a name
        assert len({n.casefold() for n in b.alt_names}) == len(b.alt_names)


def test_holes_stay_with_their_polygon(countries: list[Boundary]) -> None:
    # Lesotho is a hole in South Africa; Vatican and San Marino are holes in Italy.
    south_africa = read_wkb(by_code(countries, "ZAF").wkb)
    assert any(len(rings) > 1 for rings in south_africa)
    maseru = (27.48, -29.31)
    assert not contains(south_africa, *maseru)
    assert contains(read_wkb(by_code(countries, "LSO").wkb), *maseru)
    italy = read_wkb(by_code(countries, "ITA").wkb)
    assert not contains(italy, 12.4534, 41.9029)  # Vatican
    assert contains(italy, 12.4964, 41.9028)  # Rome


def test_shape_rings_are_grouped_into_polygons() -> None:
    square = [(0.0, 0.0), (0.0, 10.0), (10.0, 10.0), (10.0, 0.0), (0.0, 0.0)]  # clockwise
    hole = [(2.0, 2.0), (4.0, 2.0), (4.0, 4.0), (2.0, 4.0), (2.0, 2.0)]  # counter-clockwise
    island = [(20.0, 0.0), (20.0, 1.0), (21.0, 1.0), (21.0, 0.0), (20.0, 0.0)]
    shape = shapefile.Shape(
        shapeType=shapefile.POLYGON,
        points=square + hole + island,
        parts=[0, len(square), len(square) + len(hole)],
    )
    wkb = sources._shape_wkb(shape)
    assert wkb is not None
    decoded = read_wkb(wkb)
    assert len(decoded) == 2  # the square with its hole, and the island
    assert sorted(len(rings) for rings in decoded) == [1, 2]
    assert contains(decoded, 1.0, 1.0) and not contains(decoded, 3.0, 3.0)
    assert contains(decoded, 20.5, 0.5)


def test_only_polygons_pass() -> None:
    square = shapely.Polygon([(0, 0), (0, 1), (1, 1), (0, 0)])
    assert sources._polygonal_wkb(shapely.to_wkb(square)) == shapely.to_wkb(square)
    with pytest.raises(ValueError):
        sources._polygonal_wkb(shapely.to_wkb(shapely.Point(1, 2)))
    with pytest.raises(ValueError):
        sources._polygonal_wkb(b"not wkb")


# ---- admin-1 ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin1() -> list[Boundary]:
    path = default_admin1_path()
    if path is None:
        pytest.skip("no admin-1 GeoPackage: run scripts/fetch_boundaries.sh")
    return list(iter_admin1(path))


def test_default_admin1_path_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpkg = tmp_path / "custom.gpkg"
    gpkg.write_bytes(b"")
    monkeypatch.setenv(sources.ADMIN1_ENV_VAR, str(gpkg))
    assert default_admin1_path() == gpkg
    monkeypatch.setenv(sources.ADMIN1_ENV_VAR, str(tmp_path / "missing.gpkg"))
    assert default_admin1_path() != tmp_path / "missing.gpkg"


def test_iraq_has_18_governorates(admin1: list[Boundary]) -> None:
    iraq = [b for b in admin1 if b.iso_a3 == "IRQ"]
    assert len(iraq) == 18
    assert all(b.kind == "admin1" and b.iso_a2 == "IQ" for b in iraq)
    codes = {b.code for b in iraq}
    assert len(codes) == 18 and all(c and c.startswith("IQ-") for c in codes)
    assert {"IQ-BG", "IQ-NI", "IQ-AN", "IQ-BA", "IQ-KI", "IQ-SD"} <= codes


def test_diyala(admin1: list[Boundary]) -> None:
    diyala = by_code(admin1, "IQ-DI")
    assert diyala.name == "Diyala"
    assert (diyala.iso_a2, diyala.iso_a3) == ("IQ", "IRQ")
    assert "ديالى" in diyala.alt_names
    polygons = read_wkb(diyala.wkb)
    check_rings(polygons)
    assert contains(polygons, *KHANAQIN)
    assert not contains(polygons, *BAGHDAD)
    assert contains(read_wkb(by_code(admin1, "IQ-BG").wkb), *BAGHDAD)


def test_khanaqin_is_in_exactly_one_iraqi_governorate(admin1: list[Boundary]) -> None:
    hits = [b.code for b in admin1 if b.iso_a3 == "IRQ" and contains(read_wkb(b.wkb), *KHANAQIN)]
    assert hits == ["IQ-DI"]


def test_admin1_codes_are_unique_and_well_formed(admin1: list[Boundary]) -> None:
    assert len(admin1) > 3000
    codes = Counter(b.code for b in admin1 if b.code is not None)
    assert [c for c, n in codes.items() if n > 1] == []
    assert len(codes) > 0.8 * len(admin1)
    for b in admin1:
        assert b.name and b.wkb[1:5] in (b"\x03\x00\x00\x00", b"\x06\x00\x00\x00")
        if b.code is not None and b.iso_a2 is not None:
            assert b.code[2] == "-"


def test_admin1_country_codes_match_the_country_layer(
    admin1: list[Boundary], countries: list[Boundary]
) -> None:
    country_codes = {(b.iso_a2, b.iso_a3) for b in countries}
    unmatched = {(b.iso_a2, b.iso_a3) for b in admin1} - country_codes
    # Only units whose country has no ISO code at all may be left out (e.g. Siachen).
    assert all(a3 is None for _, a3 in unmatched), unmatched
    kosovo = [b for b in admin1 if b.iso_a2 == "XK"]
    assert kosovo and all(b.iso_a3 is None for b in kosovo)
    assert {b.iso_a3 for b in admin1 if b.iso_a2 == "FR"} == {"FRA"}
    assert {b.iso_a3 for b in admin1 if b.iso_a2 == "SS"} == {"SSD"}  # adm0_a3 is SDS


def test_unreliable_lookup_names_are_dropped(admin1: list[Boundary]) -> None:
    # The QGIS layer gives Latvia's Kandavas the WOE name "Riga" (its former district).
    kandavas = [b for b in admin1 if b.name == "Kandavas"]
    for b in kandavas:
        assert "Riga" not in b.alt_names


# ---- GeoPackage parsing -------------------------------------------------------------------------


def _square_wkb() -> bytes:
    wkb = sources._multipolygon_wkb(shapely.Polygon([(0, 0), (0, 1), (1, 1), (0, 0)]))
    assert wkb is not None
    return wkb


def _gpkg_blob(wkb: bytes, envelope: int, little_endian: bool = True) -> bytes:
    sizes = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}
    flags = (envelope << 1) | (1 if little_endian else 0)
    order = "<" if little_endian else ">"
    return (
        b"GP\x00"
        + bytes([flags])
        + struct.pack(order + "i", 4326)
        + b"\x00" * sizes[envelope]
        + wkb
    )


@pytest.mark.parametrize("envelope", [0, 1, 2, 3, 4])
def test_gpkg_header_is_stripped(envelope: int) -> None:
    wkb = _square_wkb()
    assert sources._gpkg_wkb(_gpkg_blob(wkb, envelope)) == wkb
    assert sources._gpkg_wkb(_gpkg_blob(wkb, envelope, little_endian=False)) == wkb


def test_gpkg_empty_and_invalid_blobs() -> None:
    assert sources._gpkg_wkb(b"GP\x00\x11" + b"\x00" * 4) is None  # empty flag
    with pytest.raises(ValueError):
        sources._gpkg_wkb(b"XX\x00\x01\x00\x00\x00\x00")
    with pytest.raises(ValueError):
        sources._gpkg_wkb(b"GP\x00\x21\x00\x00\x00\x00")  # extended geometry


def _make_gpkg(path: Path, srs_id: int, iso_column: bool) -> None:
    wkb = _square_wkb()
    extra = ", iso_3166_2 TEXT" if iso_column else ""
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT, srs_id INTEGER PRIMARY KEY,"
            " organization TEXT, organization_coordsys_id INTEGER, definition TEXT);"
            "CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT);"
            "CREATE TABLE gpkg_geometry_columns (table_name TEXT, column_name TEXT,"
            " geometry_type_name TEXT, srs_id INTEGER, z INTEGER, m INTEGER);"
            f"CREATE TABLE states_provinces (fid INTEGER PRIMARY KEY, geom BLOB, name TEXT,"
            f" iso_a2 TEXT, adm0_a3 TEXT, fips TEXT, gn_name TEXT{extra});"
        )
        db.execute("INSERT INTO gpkg_spatial_ref_sys VALUES ('WGS 84', 4326, 'EPSG', 4326, '')")
        db.execute("INSERT INTO gpkg_spatial_ref_sys VALUES ('Merc', 3857, 'EPSG', 3857, '')")
        db.execute("INSERT INTO gpkg_contents VALUES ('states_provinces', 'features')")
        db.execute(
            "INSERT INTO gpkg_geometry_columns VALUES"
            " ('states_provinces', 'geom', 'MULTIPOLYGON', ?, 0, 0)",
            (srs_id,),
        )
        columns = "geom, name, iso_a2, adm0_a3, fips, gn_name" + (
            ", iso_3166_2" if iso_column else ""
        )
        marks = ", ".join("?" * (7 if iso_column else 6))
        rows = [
            (_gpkg_blob(wkb, 1), "Diyala", "IQ", "IRQ", "IZ10", "Muhafazat Diyala", "IQ-DI"),
            (None, "No geometry", "IQ", "IRQ", None, None, None),
            (_gpkg_blob(wkb, 0), None, "IQ", "IRQ", None, None, None),  # unnamed sliver
            (_gpkg_blob(wkb, 0), "Somaliland", "-1", "SOL", None, None, None),
        ]
        db.executemany(
            f"INSERT INTO states_provinces ({columns}) VALUES ({marks})",
            [r if iso_column else r[:6] for r in rows],
        )


@pytest.mark.parametrize("iso_column", [True, False])
def test_iter_admin1_on_a_small_gpkg(tmp_path: Path, iso_column: bool) -> None:
    path = tmp_path / "small.gpkg"
    _make_gpkg(path, 4326, iso_column)
    units = list(iter_admin1(path))
    assert [(u.name, u.code, u.iso_a2, u.iso_a3) for u in units] == [
        ("Diyala", "IQ-DI", "IQ", "IRQ"),
        ("Somaliland", None, "SO", "SOM"),
    ]
    assert read_wkb(units[0].wkb) == [[[(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.0, 0.0)]]]


def test_iter_admin1_rejects_projected_layers(tmp_path: Path) -> None:
    path = tmp_path / "mercator.gpkg"
    _make_gpkg(path, 3857, iso_column=True)
    with pytest.raises(ValueError, match="EPSG:4326"):
        list(iter_admin1(path))
