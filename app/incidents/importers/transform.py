"""Raw rows validated and mapped in SQL, by rules derived from the field registry.

A bulk load COPYs the file into a table of raw cells (`app.incidents.importers.raw`) and turns
them into staging rows with one INSERT…SELECT built here: each writable field's value, and
whether SQL can vouch that the Python path (the mappings, then `IncidentIn`) would produce
exactly that value. A row SQL vouches for is staged as is; every other row, valid or not, is
handed to the Python path, which stages it or reports its errors in the API's words. So SQL
never has to reproduce an error message, only to recognise the common, unambiguous shapes of
each kind of value; anything unusual (a date format other than ISO, a label where a number
goes, non-ASCII where case matters, a field with a validator SQL does not know) goes to Python.
`tests/ingest/test_sql_transform.py` checks the two paths agree on every value SQL accepts.

The field constraints (lengths, ranges, allowed values) are read from the pydantic annotations
of the registry, not repeated here.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from pydantic.functional_validators import (
    AfterValidator,
    BeforeValidator,
    PlainValidator,
    WrapValidator,
)

from app.incidents import fields as registry
from app.incidents.fields import INTER_LABELS, IncidentField, Kind
from app.taxonomy.data import DISORDER_TYPES, EVENT_TYPES

# What Python's str.strip() removes, as a PostgreSQL string: the mapping and pydantic strip
# text, and SQL must strip exactly the same characters.
WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
WS = "E'" + "".join(f"\\u{ord(c):04X}" for c in WHITESPACE) + "'"

# Printable ASCII: where SQL compares lower-cased text with Python's, it only vouches for
# ASCII (Python and PostgreSQL lower-case some non-ASCII letters differently).
ASCII = "'^[ -~]*$'"


def literal(value: str) -> str:
    """A constant of the code (taxonomy names, labels) as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _lookup(expression: str, table: dict[str, str]) -> str:
    """`table[expression]` in SQL (NULL when absent)."""
    whens = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in table.items())
    return f"(CASE {expression} {whens} END)"


EVENT_BY_LOWER = {name.lower(): name for name in EVENT_TYPES}
DISORDER_BY_LOWER = {name.lower(): name for name in DISORDER_TYPES}
DEFAULT_DISORDER = {name: disorder for name, (disorder, _) in EVENT_TYPES.items()}
# "<event type>|<sub-event type, lower-cased>" -> the sub-event type, for allowed pairs only.
SUB_OF_EVENT = {
    f"{event}|{sub.lower()}": sub for event, (_, subs) in EVENT_TYPES.items() for sub in subs
}
INTER_BY_LABEL = {label.lower(): str(code) for code, label in INTER_LABELS.items() if label}


V = "@v"  # in `Typed.ok`: the field's value, computed once (a column of the query below)


@dataclass(frozen=True)
class Typed:
    """One field of a staged row: its SQL value (over the raw cells), and when SQL vouches for
    it (over the cells and `V`, the value)."""

    value: str
    ok: str


@dataclass(frozen=True)
class Cell:
    """Where a field's raw value is (column names of the first query level). CSV: `text` is
    the stripped cell, NULL when blank or absent. JSON: `json` is the member (NULL when
    absent), `text` the stripped string when it is one, `raw` the string unstripped."""

    text: str
    json: str | None = None

    @property
    def is_json(self) -> bool:
        return self.json is not None

    def typeof(self) -> str:
        return f"coalesce(jsonb_typeof({self.json}), 'absent')"

    @property
    def raw(self) -> str:
        return f"({self.json} #>> '{{}}')"


def _has_validators(annotation: Any) -> bool:
    if typing.get_origin(annotation) is not typing.Annotated:
        return False
    validators = (AfterValidator, BeforeValidator, PlainValidator, WrapValidator)
    return any(isinstance(m, validators) for m in typing.get_args(annotation)[1:])


def _schema(annotation: Any) -> dict[str, Any]:
    return TypeAdapter(annotation).json_schema()


