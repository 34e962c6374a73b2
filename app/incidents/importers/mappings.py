"""How source files map onto incident fields. Every mapping lives here (and in the README).

ACLED: same field names and meanings as ours, so the mapping is mostly identity. Both the
current layout (`event_id_cnty`, `disorder_type`, `civilian_targeting`, `tags`, `iso`) and the
pre-2023 one (`data_id`, `event_id_no_cnty`, `iso3`, dates like `29-Feb-20`, numeric `inter1`)
are read, by the field registry's ACLED names. `inter1`/`inter2` (actor types, as codes or as
ACLED's labels) are stored; `interaction` is derived from them and not.

UCDP GED: one row per event; `type_of_violence` is mapped onto ACLED's taxonomy as in
UCDP_VIOLENCE below.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from app.incidents.fields import WRITABLE, IncidentField, Kind
from app.incidents.uncertainty import where_prec_km

ACLED_CURRENT_MARKERS = {"event_id_cnty", "event_type", "latitude", "longitude"}
ACLED_OLD_MARKERS = {"data_id", "event_id_no_cnty"}
UCDP_MARKERS = {"side_a", "side_b", "type_of_violence", "best", "date_start"}

# UCDP type_of_violence -> (event_type, sub_event_type, civilian_targeting)
UCDP_VIOLENCE: dict[str, tuple[str, str, bool]] = {
    # 1 state-based conflict: a government against another government or an organised group.
    "1": ("Battles", "Armed clash", False),
    # 2 non-state conflict: organised groups fighting each other, no government involved.
    "2": ("Battles", "Armed clash", False),
    # 3 one-sided violence: a government or organised group killing civilians.
    "3": ("Violence against civilians", "Attack", True),
}

# UCDP where_prec (1 exact ... 7 international waters) -> geo_precision (1 exact, 2 near,
# 3 region); the uncertainty in km comes from UNCERTAINTY_KM_BY_WHERE_PREC (a setting).
UCDP_WHERE_PREC = {"1": 1, "2": 2, "3": 3, "4": 3, "5": 3, "6": 3, "7": 3}
# UCDP date_prec (1 day, 2 2-6 days, 3 week, 4 month, 5 year) -> time_precision.
UCDP_DATE_PREC = {"1": 1, "2": 2, "3": 2, "4": 3, "5": 3}

_MONTHS = {
    m: n
    for n, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_DMY_ABBR = re.compile(r"^(\d{1,2})[-/ ]([A-Za-z]{3})[A-Za-z]*[-/ ](\d{2}|\d{4})$")
_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def parse_date(value: str) -> str:
    """ISO `YYYY-MM-DD` for the date formats ACLED and UCDP files use:
    2020-06-13, 2020-06-13 00:00:00.000, 13-Jun-20, 13 June 2020, 13/06/2020.
    Returns the input unchanged when it is none of them (validation then names the field)."""
    text = value.strip()
    if len(text) >= 10 and text[4] == "-" and text[7] == "-":
        return text[:10]
    match = _DMY_ABBR.match(text)
    if match:
        day, month, year = match.groups()
        month_no = _MONTHS.get(month.lower()[:3])
        if month_no is None:
            return text
        year_no = int(year)
        if len(year) == 2:
            year_no += 2000 if year_no < 70 else 1900
        return f"{year_no:04d}-{month_no:02d}-{int(day):02d}"
    match = _DMY.match(text)
    if match:
        day, month, year = match.groups()
        return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"
    return text


def _blank(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _int_or_raw(value: Any) -> Any:
    value = _blank(value)
    if isinstance(value, str):
        try:
            return int(float(value)) if "." in value else int(value)
        except ValueError:
            return value
    return value


def detect_csv_layout(header: list[str]) -> str | None:
    names = {h.strip().lower() for h in header}
    if UCDP_MARKERS <= names:
        return "ucdp"
    if ACLED_CURRENT_MARKERS <= names or (
        {"event_type", "latitude", "longitude"} <= names and ACLED_OLD_MARKERS & names
    ):
        return "acled"
    if {"event_date", "event_type"} <= names:
        return "incidents"  # our own CSV export
    return None


# ACLED's pre-2023 layout names some columns differently.
ACLED_FALLBACK = {"external_id": "data_id"}


def _text_cell(field: IncidentField, value: Any) -> Any:
    """A CSV cell as the field's input value (validation names the field if it is wrong)."""
    value = _blank(value)
    if value is None:
        return field.default
    if field.kind is Kind.date:
        return parse_date(value)
    if field.kind is Kind.integer:
        return _int_or_raw(value)
    if field.kind is Kind.boolean:
        return value.lower() not in ("0", "false", "no")
    if field.kind is Kind.tags:
        return [t.strip() for t in value.split(";") if t.strip()]
    if field.name == "country_code" and not (len(value) == 3 and value.isalpha()):
        return None  # ACLED's `iso` is numeric; only an alpha-3 `iso3` is a code
    return value


