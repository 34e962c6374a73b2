"""Writes a realistic synthetic ACLED CSV (current layout), seeded, for benchmarks.

    python bench/generate_acled.py --rows 1000000 --out bench/data/acled_1m.csv

Incidents cluster around real hotspots of Iraq and Syria (weights roughly follow where ACLED
records events), spread over 2018-2024 with more recent years denser; event types, actors,
fatalities and notes follow ACLED's shapes. Nothing here is real data.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import random
from pathlib import Path

# (location, admin1, admin2, lat, lon, spread_km, weight, country, iso)
HOTSPOTS = [
    ("Khanaqin", "Diyala", "Khanaqin", 34.348, 45.391, 15, 6, "Iraq", 368),
    ("Baqubah", "Diyala", "Baquba", 33.75, 44.64, 20, 6, "Iraq", 368),
    ("Jalawla", "Diyala", "Khanaqin", 34.27, 45.16, 10, 3, "Iraq", 368),
    ("Muqdadiyah", "Diyala", "Al-Muqdadiya", 33.98, 44.94, 12, 4, "Iraq", 368),
    ("Baghdad", "Baghdad", "Al-Karkh", 33.31, 44.36, 20, 10, "Iraq", 368),
    ("Mosul", "Ninewa", "Mosul", 36.34, 43.13, 25, 8, "Iraq", 368),
    ("Kirkuk", "Kirkuk", "Kirkuk", 35.47, 44.39, 25, 7, "Iraq", 368),
    ("Tikrit", "Salah al-Din", "Tikrit", 34.61, 43.68, 30, 5, "Iraq", 368),
    ("Ramadi", "Anbar", "Ramadi", 33.42, 43.30, 30, 5, "Iraq", 368),
    ("Fallujah", "Anbar", "Falluja", 33.35, 43.78, 15, 3, "Iraq", 368),
    ("Basrah", "Basrah", "Basrah", 30.51, 47.78, 20, 4, "Iraq", 368),
    ("Sinjar", "Ninewa", "Sinjar", 36.32, 41.87, 20, 2, "Iraq", 368),
    ("Erbil", "Erbil", "Erbil", 36.19, 44.01, 20, 2, "Iraq", 368),
    ("Aleppo", "Aleppo", "Jebel Saman", 36.20, 37.15, 25, 10, "Syria", 760),
    ("Idlib", "Idleb", "Idleb", 35.93, 36.63, 25, 12, "Syria", 760),
    ("Deir ez-Zor", "Deir-ez-Zor", "Deir-ez-Zor", 35.33, 40.14, 40, 8, "Syria", 760),
    ("Raqqa", "Ar-Raqqa", "Ar-Raqqa", 35.95, 39.01, 30, 5, "Syria", 760),
    ("Damascus", "Damascus", "Damascus", 33.51, 36.29, 20, 5, "Syria", 760),
    ("Daraa", "Dar'a", "Dar'a", 32.62, 36.10, 25, 6, "Syria", 760),
    ("Homs", "Homs", "Homs", 34.73, 36.71, 30, 4, "Syria", 760),
    ("Hasakah", "Al-Hasakeh", "Al-Hasakeh", 36.50, 40.75, 40, 4, "Syria", 760),
    ("Palmyra", "Homs", "Tadmor", 34.56, 38.27, 60, 2, "Syria", 760),
]

EVENTS = [
    ("Political violence", "Battles", "Armed clash", 22),
    ("Political violence", "Explosions/Remote violence", "Shelling/artillery/missile attack", 16),
    ("Political violence", "Explosions/Remote violence", "Air/drone strike", 10),
    ("Political violence", "Explosions/Remote violence", "Remote explosive/landmine/IED", 9),
    ("Political violence", "Violence against civilians", "Attack", 10),
    ("Political violence", "Violence against civilians", "Abduction/forced disappearance", 3),
    ("Demonstrations", "Protests", "Peaceful protest", 14),
    ("Demonstrations", "Protests", "Protest with intervention", 2),
    ("Demonstrations", "Riots", "Violent demonstration", 2),
    ("Strategic developments", "Strategic developments", "Arrests", 6),
    ("Strategic developments", "Strategic developments", "Looting/property destruction", 3),
    ("Strategic developments", "Strategic developments", "Disrupted weapons use", 3),
]

ACTORS = {
    "Iraq": [
        "Islamic State (Iraq)",
        "Military Forces of Iraq (2022-)",
        "Police Forces of Iraq (2022-)",
        "Popular Mobilization Forces",
        "Military Forces of Iraq (2022-) Peshmerga",
        "Unidentified Armed Group (Iraq)",
        "Protesters (Iraq)",
        "Civilians (Iraq)",
        "Military Forces of Turkey (2016-)",
    ],
    "Syria": [
        "Islamic State (Syria)",
        "Military Forces of Syria (2000-2024)",
        "Hay'at Tahrir al-Sham",
        "Syrian Democratic Forces",
        "Military Forces of Russia (2000-)",
        "Unidentified Armed Group (Syria)",
        "Protesters (Syria)",
        "Civilians (Syria)",
        "Military Forces of Turkey (2016-)",
    ],
}
SOURCES = [
    "Rudaw",
    "Shafaq News",
    "Kurdistan 24",
    "Xinhua",
    "SOHR",
    "Enab Baladi",
    "Iraqi News",
    "North Press Agency",
    "Twitter",
]
SCALES = ["National", "Subnational", "International", "Other", "New media"]

HEADER = [
    "event_id_cnty",
    "event_date",
    "year",
    "time_precision",
    "disorder_type",
    "event_type",
    "sub_event_type",
    "actor1",
    "assoc_actor_1",
    "inter1",
    "actor2",
    "assoc_actor_2",
    "inter2",
    "interaction",
    "civilian_targeting",
    "iso",
    "region",
    "country",
    "admin1",
    "admin2",
    "admin3",
    "location",
    "latitude",
    "longitude",
    "geo_precision",
    "source",
    "source_scale",
    "notes",
    "fatalities",
    "tags",
    "timestamp",
]


def generate(rows: int, out: Path, seed: int = 20240101) -> None:
    rng = random.Random(seed)
    spots = [h for h in HOTSPOTS]
    spot_weights = [h[6] for h in HOTSPOTS]
    event_weights = [e[3] for e in EVENTS]
    start = dt.date(2018, 1, 1)
    days = (dt.date(2024, 12, 31) - start).days
    out.parent.mkdir(parents=True, exist_ok=True)
    spot_picks = rng.choices(spots, spot_weights, k=rows)
    event_picks = rng.choices(EVENTS, event_weights, k=rows)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for n in range(rows):
            location, admin1, admin2, lat0, lon0, spread, _, country, iso = spot_picks[n]
            disorder, event_type, sub_event_type, _ = event_picks[n]
            distance = abs(rng.gauss(0, spread))
            bearing = rng.uniform(0, 2 * math.pi)
            lat = lat0 + distance / 111.0 * math.cos(bearing)
            lon = lon0 + distance / (111.0 * math.cos(math.radians(lat0))) * math.sin(bearing)
            # Later years are denser (more sources, more coverage).
            day = int(days * math.sqrt(rng.random()))
            date = start + dt.timedelta(days=day)
            actors = ACTORS[country]
            actor1 = rng.choice(actors)
            actor2 = rng.choice(actors) if event_type != "Protests" else ""
            civilians = event_type == "Violence against civilians"
            if civilians:
                actor2 = f"Civilians ({country})"
            fatalities = 0
            if disorder == "Political violence":
                fatalities = min(int(rng.expovariate(0.6)), 150)
            prefix = "IRQ" if country == "Iraq" else "SYR"
            writer.writerow(
                [
                    f"{prefix}{n + 1}",
                    date.isoformat(),
                    date.year,
                    rng.choice((1, 1, 1, 2, 3)),
                    disorder,
                    event_type,
                    sub_event_type,
                    actor1,
                    "",
                    1,
                    actor2,
                    "",
                    7,
                    17,
                    "Civilian targeting" if civilians else "",
                    iso,
                    "Middle East",
                    country,
                    admin1,
                    admin2,
                    "",
                    location,
                    f"{lat:.4f}",
                    f"{lon:.4f}",
                    rng.choice((1, 1, 2, 3)),
                    rng.choice(SOURCES),
                    rng.choice(SCALES),
                    f"On {date:%d %B %Y}, {actor1} {sub_event_type.lower()} near {location} "
                    f"({admin1}). {fatalities} reported fatalities.",
                    fatalities,
                    "",
                    1700000000 + n,
                ]
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/data/acled_1m.csv"))
    parser.add_argument("--seed", type=int, default=20240101)
    args = parser.parse_args()
    generate(args.rows, args.out, args.seed)
    print(f"wrote {args.rows} rows to {args.out}")


if __name__ == "__main__":
    main()