def _int_sql(x: str) -> str:
    """A cell of the shapes `_int_or_raw` turns into an int, as that int: digits, or digits with
    a short fraction (truncated, as int(float(...)) does: at most 15 significant digits, so
    the float cannot round across an integer)."""
    return (
        f"(CASE WHEN {_digits(x)} AND length({x}) <= 9 THEN {x}::int "
        f"WHEN {x} ~ '^[+-]?[0-9]{{1,9}}\\.[0-9]{{0,6}}$' THEN trunc({x}::numeric)::int "
        f"WHEN {x} ~ '^[+-][0-9]{{1,9}}$' THEN {x}::int END)"
    )


def _digits(x: str) -> str:
    """`x` is ASCII digits only (cheaper than a regular expression)."""
    return f"(translate({x}, '0123456789', '') = '' AND {x} <> '')"


def _int_checks(schema: dict[str, Any], value: str = V) -> str:
    if "enum" in schema:
        return f"{value} IN ({', '.join(str(int(v)) for v in schema['enum'])})"
    low, high = schema.get("minimum"), schema.get("maximum")
    parts = [f"{value} IS NOT NULL"]
    if low is not None:
        parts.append(f"{value} >= {int(low)}")
    if high is not None:
        parts.append(f"{value} <= {int(high)}")
    return " AND ".join(parts)


def _default(field: IncidentField, sql_type: str) -> str:
    if field.default is None:
        return "NULL"
    if isinstance(field.default, bool):
        return "true" if field.default else "false"
    if isinstance(field.default, int):
        return str(field.default)
    if field.default == []:
        return "'[]'" if field.kind is Kind.sources else f"'{{}}'::{sql_type}"
    raise ValueError(f"no SQL default for {field.name}")


def _missing(cell: Cell) -> str:
    """The value is absent (JSON) or blank (CSV): the field takes its default."""
    return f"{cell.typeof()} = 'absent'" if cell.is_json else f"{cell.text} IS NULL"


def _nullable(field: IncidentField) -> bool:
    return field.write == "optional" and field.default is None


def _sql_bool(value: bool) -> str:
    return "true" if value else "false"


def _text(field: IncidentField, cell: Cell) -> Typed:
    schema = _schema(field.annotation)
    if set(schema) - {"type", "maxLength", "minLength"} or _has_validators(field.annotation):
        return _opaque(field, cell)
    low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 10**9))
    if not cell.is_json:
        # The mapping made blank None; only a present value is checked.
        size = f"char_length({cell.text}) BETWEEN {low} AND {high}"
        ok = f"({cell.text} IS NULL OR {size})"
        if field.write == "required":
            ok = f"({cell.text} IS NOT NULL AND {size})"
        return Typed(cell.text, ok)
    # JSON: a string, stripped by pydantic, then checked; an empty optional text is null.
    size = f"coalesce(char_length({cell.text}), 0) BETWEEN {low} AND {high}"
    allowed = "('string', 'null', 'absent')" if _nullable(field) else "('string')"
    return Typed(f"nullif({cell.text}, '')", f"({cell.typeof()} IN {allowed} AND {size})")


def _opaque(field: IncidentField, cell: Cell) -> Typed:
    """A field SQL has no rule for: only its absence (the default) is vouched for."""
    return Typed(_default(field, field.sql_type), _missing(cell))


def _event_type(field: IncidentField, cell: Cell) -> Typed:
    value = _lookup(f"lower({cell.text})", EVENT_BY_LOWER)
    ascii_ok = f"{cell.text} ~ {ASCII}"
    if cell.is_json:
        return Typed(value, f"({cell.typeof()} = 'string' AND {ascii_ok} AND {V} IS NOT NULL)")
    return Typed(value, f"({ascii_ok} AND {V} IS NOT NULL)")


