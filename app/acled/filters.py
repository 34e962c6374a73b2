"""ACLED's query syntax, parsed into the shared search.

`field=value` for any event column; `a|b` for a or b; `<field>_where` for the operator (`=` by
default, `>=` for `timestamp`; `LIKE` is a case-insensitive substring, text `=` ignores case;
`BETWEEN` takes `low|high`); `field=v:OR:other=w` (or `field=v:OR:w`) for an OR across
fields; `year`; `timestamp` (changed since, Unix seconds or a date). Plain equality on the
columns our search filters natively (types, country, admin1/2, dates, years) goes into the
RawFilter, so it uses the same indexes (and rollups) as /v1; everything else becomes a SQL
condition with bound parameters. Our own `near`, `radius_km`, `bbox` and `within` work too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.acled.columns import COLUMNS, Column
from app.core.errors import BadRequest, field_error
from app.incidents.fields import Kind
from app.search.query import Params
from app.taxonomy.data import (
    canonical_disorder_type,
    canonical_event_type,
    canonical_sub_event_type,
)

OPERATORS = ("=", "LIKE", ">", "<", ">=", "<=", "BETWEEN")
EXTENSIONS = ("near", "radius_km", "bbox", "within", "match", "as_of")
# Parameters ACLED's clients send that change nothing here.
IGNORED = frozenset(
    (
        "key",
        "email",
        "terms",
        "export_type",
        "population",
        "_format",
        "format",
        "?export_type",
        "inter_num",
        "with_total",
        "limit",
        "page",
        "fields",
        "maritime_pairs",
    )
)
_CANONICAL: dict[str, Callable[[str], str | None]] = {
    "event_type": canonical_event_type,
    "sub_event_type": canonical_sub_event_type,
    "disorder_type": canonical_disorder_type,
}
Condition = Callable[[Params], str]


def bad(name: str, message: str, value: Any = None) -> BadRequest:
    return BadRequest(f"{name}: {message}", errors=[field_error(name, message, value)])


@dataclass
class Term:
    """One `column <op> value(s)`."""

    column: Column
    op: str
    values: list[str]


@dataclass
class AcledQuery:
    values: dict[str, Any] = field(default_factory=dict)  # search parameters (RawFilter)
    conditions: list[Condition] = field(default_factory=list)
    described: dict[str, Any] = field(default_factory=dict)
    countries_by: list[tuple[str, str]] = field(default_factory=list)  # (iso|region, value)


def parse_query(query: Mapping[str, str]) -> AcledQuery:
    out = AcledQuery()
    for name in query:
        if name.endswith("_where"):
            base = name.removesuffix("_where")
            if base not in COLUMNS and base != "deleted_timestamp":
                raise bad(name, f"no column '{base}'")
            if query[name].strip().upper() not in OPERATORS:
                raise bad(name, f"one of {', '.join(OPERATORS)}", query[name])
    for name in EXTENSIONS:
        if query.get(name):
            out.values[name] = query[name]
    for name in COLUMNS:
        text = query.get(name, "")
        if not text.strip():
            continue  # an empty filter (some clients send them) filters nothing
        default = ">=" if name == "timestamp" else "="
        op = query.get(f"{name}_where", default).strip().upper()
        group = _or_group(name, text, op, query)
        out.described[name] = text
        if len(group) == 1 and _native(out, group[0]):
            continue
        out.conditions.append(_disjunction(group))
    return out


def _or_group(name: str, text: str, op: str, query: Mapping[str, str]) -> list[Term]:
    """`a|b`, `a:OR:b` and `a:OR:other=w` as terms ORed together."""
    parts = text.split(":OR:")
    terms = [Term(COLUMNS[name], op, _values(name, parts[0], op))]
    for part in parts[1:]:
        other, sep, value = part.partition("=")
        if sep and other in COLUMNS:
            other_op = query.get(f"{other}_where", "=").strip().upper()
            terms.append(Term(COLUMNS[other], other_op, _values(other, value, other_op)))
        else:
            terms.append(Term(COLUMNS[name], op, _values(name, part, op)))
    return terms


def _values(name: str, text: str, op: str) -> list[str]:
    values = [v.strip() for v in text.split("|")]
    if op == "BETWEEN" and len(values) != 2:
        raise bad(name, "BETWEEN takes low|high", text[:100])
    return values


def _typed(column: Column, value: str) -> Any:
    name = column.name
    try:
        if name == "timestamp":
            if value.isdigit():
                return int(value)
            day = dt.date.fromisoformat(value[:10])
            return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())
        if column.kind is Kind.integer:
            return int(value)
        if column.kind is Kind.number:
            return float(value)
        if column.kind is Kind.date:
            return dt.date.fromisoformat(value[:10])
    except ValueError as exc:
        raise bad(name, f"not a valid {column.kind.value}", value[:100]) from exc
    return value


def _native(out: AcledQuery, term: Term) -> bool:
    """Put a plain term into the search filter when it has a native form; False if not."""
    name, op, values = term.column.name, term.op, term.values
    if name in _CANONICAL and op == "=":
        canonical = [_CANONICAL[name](v) for v in values]
        if all(canonical):
            out.values[name] = ",".join(c for c in canonical if c)
            return True
        return False
    if name in ("country", "admin1", "admin2") and op == "=":
        if any("," in v for v in values):
            return False
        out.values[name] = ",".join(values)
        return True
    if name in ("iso", "region") and op == "=":
        out.countries_by += [(name, v) for v in values]
        return True
    if name in ("event_date", "year") and len(values) <= 2:
        bounds = _date_bounds(term)
        if bounds is None:
            return False
        start, end = bounds
        if start is not None:
            out.values["start"] = max(start, out.values.get("start", start))
        if end is not None:
            out.values["end"] = min(end, out.values.get("end", end))
        return True
    return False


def _date_bounds(term: Term) -> tuple[dt.date | None, dt.date | None] | None:
    """A date or year term as inclusive days, when it is one range."""
    op, values = term.op, term.values
    year = term.column.name == "year"

    def first(text: str) -> dt.date:
        typed = _typed(term.column, text)
        return dt.date(typed, 1, 1) if year else typed

    def last(text: str) -> dt.date:
        typed = _typed(term.column, text)
        return dt.date(typed, 12, 31) if year else typed

    try:
        if op == "=" and len(values) == 1:
            return first(values[0]), last(values[0])
        if op == "BETWEEN":
            return first(values[0]), last(values[1])
        if len(values) != 1:
            return None
        if op == ">=":
            return first(values[0]), None
        if op == "<=":
            return None, last(values[0])
        if op == ">":
            return last(values[0]) + dt.timedelta(days=1), None
        if op == "<":
            return None, first(values[0]) - dt.timedelta(days=1)
    except (ValueError, OverflowError) as exc:
        raise bad(term.column.name, "out of range", values[0][:50]) from exc
    return None


def _disjunction(terms: list[Term]) -> Condition:
    for term in terms:  # values checked now: a bad one is a 400 before any query
        for value in term.values:
            _typed(term.column, value)

    def sql(p: Params) -> str:
        return "(" + " OR ".join(_term_sql(t, p) for t in terms) + ")"

    return sql


def _term_sql(term: Term, p: Params) -> str:
    column, op = term.column, term.op
    text = column.kind is Kind.text
    expr = f"lower({column.value})" if text else f"({column.value})"

    def value(v: str) -> str:
        return f"lower({p.add(v)})" if text else p.add(_typed(column, v))

    if column.name == "timestamp":
        expr = "i.updated_at"

        def value(v: str) -> str:
            return f"to_timestamp({p.add(_typed(column, v))})"

    if op == "BETWEEN":
        return f"({expr} BETWEEN {value(term.values[0])} AND {value(term.values[1])})"
    if op == "LIKE":
        likes = [f"{column.value} ILIKE '%' || {p.add(v)} || '%'" for v in term.values]
        return "(" + " OR ".join(likes) + ")"
    return "(" + " OR ".join(f"{expr} {op} {value(v)}" for v in term.values) + ")"
