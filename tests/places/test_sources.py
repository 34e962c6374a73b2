"""Offline gazetteer sources: packaged GeoNames data and GeoNames dump files (no database)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.places.sources import (
    PlaceRecord,
    country_alpha3,
    country_names,
    iter_geonames_dump,
    iter_packaged_places,
)

KHANAQIN = 94591

# IQ.txt-format rows written for these tests (19 tab-separated columns). The mountain (class T)
# and the historical division (A/ADM1H) must be skipped with the default feature classes.
DUMP_ROWS = [
    [
        "94591", "Khānaqīn", "Khanaqin",
        "Kanaqin,Khanaqin,Xaneqîn,خانقين,https://en.wikipedia.org/wiki/Khanaqin,40001,Kanaqin",
        "34.3482", "45.39065", "P", "PPLA2", "IQ", "", "10", "94590", "", "",
        "175000", "", "155", "Asia/Baghdad", "2024-01-01",
    ],
    [
        "94590", "Khanaqin District", "Khanaqin District", "قەزای خانەقین",
        "34.33333", "45.5", "A", "ADM2", "IQ", "", "10", "94590", "", "",
        "0", "", "180", "Asia/Baghdad", "2024-01-01",
    ],
    [
        "99000001", "Jabal Ḩamrīn", "Jabal Hamrin", "Hamrin Mountains,جبل حمرين",
        "34.5", "44.5", "T", "MTS", "IQ", "", "18", "", "", "",
        "0", "", "300", "Asia/Baghdad", "2024-01-01",
    ],
    [
        "99000002", "Old Diyala Liwa", "Old Diyala Liwa", "",
        "33.9", "45.0", "A", "ADM1H", "IQ", "", "10", "", "", "",
        "0", "", "100", "Asia/Baghdad", "2024-01-01",
    ],
]  # fmt: skip


@dataclass
class PackagedSummary:
    count: int
    khanaqin: PlaceRecord | None
    records_with_links: int


@pytest.fixture(scope="module")
def packaged() -> PackagedSummary:
    """One pass over all packaged places (~3 s), shared by the packaged-data tests."""
    count = 0
    khanaqin = None
    with_links = 0
    for record in iter_packaged_places():
        count += 1
        if record.geonameid == KHANAQIN:
            khanaqin = record
        if any("://" in alt or alt.startswith("www.") for alt in record.alternate_names):
            with_links += 1
    return PackagedSummary(count, khanaqin, with_links)


def write_dump(path: Path) -> Path:
    path.write_text("".join("\t".join(row) + "\n" for row in DUMP_ROWS), encoding="utf-8")
    return path


def test_packaged_khanaqin(packaged: PackagedSummary) -> None:
    k = packaged.khanaqin
    assert k is not None
    assert k.name == "Khānaqīn"
    assert k.ascii_name == "Khanaqin"
    assert k.country_code == "IQ"
    assert k.country_code3 == "IRQ"
    assert k.admin1_code == "10"
    assert k.admin1 == "Diyālá"
    assert k.admin2_code == "94590"
    assert k.admin2 is not None and "Khanaqin" in k.admin2
    assert k.population > 0
    assert k.feature_class == "P"
    assert k.timezone == "Asia/Baghdad"
    assert 34 < k.latitude < 35 and 45 < k.longitude < 46
    assert "خانقين" in k.alternate_names
    assert "Xaneqîn" in k.alternate_names
    assert k.name not in k.alternate_names
    assert len(set(k.alternate_names)) == len(k.alternate_names)


def test_packaged_alternate_names_have_no_links(packaged: PackagedSummary) -> None:
    assert packaged.count > 200_000
    assert packaged.records_with_links == 0


def test_dump_parses_and_filters(tmp_path: Path) -> None:
    records = list(iter_geonames_dump(write_dump(tmp_path / "IQ.txt")))

    assert [r.geonameid for r in records] == [94591, 94590]
    town, district = records
    assert town.name == "Khānaqīn"
    assert town.ascii_name == "Khanaqin"
    # the link and the postal code are dropped, the repeated "Kanaqin" kept once
    assert town.alternate_names == ("Kanaqin", "Khanaqin", "Xaneqîn", "خانقين")
    assert (town.feature_class, town.feature_code) == ("P", "PPLA2")
    assert (town.country_code, town.country_code3) == ("IQ", "IRQ")
    assert (town.admin1_code, town.admin2_code) == ("10", "94590")
    assert town.admin1 == "Diyālá"
    assert town.admin2 == "Khanaqin District"
    assert town.population == 175000
    assert town.timezone == "Asia/Baghdad"
    assert (town.latitude, town.longitude) == (34.3482, 45.39065)

    assert (district.feature_class, district.feature_code) == ("A", "ADM2")
    assert district.alternate_names == ("قەزای خانەقین",)
    assert district.admin2 == "Khanaqin District"


def test_dump_feature_classes_are_configurable(tmp_path: Path) -> None:
    path = write_dump(tmp_path / "IQ.txt")
    assert [r.geonameid for r in iter_geonames_dump(path, frozenset({"T"}))] == [99000001]
    assert [r.geonameid for r in iter_geonames_dump(path, frozenset({"P"}))] == [94591]


def test_dump_inside_zip(tmp_path: Path) -> None:
    text = write_dump(tmp_path / "IQ.txt").read_text(encoding="utf-8")
    archive = tmp_path / "IQ.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("readme.txt", "GeoNames readme\n")
        zf.writestr("IQ.txt", text)

    from_zip = list(iter_geonames_dump(archive))
    assert from_zip == list(iter_geonames_dump(tmp_path / "IQ.txt"))
    assert [r.geonameid for r in from_zip] == [94591, 94590]


def test_dump_rejects_other_formats(tmp_path: Path) -> None:
    path = tmp_path / "not-geonames.txt"
    path.write_text("id,name\n1,Khanaqin\n", encoding="utf-8")
    with pytest.raises(ValueError, match="19 tab-separated columns"):
        list(iter_geonames_dump(path))


def test_countries() -> None:
    assert country_alpha3("IQ") == "IRQ"
    assert country_alpha3("iq") == "IRQ"
    assert country_alpha3("ZZ") is None
    names = country_names()
    assert names["IQ"] == ("IRQ", "Iraq")
    assert names["SY"][0] == "SYR"