def _disorder_type(field: IncidentField, cell: Cell) -> Typed:
    # Left out, it is the event type's (a rule of the model, applied in `rules`).
    value = _lookup(f"lower({cell.text})", DISORDER_BY_LOWER)
    given = f"({cell.text} ~ {ASCII} AND {V} IS NOT NULL)"
    if cell.is_json:
        return Typed(
            value,
            f"({cell.typeof()} IN ('null', 'absent') OR {cell.typeof()} = 'string' AND {given})",
        )
    return Typed(value, f"({cell.text} IS NULL OR {given})")


def _sub_event_type(field: IncidentField, cell: Cell) -> Typed:
    # The raw text; checked against the event type (and made canonical) in `rules`.
    if cell.is_json:
        return Typed(
            f"nullif({cell.text}, '')",
            f"({cell.typeof()} IN ('null', 'absent') OR {cell.typeof()} = 'string' "
            f"AND {cell.text} ~ {ASCII})",
        )
    return Typed(cell.text, f"({cell.text} IS NULL OR {cell.text} ~ {ASCII})")


def _country_code(field: IncidentField, cell: Cell) -> Typed:
    x = cell.text
    if cell.is_json:
        return Typed(
            f"upper({x})",
            f"({cell.typeof()} IN ('null', 'absent') OR {cell.typeof()} = 'string' "
            f"AND {x} ~ '^[A-Za-z]{{2,3}}$')",
        )
    # The ACLED mapping keeps only an alphabetic 3-letter code (ACLED's `iso` is numeric);
    # for ASCII text, "alphabetic" is [A-Za-z].
    return Typed(
        f"(CASE WHEN {x} ~ '^[A-Za-z]{{3}}$' THEN upper({x}) END)",
        f"({x} IS NULL OR {x} ~ '^[\\x01-\\x7f]*$')",
    )


def _integer(field: IncidentField, cell: Cell) -> Typed:
    schema = _schema(field.annotation)
    inter = field.annotation is registry.InterCode
    if not inter and (
        set(schema) - {"type", "minimum", "maximum", "enum"} or _has_validators(field.annotation)
    ):
        return _opaque(field, cell)
    default = _default(field, field.sql_type)
    if cell.is_json:
        raw = cell.raw
        number = (
            f"(CASE WHEN {cell.typeof()} = 'number' AND {raw} ~ '^-?[0-9]{{1,9}}$' "
            f"THEN {raw}::int END)"
        )
        value = f"(CASE WHEN {_missing(cell)} THEN {default} ELSE {number} END)"
        null_ok = f"{cell.typeof()} = 'null' AND {_sql_bool(_nullable(field))}"
        return Typed(value, f"({_missing(cell)} OR {null_ok} OR {_int_checks(schema)})")
    number = _int_sql(cell.text)
    if inter:
        label = _lookup(f"lower({cell.text})", INTER_BY_LABEL)
        number = f"coalesce({number}, (CASE WHEN {cell.text} ~ {ASCII} THEN {label}::int END))"
    value = f"(CASE WHEN {cell.text} IS NULL THEN {default} ELSE {number} END)"
    return Typed(value, f"({cell.text} IS NULL OR {_int_checks(schema)})")


def _decimal(x: str) -> str:
    """`x` is `[-]digits[.digits]`: what float() and float8 read alike (both round correctly),
    checked without a regular expression."""
    rest = f"translate({x}, '0123456789', '')"
    return (
        f"({rest} = '' AND {x} <> '' "
        f"OR {rest} = '.' AND left({x}, 1) <> '.' AND right({x}, 1) <> '.' "
        f"OR {rest} IN ('-', '-.') AND left({x}, 1) = '-' AND strpos(substr({x}, 2), '-') = 0 "
        f"AND substr({x}, 2, 1) NOT IN ('', '.') AND right({x}, 1) <> '.')"
    )


