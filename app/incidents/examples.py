"""Example incidents loaded by the run command, idempotently (keyed on external_id).

Each is a reported event with its public source. Village coordinates are approximate
(`geo_precision` 2 = near the named place, 3 = the surrounding region); dates follow the
reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.db import Database
from app.core.errors import Conflict
from app.incidents.schemas import IncidentIn
from app.incidents.service import create_incident

# The examples themselves are data: app/data/examples.json.
EXAMPLES_FILE = Path(__file__).resolve().parents[1] / "data" / "examples.json"


def examples() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
    return data


async def load_examples(settings: Settings) -> int:
    """Insert the examples that are not there yet; returns how many were inserted."""
    db = Database(settings)
    inserted = 0
    try:
        for example in examples():
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
