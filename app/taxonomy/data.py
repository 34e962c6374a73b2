"""ACLED's event taxonomy (ACLED Codebook, 2023 and later): 6 event types, 25 sub-event types.

Source: Armed Conflict Location & Event Data Project (ACLED), "ACLED Codebook".
"""

from __future__ import annotations

DISORDER_TYPES: tuple[str, ...] = (
    "Political violence",
    "Demonstrations",
    "Strategic developments",
    "Political violence; Demonstrations",
)

# event_type -> (disorder_type it usually belongs to, sub-event types)
EVENT_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Battles": (
        "Political violence",
        ("Armed clash", "Government regains territory", "Non-state actor overtakes territory"),
    ),
    "Explosions/Remote violence": (
        "Political violence",
        (
            "Chemical weapon",
            "Air/drone strike",
            "Suicide bomb",
            "Shelling/artillery/missile attack",
            "Remote explosive/landmine/IED",
            "Grenade",
        ),
    ),
    "Violence against civilians": (
        "Political violence",
        ("Sexual violence", "Attack", "Abduction/forced disappearance"),
    ),
    "Protests": (
        "Demonstrations",
        ("Peaceful protest", "Protest with intervention", "Excessive force against protesters"),
    ),
    "Riots": ("Demonstrations", ("Violent demonstration", "Mob violence")),
    "Strategic developments": (
        "Strategic developments",
        (
            "Agreement",
            "Arrests",
            "Change to group/activity",
            "Disrupted weapons use",
            "Headquarters or base established",
            "Looting/property destruction",
            "Non-violent transfer of territory",
            "Other",
        ),
    ),
}

SUB_EVENT_TO_EVENT: dict[str, str] = {
    sub: event for event, (_, subs) in EVENT_TYPES.items() for sub in subs
}

_EVENT_BY_LOWER = {name.lower(): name for name in EVENT_TYPES}
_SUB_BY_LOWER = {name.lower(): name for name in SUB_EVENT_TO_EVENT}
_DISORDER_BY_LOWER = {name.lower(): name for name in DISORDER_TYPES}


def canonical_event_type(value: str) -> str | None:
    """The taxonomy's spelling of an event type, matched case-insensitively; None if unknown."""
    return _EVENT_BY_LOWER.get(value.strip().lower())


def canonical_sub_event_type(value: str) -> str | None:
    return _SUB_BY_LOWER.get(value.strip().lower())


def canonical_disorder_type(value: str) -> str | None:
    return _DISORDER_BY_LOWER.get(value.strip().lower())


def default_disorder_type(event_type: str) -> str:
    return EVENT_TYPES[event_type][0]


def taxonomy_document() -> dict[str, object]:
    return {
        "source": "ACLED Codebook",
        "disorder_types": list(DISORDER_TYPES),
        "event_types": [
            {"event_type": name, "disorder_type": disorder, "sub_event_types": list(subs)}
            for name, (disorder, subs) in EVENT_TYPES.items()
        ],
        "time_precision": {"1": "day", "2": "week", "3": "month"},
        "geo_precision": {"1": "exact location", "2": "near the location", "3": "region"},
    }