def _number(field: IncidentField, cell: Cell) -> Typed:
    schema = _schema(field.annotation)
    if set(schema) - {"type", "minimum", "maximum"} or _has_validators(field.annotation):
        return _opaque(field, cell)
    if cell.is_json:
        number = f"(CASE WHEN {cell.typeof()} = 'number' THEN {cell.raw}::float8 END)"
    else:
        number = f"(CASE WHEN {_decimal(cell.text)} THEN {cell.text}::float8 END)"
    checks = [f"{V} IS NOT NULL"]
    if "minimum" in schema:
        checks.append(f"{V} >= {float(schema['minimum'])!r}")
    if "maximum" in schema:
        checks.append(f"{V} <= {float(schema['maximum'])!r}")
    ok = "(" + " AND ".join(checks) + ")"
    if field.column and _nullable(field):
        # An optional number of its own (uncertainty_km): absent or null is no value.
        absent = _missing(cell)
        if cell.is_json:
            absent = f"({absent} OR {cell.typeof()} = 'null')"
        return Typed(f"(CASE WHEN {absent} THEN NULL ELSE {number} END)", f"({absent} OR {ok})")
    # Without a point the row is placed through the gazetteer (or refused): the Python path.
    return Typed(number, ok)


def _boolean(field: IncidentField, cell: Cell) -> Typed:
    if field.annotation is not bool:
        return _opaque(field, cell)
    default = _default(field, "boolean")
    if cell.is_json:
        return Typed(
            f"(CASE WHEN {cell.typeof()} = 'boolean' THEN ({cell.json})::boolean "
            f"ELSE {default} END)",
            f"({_missing(cell)} OR {cell.typeof()} = 'boolean')",
        )
    x = cell.text
    return Typed(
        f"(CASE WHEN {x} IS NULL THEN {default} ELSE lower({x}) NOT IN ('0', 'false', 'no') END)",
        f"({x} IS NULL OR {x} ~ {ASCII})",
    )


def _date_sql(x: str) -> str:
    """`x` as a date when it is exactly `YYYY-MM-DD`, a real day between EARLIEST and LATEST
    (what pydantic accepts of the text `parse_date` passes on), else NULL. Nested CASEs:
    nothing is cast before its shape is checked; days 29-31 get the calendar's check."""
    first, last = registry.EARLIEST.isoformat(), registry.LATEST.isoformat()
    shape = (
        f"length({x}) = 10 AND translate({x}, '0123456789', '') = '--' "
        f"AND substr({x}, 5, 1) = '-' AND substr({x}, 8, 1) = '-'"
    )
    month, day = f'substr({x}, 6, 2) COLLATE "C"', f'substr({x}, 9, 2) COLLATE "C"'
    y = f"substr({x}, 1, 4)::int"
    leap = f"({y} % 4 = 0 AND ({y} % 100 <> 0 OR {y} % 400 = 0))"
    days = (
        f"(CASE WHEN {month} = '02' THEN (CASE WHEN {leap} THEN 29 ELSE 28 END) "
        f"WHEN {month} IN ('04', '06', '09', '11') THEN 30 ELSE 31 END)"
    )
    real = (
        f"{month} BETWEEN '01' AND '12' AND {day} BETWEEN '01' AND '31' "
        f"AND ({day} <= '28' OR substr({x}, 9, 2)::int <= {days})"
    )
    return (
        f"(CASE WHEN {shape} THEN (CASE WHEN {x} COLLATE \"C\" BETWEEN '{first}' AND '{last}' "
        f"AND {real} THEN {x}::date END) END)"
    )


def _date(field: IncidentField, cell: Cell) -> Typed:
    nullable = _nullable(field)
    if cell.is_json:
        value = f"(CASE WHEN {cell.typeof()} = 'string' THEN {_date_sql(cell.raw)} END)"
        absent = f"{cell.typeof()} IN ('null', 'absent') OR " if nullable else ""
        return Typed(value, f"({absent}{V} IS NOT NULL)")
    # The mapping's ISO branch: 10+ characters with '-' at 5 and 8, the first 10 parsed.
    x = cell.text
    value = _date_sql(f"substr({x}, 1, 10)")
    ok = f"({x} IS NULL OR {V} IS NOT NULL)" if nullable else f"{V} IS NOT NULL"
    return Typed(value, ok)


