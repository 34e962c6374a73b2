"""Example incidents loaded by the run command, idempotently (keyed on external_id).

Each is a reported event with its public source. Village coordinates are approximate
(`geo_precision` 2 = near the named place, 3 = the surrounding region); dates follow the
reports.
"""

from __future__ import annotations

from typing import Any

from app.core.config import Settings
from app.core.db import Database
from app.core.errors import Conflict
from app.incidents.schemas import IncidentIn
from app.incidents.service import create_incident

EXAMPLES: list[dict[str, Any]] = [
    {
        "external_id": "EX-IRQ-2020-DARA",
        "event_date": "2020-06-13",
        "event_date_end": "2020-06-14",
        "event_type": "Violence against civilians",
        "sub_event_type": "Attack",
        "actor1": "Islamic State (Iraq)",
        "actor2": "Civilians (Iraq)",
        "assoc_actor_2": "Kakai Ethnic Group (Iraq)",
        "civilian_targeting": True,
        "fatalities": 7,
        "country": "Iraq",
        "country_code": "IRQ",
        "admin1": "Diyala",
        "admin2": "Khanaqin",
        "location": "Dara",
        "latitude": 34.415,
        "longitude": 45.335,
        "geo_precision": 2,
        "source": "Rudaw; Kurdistan 24; KirkukNow",
        "source_scale": "National",
        "sources": [
            {"name": "Rudaw", "url": "https://www.rudaw.net/english"},
            {
                "name": "Kurdistan 24",
                "url": "https://www.kurdistan24.net/en/story/22600-Suspected-ISIS-attack-in-"
                "Iraq%27s-disputed-Khanaqin-village-leaves-7-dead",
            },
            {
                "name": "KirkukNow",
                "url": "https://www.kirkuknow.com/en/news/62501",
                "published": "2020-06-14",
            },
        ],
        "notes": "ISIS militants stormed the Kakai village of Dara in Khanaqin district late on "
        "13 June 2020, killing six Kakai Kurds and a member of the security forces who responded "
        "to the firefight; several others were wounded. The attack prompted Baghdad and Erbil to "
        "agree to resume joint military work in the disputed territories.",
        "tags": ["kakai", "disputed territories"],
    },
    {
        "external_id": "EX-IRQ-2020-MEKHAS",
        "event_date": "2020-05-10",
        "event_type": "Violence against civilians",
        "sub_event_type": "Attack",
        "actor1": "Islamic State (Iraq)",
        "actor2": "Civilians (Iraq)",
        "assoc_actor_2": "Kakai Ethnic Group (Iraq)",
        "civilian_targeting": True,
        "fatalities": 2,
        "country": "Iraq",
        "country_code": "IRQ",
        "admin1": "Diyala",
        "admin2": "Khanaqin",
        "location": "Mekhas",
        "latitude": 34.425,
        "longitude": 45.345,
        "geo_precision": 2,
        "source": "Kurdistan 24; KirkukNow",
        "source_scale": "National",
        "notes": "Two Kakai farmers harvesting crops near Mekhas village were abducted by "
        "suspected Islamic State fighters and later found killed.",
        "tags": ["kakai"],
    },
    {
        "external_id": "EX-IRQ-2020-DAKKA-MIKAEL",
        "event_date": "2020-08-27",
        "event_type": "Violence against civilians",
        "sub_event_type": "Attack",
        "actor1": "Islamic State (Iraq)",
        "actor2": "Civilians (Iraq)",
        "civilian_targeting": True,
        "fatalities": 4,
        "country": "Iraq",
        "country_code": "IRQ",
        "admin1": "Diyala",
        "admin2": "Khanaqin",
        "location": "Dakka Mikael",
        "latitude": 34.43,
        "longitude": 45.30,
        "geo_precision": 2,
        "source": "Shafaq News",
        "source_scale": "National",
        "sources": [
            {
                "name": "Shafaq News",
                "url": "https://www.shafaaq.com/en/Iraq-News/What-really-happened-in-Khanaqin",
                "published": "2020-08-27",
            }
        ],
        "notes": "The bodies of four civilians executed by ISIS were found on the outskirts of "
        "Dakka Mikael village, 13 km northwest of Khanaqin; two cars were burned.",
    },
    {
        "external_id": "EX-IRQ-2020-BAHARY-TAZA",
        "event_date": "2020-02-12",
        "event_type": "Violence against civilians",
        "sub_event_type": "Attack",
        "actor1": "Islamic State (Iraq)",
        "actor2": "Civilians (Iraq)",
        "assoc_actor_2": "Kakai Ethnic Group (Iraq)",
        "civilian_targeting": True,
        "fatalities": 2,
        "country": "Iraq",
        "country_code": "IRQ",
        "admin1": "Diyala",
        "admin2": "Khanaqin",
        "location": "Bahary Taza",
        "latitude": 34.37,
        "longitude": 45.41,
        "geo_precision": 2,
        "source": "Kurdistan 24",
        "source_scale": "National",
        "notes": "Islamic State militants attacked the Kakai village of Bahary Taza on the "
        "outskirts of Khanaqin at night, killing a father and son and injuring 10 civilians and "
        "security personnel; an IED was detonated as the wounded were evacuated.",
        "tags": ["kakai"],
    },
    {
        "external_id": "EX-IRQ-2018-QAYA",
        "event_date": "2018-09-17",
        "event_type": "Explosions/Remote violence",
        "sub_event_type": "Shelling/artillery/missile attack",
        "actor1": "Islamic State (Iraq)",
        "actor2": "Civilians (Iraq)",
        "civilian_targeting": True,
        "fatalities": 0,
        "country": "Iraq",
        "country_code": "IRQ",
        "admin1": "Diyala",
        "admin2": "Khanaqin",
        "location": "Qaya",
        "latitude": 34.30,
        "longitude": 45.36,
        "geo_precision": 3,
        "source": "NRT",
        "source_scale": "National",
        "sources": [{"name": "NRT", "url": "https://www.nrttv.com/EN/News.aspx?id=4240&MapID=1"}],
        "notes": "ISIS militants fired ten mortar shells at Qaya village in Khanaqin, wounding "
        "five civilians of whom four from one family; houses were damaged and a police vehicle "
        "set on fire.",
    },
    {
        "external_id": "EX-IRQ-2017-LIHEB",
        "event_date": "2017-07-27",
        "event_type": "Violence against civilians",
        "sub_event_type": "Attack",
        "actor1": "Islamic State (Iraq)",
        "actor2": "Civilians (Iraq)",
        "assoc_actor_2": "Kakai Ethnic Group (Iraq)",
        "civilian_targeting": True,
        "fatalities": 4,
        "country": "Iraq",
        "country_code": "IRQ",
        "admin1": "Kirkuk",
        "admin2": "Daquq",
        "location": "Liheb",
        "latitude": 35.05,
        "longitude": 44.45,
        "geo_precision": 2,
        "source": "Rudaw",
        "source_scale": "National",
        "sources": [
            {
                "name": "Rudaw",
                "url": "https://rudaw.net/english/kurdistan/27072017-amp",
                "published": "2017-07-27",
            }
        ],
        "notes": "ISIS militants wearing Peshmerga clothing stormed the village of Liheb near "
        "Daquq and killed four people at the house of a Kakai Kurd.",
        "tags": ["kakai"],
    },
    {
        "external_id": "EX-IRQ-2020-JOINT-COMMITTEES",
        "event_date": "2020-06-25",
        "time_precision": 2,
        "event_type": "Strategic developments",
        "sub_event_type": "Agreement",
        "actor1": "Military Forces of Iraq (2018-2022)",
        "actor2": "Military Forces of Iraq (2018-2022) Peshmerga",
        "fatalities": 0,
        "country": "Iraq",
        "country_code": "IRQ",
        "admin1": "Baghdad",
        "location": "Baghdad",
        "latitude": 33.3152,
        "longitude": 44.3661,
        "geo_precision": 1,
        "source": "Rudaw",
        "source_scale": "National",
        "notes": "Iraq's defence ministry and the KRG Ministry of Peshmerga Affairs agreed in "
        "Baghdad to reactivate joint coordination committees and resume intelligence exchange "
        "on ISIS in the disputed territories, two weeks after the Dara attack.",
        "tags": ["disputed territories"],
    },
]


async def load_examples(settings: Settings) -> int:
    """Insert the examples that are not there yet; returns how many were inserted."""
    db = Database(settings)
    inserted = 0
    try:
        for example in EXAMPLES:
            incident = IncidentIn.model_validate(example)
            try:
                async with db.write() as conn:
                    await create_incident(conn, incident=incident, changed_by="examples")
                inserted += 1
            except Conflict:
                continue
    finally:
        await db.close()
    return inserted
