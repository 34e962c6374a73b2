"""ACLED's event columns, as SQL over `incidents i`, from the field registry.

Every ACLED column that is one of our fields (the registry's `acled` name) is read from that
field; the rest are derived: `event_id_cnty` falls back to our id, `iso` and `region` come from
the country, `inter1`/`inter2` from the stored codes or the actors' names, `interaction` from
both. Values follow ACLED's conventions: every value a string, missing text `""`.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.incidents.fields import FIELDS, INTER_LABELS, IncidentField, Kind

# ACLED's event columns, in ACLED's order.
ORDER = (
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
)

INTER1 = "coalesce(i.inter1, acled_inter(i.actor1))"
INTER2 = "coalesce(i.inter2, CASE WHEN i.actor2 IS NULL THEN 0 ELSE acled_inter(i.actor2) END)"
INTERACTION = (
    f"CASE WHEN {INTER2} = 0 THEN 10 * {INTER1} "
    f"ELSE 10 * least({INTER1}, {INTER2}) + greatest({INTER1}, {INTER2}) END"
)
_LABELS = "ARRAY[" + ", ".join(f"'{INTER_LABELS[c]}'" for c in range(1, 9)) + "]"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind  # how a filter value is read
    value: str  # SQL for a filter's comparisons (typed)
    text: str  # SQL for the row (ACLED's string)


def _from_field(field: IncidentField) -> Column:
    name, sql = field.acled or field.name, field.sql
    if field.kind is Kind.date:
        return Column(name, field.kind, sql, f"to_char({sql}, 'YYYY-MM-DD')")
    if field.kind is Kind.number:
        return Column(name, field.kind, sql, f"round(({sql})::numeric, 4)::text")
    if field.kind is Kind.text:
        return Column(name, field.kind, f"coalesce({sql}, '')", f"coalesce({sql}, '')")
    if field.kind in (Kind.tags, Kind.boolean):  # ACLED's text forms
        return Column(
            name, Kind.text, f"coalesce({field.csv_sql}, '')", f"coalesce({field.csv_sql}, '')"
        )
    return Column(name, field.kind, sql, f"coalesce(({sql})::text, '')")


def _columns() -> dict[str, Column]:
    by_acled = {f.acled: f for f in FIELDS if f.acled}
    country = "(SELECT c.{} FROM countries c WHERE c.iso_a3 = i.country_code)"
    region = (
        "(SELECT r.name FROM countries c JOIN acled_regions r ON r.code = c.acled_region "
        "WHERE c.iso_a3 = i.country_code)"
    )
    derived = {
        "event_id_cnty": Column(
            "event_id_cnty",
            Kind.text,
            "coalesce(i.external_id, i.id::text)",
            "coalesce(i.external_id, i.id::text)",
        ),
        "inter1": Column("inter1", Kind.integer, INTER1, f"coalesce(({INTER1})::text, '')"),
        "inter2": Column("inter2", Kind.integer, INTER2, f"coalesce(({INTER2})::text, '')"),
        "interaction": Column(
            "interaction", Kind.integer, INTERACTION, f"coalesce(({INTERACTION})::text, '')"
        ),
        "iso": Column(
            "iso",
            Kind.integer,
            country.format("iso_n3"),
            f"coalesce({country.format('iso_n3')}::text, '')",
        ),
        "region": Column("region", Kind.text, f"coalesce({region}, '')", f"coalesce({region}, '')"),
    }
    out = {}
    for name in ORDER:
        out[name] = derived[name] if name in derived else _from_field(by_acled[name])
    return out


COLUMNS: dict[str, Column] = _columns()


def labelled(name: str) -> str:
    """The row SQL of an actor-type column as ACLED's labels (`inter_num=0`)."""
    if name == "interaction":
        return (
            f"coalesce(({_LABELS})[{INTER1}] || CASE WHEN {INTER2} > 0 "
            f"THEN '-' || ({_LABELS})[{INTER2}] ELSE '' END, '')"
        )
    code = INTER1 if name == "inter1" else INTER2
    return f"coalesce(({_LABELS})[{code}], '')"


def _text(name: str, labels: bool) -> str:
    if labels and name in ("inter1", "inter2", "interaction"):
        return labelled(name)
    return COLUMNS[name].text


def row_json(names: list[str], labels: bool = False) -> str:
    """The row as one JSON object of strings (alias `i`)."""
    pairs = ", ".join(f"'{name}', {_text(name, labels)}" for name in names)
    return f"json_build_object({pairs})"


def row_columns(names: list[str], labels: bool = False) -> str:
    """The row as text columns c0, c1, ... (for CSV)."""
    return ", ".join(f"{_text(name, labels)} AS c{k}" for k, name in enumerate(names))
