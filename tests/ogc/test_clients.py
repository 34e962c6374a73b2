"""Real OGC API - Features clients against the real server: OWSLib, GDAL's OAPIF driver
(`ogr2ogr`, Debian's gdal-bin) and QGIS's OAPIF provider (PyQGIS, Debian's python3-qgis),
each paging past several pages; every feature is compared with /v1/incidents."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from tests.conftest import insert_incidents, truncate_incidents

BBOX = (44.0, 33.0, 46.0, 35.0)
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
async def incidents_for_clients(db: asyncpg.Connection) -> list[int]:
    await truncate_incidents(db)
    rows = [
        {
            "event_date": dt.date(2022, 1, 1) + dt.timedelta(days=k),
            "event_type": "Battles" if k % 3 else "Violence against civilians",
            "sub_event_type": "Armed clash" if k % 3 else "Attack",
            "fatalities": k % 5,
            "admin1": "Diyala",
            "latitude": 33.2 + (k % 40) * 0.04,  # some outside the bbox (north of 35)
            "longitude": 44.2 + (k % 17) * 0.1,
            "external_id": f"CL{k:04d}",
        }
        for k in range(230)
    ]
    ids = await insert_incidents(db, rows)
    await db.execute("SELECT incident_rollups_compact()")
    return ids


def v1_features(base: str, **params: Any) -> dict[str, dict[str, Any]]:
    resp = httpx.get(f"{base}/v1/incidents", params={"limit": 10000, **params}, timeout=30)
    assert resp.status_code == 200, resp.text
    return {i["external_id"]: i for i in resp.json()["items"]}


def test_owslib_reads_every_page(live_server: str, incidents_for_clients: list[int]) -> None:
    from owslib.ogcapi.features import Features

    api = Features(f"{live_server}/ogc")
    assert api.feature_collections() == ["incidents"]
    assert (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
        in (api.conformance()["conformsTo"])
    )
    assert api.collection("incidents")["itemType"] == "feature"
    queryables = api.collection_queryables("incidents")
    assert queryables["properties"]["event_type"]["type"] == "string"
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        extra = {"cursor": cursor} if cursor else {}
        page = api.collection_items("incidents", bbox=list(BBOX), limit=40, **extra)
        pages += 1
        seen += page["features"]
        following = [link for link in page["links"] if link["rel"] == "next"]
        if not following:
            break
        cursor = parse_qs(urlsplit(following[0]["href"]).query)["cursor"][0]
    expected = v1_features(live_server, bbox=",".join(map(str, BBOX)))
    assert pages >= 4 and len(seen) == len(expected) > 100
    for feature in seen:
        incident = expected[feature["properties"]["external_id"]]
        assert feature["id"] == incident["id"]
        assert feature["geometry"]["coordinates"] == [incident["longitude"], incident["latitude"]]
        assert feature["properties"]["fatalities"] == incident["fatalities"]
    one = api.collection_item("incidents", seen[0]["id"])
    assert one["id"] == seen[0]["id"]
    filtered = api.collection_items(
        "incidents", limit=1000, filter="event_type = 'Battles' AND fatalities > 2"
    )
    expected_battles = {
        k
        for k, v in v1_features(live_server).items()
        if v["event_type"] == "Battles" and v["fatalities"] > 2
    }
    assert {f["properties"]["external_id"] for f in filtered["features"]} == expected_battles


@pytest.mark.skipif(
    shutil.which("ogr2ogr") is None, reason="gdal-bin (scripts/test.sh installs it)"
)
def test_gdal_ogr2ogr_reads_every_page(
    live_server: str, incidents_for_clients: list[int], tmp_path: Path
) -> None:
    out = tmp_path / "out.geojson"
    env = {**os.environ, "CPL_DEBUG": "ON"}
    done = subprocess.run(
        [
            "ogr2ogr",
            "-f",
            "GeoJSON",
            str(out),
            f"OAPIF:{live_server}/ogc",
            "incidents",
            "-spat",
            *map(str, BBOX),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    pages = done.stderr.count("/ogc/collections/incidents/items")
    assert pages >= 5, "GDAL pages 10 at a time: it followed the next links"
    written = json.loads(out.read_text())["features"]
    expected = v1_features(live_server, bbox=",".join(map(str, BBOX)))
    assert len(written) == len(expected)
    for feature in written:
        props = feature["properties"]
        incident = expected[props["external_id"]]
        lon, lat = feature["geometry"]["coordinates"][:2]
        assert (lon, lat) == pytest.approx((incident["longitude"], incident["latitude"]), abs=1e-9)
        assert props["event_type"] == incident["event_type"]
        assert props["fatalities"] == incident["fatalities"]
    info = subprocess.run(
        ["ogrinfo", "-ro", "-so", f"OAPIF:{live_server}/ogc", "incidents"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert info.returncode == 0, info.stderr[-2000:]
    assert f"Feature Count: {len(v1_features(live_server))}" in info.stdout  # numberMatched


QGIS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from qgis.core import (QgsApplication, QgsFeatureRequest, QgsRectangle, QgsVectorLayer)
    app = QgsApplication([], False)
    app.initQgis()
    uri = f"url='{sys.argv[1]}/ogc' typename='incidents'"
    layer = QgsVectorLayer(uri, "incidents", "OAPIF")
    out = {"valid": layer.isValid(), "count": layer.featureCount(),
           "fields": [f.name() for f in layer.fields()]}
    rect = QgsRectangle(*[float(v) for v in sys.argv[2].split(",")])
    request = QgsFeatureRequest().setFilterRect(rect)
    out["in_bbox"] = sorted(f["external_id"] for f in layer.getFeatures(request))
    out["all"] = sorted(f["external_id"] for f in layer.getFeatures())
    battles = QgsFeatureRequest().setFilterExpression("event_type = 'Battles' AND fatalities > 2")
    out["battles"] = sorted(f["external_id"] for f in layer.getFeatures(battles))
    print(json.dumps(out), flush=True)
    os._exit(0)  # QGIS 3.22 may crash while tearing down its network threads
    """
)


def _has_pyqgis() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _has_pyqgis(), reason="python3-qgis (scripts/test.sh installs it)")
def test_qgis_adds_the_layer_and_reads_it(
    live_server: str, incidents_for_clients: list[int], tmp_path: Path
) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_RUNTIME_DIR": str(runtime),
        "HOME": str(tmp_path),
    }
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", QGIS_SCRIPT, live_server, ",".join(map(str, BBOX))],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    everything = v1_features(live_server)
    assert out["valid"] and out["count"] == len(everything)  # numberMatched at limit=1
    assert {"external_id", "event_date", "event_type", "fatalities"} <= set(out["fields"])
    assert out["all"] == sorted(everything)
    assert out["in_bbox"] == sorted(v1_features(live_server, bbox=",".join(map(str, BBOX))))
    assert out["battles"] == sorted(
        k for k, v in everything.items() if v["event_type"] == "Battles" and v["fatalities"] > 2
    )