def from_acled(row: dict[str, str]) -> dict[str, Any]:
    """An ACLED CSV row (current or pre-2023 layout), or our own CSV export (ACLED's columns,
    then ours under their own names), as incident input: by the field registry."""
    out: dict[str, Any] = {}
    for field in WRITABLE:
        column = field.csv_name
        value = row.get(column)
        if _blank(value) is None and field.name in ACLED_FALLBACK:
            value = row.get(ACLED_FALLBACK[field.name])
        if value is None and column not in row:
            if field.acled or field.write == "required":
                out[field.name] = field.default
            continue
        out[field.name] = _text_cell(field, value)
    if out.get("event_date") is None:
        out["event_date"] = ""  # required: validation names it
    return out


from_incident_csv = from_acled


def from_ucdp(row: dict[str, str]) -> dict[str, Any]:
    """A UCDP GED CSV row as incident input (see UCDP_VIOLENCE for the taxonomy mapping)."""
    get = row.get
    violence = (_blank(get("type_of_violence")) or "").split(".")[0]
    event_type, sub_event_type, civilians = UCDP_VIOLENCE.get(violence, (None, None, False))
    start = parse_date(get("date_start") or "")
    end = parse_date(get("date_end") or "") if _blank(get("date_end")) else None
    best = _int_or_raw(get("best"))
    low = _int_or_raw(get("low"))
    high = _int_or_raw(get("high"))
    source = _blank(get("source_office")) or _blank(get("source_original")) or "UCDP GED"
    where_prec = (_blank(get("where_prec")) or "").split(".")[0]
    return {
        "external_id": _blank(get("id")),
        "event_date": start,
        "event_date_end": end if end and end != start else None,
        "time_precision": UCDP_DATE_PREC.get((_blank(get("date_prec")) or "1").split(".")[0], 1),
        "disorder_type": "Political violence",
        "event_type": event_type or f"UCDP type_of_violence {violence or '?'}",
        "sub_event_type": sub_event_type,
        "actor1": _blank(get("side_a")),
        "actor2": _blank(get("side_b")),
        "civilian_targeting": civilians,
        "fatalities": best if best is not None else 0,
        "fatalities_low": low
        if isinstance(low, int) and isinstance(best, int) and low <= best
        else None,
        "fatalities_high": high
        if isinstance(high, int) and isinstance(best, int) and high >= best
        else None,
        "country": _blank(get("country")),
        "admin1": _blank(get("adm_1")),
        "admin2": _blank(get("adm_2")),
        "location": _blank(get("where_coordinates")) or _blank(get("where_description")),
        "latitude": _blank(get("latitude")),
        "longitude": _blank(get("longitude")),
        "geo_precision": UCDP_WHERE_PREC.get(where_prec),
        "uncertainty_km": where_prec_km(int(where_prec)) if where_prec.isdigit() else None,
        "source": source[:2000],
        "source_scale": None,
        "notes": _blank(get("source_headline")) or _blank(get("source_article")),
        "tags": ["ucdp-ged"],
    }


def today() -> dt.date:
    return dt.date.today()
