"""The /map page renders in headless Chromium: tiles, outlines, a click popup, no console
errors. The screenshot is checked for content, not just taken."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from PIL import Image

from tests.conftest import insert_incidents

pytestmark = pytest.mark.usefixtures("boundaries", "clean_incidents")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not Path(CHROMEDRIVER).exists():
        pytest.fail("chromedriver missing: scripts/test.sh installs chromium-driver")
    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
        "--disable-dev-shm-usage",
        "--window-size=1200,800",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: object, script: str, timeout: float = 40) -> object:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(script)  # type: ignore[attr-defined]
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for: {script}")


async def test_map_renders_and_shows_a_popup(
    live_server: str, db: asyncpg.Connection, browser: object, tmp_path: Path
) -> None:
    await insert_incidents(
        db,
        [
            {
                "latitude": 34.3482,
                "longitude": 45.3907,
                "external_id": "MAP1",
                "event_type": "Battles",
                "fatalities": 4,
                "location": "Khanaqin",
                "notes": "Clash on the edge of Khanaqin.",
                "event_date": dt.date(2024, 3, 2),
            },
            *(
                {
                    "latitude": 34 + n / 50,
                    "longitude": 44 + n / 40,
                    "external_id": f"MAP{n + 2}",
                    "event_date": dt.date(2023, 1, 1) + dt.timedelta(days=n),
                }
                for n in range(60)
            ),
        ],
    )
    assert httpx.get(live_server + "/map/assets/maplibre-gl.js").status_code == 200
    driver = browser
    driver.get(live_server + "/map")  # type: ignore[attr-defined]
    wait_for(driver, "return window.mapReady === true")
    # Low zoom: clusters drawn from the vector tiles.
    wait_for(
        driver, "return window.incidentMap.queryRenderedFeatures({layers: ['clusters']}).length > 0"
    )
    shot = tmp_path / "map.png"
    driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 50, "screenshot looks blank"
    assert any(r > 180 and b < 110 and r - b > 100 for _, (r, g, b) in colors), "no markers"

    # Zoom in and click the Khanaqin incident: the popup shows it.
    driver.execute_script(  # type: ignore[attr-defined]
        "window.mapReady = false; window.incidentMap.jumpTo({center: [45.3907, 34.3482], "
        "zoom: 13});"
    )
    wait_for(driver, "return window.mapReady === true")
    wait_for(
        driver, "return window.incidentMap.queryRenderedFeatures({layers: ['points']}).length > 0"
    )
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.CSS_SELECTOR, "canvas.maplibregl-canvas")  # type: ignore
    point = driver.execute_script(  # type: ignore[attr-defined]
        "const p = window.incidentMap.project([45.3907, 34.3482]); return [p.x, p.y];"
    )
    size = canvas.size
    ActionChains(driver).move_to_element_with_offset(
        canvas, int(point[0] - size["width"] / 2), int(point[1] - size["height"] / 2)
    ).click().perform()
    popup = wait_for(
        driver,
        "const p = document.querySelector('.maplibregl-popup-content');"
        "return p && p.textContent.includes('Battles') && p.textContent;",
    )
    assert "Clash on the edge of Khanaqin." in str(popup)
    assert "Fatalities: 4" in str(popup)

    errors = [
        e
        for e in driver.get_log("browser")  # type: ignore[attr-defined]
        if e["level"] == "SEVERE"
    ]
    assert errors == [], errors