def _tags(field: IncidentField, cell: Cell) -> Typed:
    if field.annotation is not registry.TagList:
        return _opaque(field, cell)
    item = _schema(field.annotation)
    most, longest = int(item["maxItems"]), int(item["items"]["maxLength"])
    if cell.is_json:
        source = (
            f"(SELECT e, btrim(e #>> '{{}}', {WS}) AS t, n FROM "
            f"jsonb_array_elements({cell.json}) WITH ORDINALITY AS a(e, n))"
        )
        checks = (
            f"(SELECT count(*) <= {most} AND coalesce(bool_and(jsonb_typeof(e) = 'string' "
            f"AND char_length(t) BETWEEN 1 AND {longest}), true) FROM {source} q)"
        )
        ok = f"({_missing(cell)} OR {cell.typeof()} = 'array' AND {checks})"
        guard = f"{cell.typeof()} = 'array'"
    else:
        # `a; b;; c` -> [a, b, c]: split on ';', stripped, blanks dropped.
        source = (
            f"(SELECT btrim(e, {WS}) AS t, n FROM "
            f"unnest(string_to_array({cell.text}, ';')) WITH ORDINALITY AS a(e, n))"
        )
        checks = (
            f"(SELECT count(*) <= {most} AND coalesce(bool_and(char_length(t) <= {longest}), "
            f"true) FROM {source} q WHERE t <> '')"
        )
        ok = f"({cell.text} IS NULL OR {checks})"
        guard = f"{cell.text} IS NOT NULL"
    # Duplicates dropped, first occurrence kept (the model's _dedupe).
    deduped = (
        f"(SELECT coalesce(array_agg(t ORDER BY n), '{{}}') FROM (SELECT t, min(n) AS n "
        f"FROM {source} q WHERE t <> '' GROUP BY t) d)"
    )
    return Typed(f"(CASE WHEN {guard} THEN {deduped} ELSE '{{}}'::text[] END)", ok)


RULES: dict[Kind, Callable[[IncidentField, Cell], Typed]] = {
    Kind.text: _text,
    Kind.integer: _integer,
    Kind.number: _number,
    Kind.boolean: _boolean,
    Kind.date: _date,
    Kind.tags: _tags,
}
SPECIAL: dict[str, Callable[[IncidentField, Cell], Typed]] = {
    "event_type": _event_type,
    "disorder_type": _disorder_type,
    "sub_event_type": _sub_event_type,
    "country_code": _country_code,
}


def typed(field: IncidentField, cell: Cell) -> Typed:
    if field.name in SPECIAL and field.annotation is getattr(registry, _ANNOTATIONS[field.name]):
        return SPECIAL[field.name](field, cell)
    rule = RULES.get(field.kind)
    if rule is None or (field.kind is Kind.text and field.name in SPECIAL):
        return _opaque(field, cell)
    return rule(field, cell)


_ANNOTATIONS = {
    "event_type": "EventType",
    "disorder_type": "DisorderType",
    "sub_event_type": "SubEventType",
    "country_code": "CountryCode",
}


def rules(v: Callable[[str], str]) -> tuple[dict[str, str], str]:
    """The model's rules between fields (IncidentRules._consistent), over the typed values
    `v(name)`: the values they change, and the condition that none of them is broken."""
    sub = _lookup(f"{v('event_type')} || '|' || lower({v('sub_event_type')})", SUB_OF_EVENT)
    changed = {
        "sub_event_type": sub,
        "disorder_type": f"coalesce({v('disorder_type')}, "
        + _lookup(v("event_type"), DEFAULT_DISORDER)
        + ")",
    }
    ok = (
        f"({v('sub_event_type')} IS NULL OR {sub} IS NOT NULL)"
        f" AND ({v('event_date_end')} IS NULL OR {v('event_date_end')} >= {v('event_date')})"
        f" AND ({v('fatalities_low')} IS NULL OR {v('fatalities_low')} <= {v('fatalities')})"
        f" AND ({v('fatalities_high')} IS NULL OR {v('fatalities_high')} >= {v('fatalities')})"
    )
    return changed, ok
