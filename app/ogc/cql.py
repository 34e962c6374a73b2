"""CQL2 filters (OGC API - Features - Part 3) as SQL with bound parameters.

Parsing is the `cql2` library's (cql2-text and cql2-json, the standard's grammar); both come
out as the cql2-json tree, which `Translator` turns into one boolean SQL expression over the
incident columns of the field registry. Every value becomes a `$n` parameter; property names
are looked up in the registry's queryables (an unknown one is a 400 naming it), and each
literal is checked against its property's type.

Supported: comparisons (`=`, `<>`, `<`, `<=`, `>`, `>=`), `LIKE`, `BETWEEN`, `IN`, `IS NULL`,
`AND`/`OR`/`NOT`, `CASEI`, `ACCENTI`; `S_INTERSECTS`, `S_WITHIN`, `S_CONTAINS`, `S_DISJOINT`,
`S_EQUALS` with `POINT`/`POLYGON`/... and `BBOX`; `T_INTERSECTS`, `T_BEFORE`, `T_AFTER`,
`T_DURING`, `T_EQUALS` with dates, timestamps and intervals (`..` open).
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import cql2
import orjson

from app.core.errors import BadRequest, field_error
from app.incidents.fields import QUERYABLE, IncidentField, Kind
from app.search.query import Params

GEOMETRY = "geometry"
QUERYABLES: dict[str, IncidentField] = {f.name: f for f in QUERYABLE}
LANGUAGES = ("cql2-text", "cql2-json")

_COMPARISONS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_within": "ST_Within",
    "s_contains": "ST_Contains",
    "s_disjoint": "ST_Disjoint",
    "s_equals": "ST_Equals",
}
_TEMPORAL = ("t_intersects", "t_before", "t_after", "t_during", "t_equals")
_TEXT_KINDS = (Kind.text,)
_NUMBER_KINDS = (Kind.integer, Kind.number)
_TIME_KINDS = (Kind.date, Kind.datetime)
_SQL_TYPES = {
    Kind.text: "text",
    Kind.integer: "bigint",
    Kind.number: "float8",
    Kind.boolean: "boolean",
    Kind.date: "date",
    Kind.datetime: "timestamptz",
}


def problem(message: str, value: Any = None, parameter: str = "filter") -> BadRequest:
    return BadRequest(f"{parameter}: {message}", errors=[field_error(parameter, message, value)])


def parse(text: str, lang: str) -> dict[str, Any]:
    """The filter as a cql2-json tree; a syntax error is a 400 naming the filter and, for
    cql2-text, the line and column."""
    if lang not in LANGUAGES:
        known = ", ".join(LANGUAGES)
        raise problem(f"unsupported filter-lang; one of {known}", lang, "filter-lang")
    try:
        expr = cql2.parse_text(text) if lang == "cql2-text" else cql2.parse_json(text)
        tree: Any = expr.to_json()
    except (cql2.ParseError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:300] or "cannot be parsed"
        raise problem(f"syntax error: {detail}", text[:200]) from exc
    if not isinstance(tree, dict):
        raise problem("must be a boolean expression", text[:200])
    return tree


class Translator:
    """One cql2-json tree to SQL over `incidents i`, its values added to `params`."""

    def __init__(self, params: Params) -> None:
        self.p = params

    # ---- boolean expressions -------------------------------------------------------------

    def condition(self, node: Any) -> str:
        if isinstance(node, bool):
            return "true" if node else "false"
        if not isinstance(node, dict) or "op" not in node:
            raise problem("expected a condition", _show(node))
        op = str(node["op"]).lower()
        args = node.get("args") or []
        if op in ("and", "or"):
            if len(args) < 2:
                raise problem(f"{op.upper()} needs two or more conditions")
            return "(" + f" {op.upper()} ".join(self.condition(a) for a in args) + ")"
        if op == "not":
            return f"(NOT {self.condition(self._one(op, args))})"
        if op in _COMPARISONS:
            return self._compare(_COMPARISONS[op], *self._two(op, args))
        if op == "like":
            left, pattern = self._two(op, args)
            lhs, kind = self.operand(left)
            if kind not in _TEXT_KINDS:
                raise problem("LIKE needs a text property", _show(left))
            return f"({lhs} LIKE {self.operand(pattern, Kind.text)[0]})"
        if op == "between":
            if len(args) != 3:
                raise problem("BETWEEN needs a property and two values")
            lhs, kind = self.operand(args[0])
            low, high = self.operand(args[1], kind)[0], self.operand(args[2], kind)[0]
            return f"({lhs} BETWEEN {low} AND {high})"
        if op == "in":
            left, values = self._two(op, args)
            lhs, kind = self.operand(left)
            if not isinstance(values, list) or not values:
                raise problem("IN needs a list of values", _show(values))
            items = [self._literal(v, kind) for v in values]
            return f"({lhs} = ANY({self.p.add(items)}::{_SQL_TYPES[kind]}[]))"
        if op == "isnull":
            lhs, _ = self.operand(self._one(op, args))
            return f"({lhs} IS NULL)"
        if op in _SPATIAL:
            return self._spatial(_SPATIAL[op], *self._two(op, args))
        if op in _TEMPORAL:
            return self._temporal(op, *self._two(op, args))
        raise problem(f"unsupported operator '{node['op']}'", node["op"])

    # ---- operands ------------------------------------------------------------------------

    def operand(self, node: Any, expected: Kind | None = None) -> tuple[str, Kind]:
        """SQL for a property, a CASEI/ACCENTI of one, or a literal (of `expected` kind)."""
        if isinstance(node, dict) and "property" in node:
            field = self.queryable(node["property"])
            return field.sql, field.kind
        if isinstance(node, dict) and str(node.get("op", "")).lower() in ("casei", "accenti"):
            inner, kind = self.operand(self._one("casei", node.get("args") or []), Kind.text)
            if kind not in _TEXT_KINDS:
                raise problem(f"{node['op'].upper()} needs text", _show(node))
            if str(node["op"]).lower() == "casei":
                return f"lower({inner})", Kind.text
            return f"unaccent('public.unaccent'::regdictionary, {inner})", Kind.text
        kind = expected or _literal_kind(node)
        return self.p.add(self._literal(node, kind)), kind

    def queryable(self, name: Any) -> IncidentField:
        field = QUERYABLES.get(str(name))
        if field is None:
            raise problem(
                f"unknown property '{name}'; see /ogc/collections/incidents/queryables", name
            )
        return field

    def _compare(self, operator: str, left: Any, right: Any) -> str:
        if _is_property_side(right) and not _is_property_side(left):
            left, right = right, left
            operator = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(operator, operator)
        lhs, kind = self.operand(left)
        rhs, _ = self.operand(right, kind)
        return f"({lhs} {operator} {rhs})"

    def _literal(self, node: Any, kind: Kind) -> Any:
        """A literal as a value of `kind`, or a 400 saying the types do not match."""
        mismatch = problem(f"type mismatch: expected {kind.value}", _show(node))
        if isinstance(node, dict):
            if "date" in node or "timestamp" in node:
                if kind not in _TIME_KINDS:
                    raise mismatch
                return _instant(node, kind)
            raise mismatch
        if kind in _TEXT_KINDS:
            if not isinstance(node, str):
                raise mismatch
            return node
        if kind in _NUMBER_KINDS:
            if isinstance(node, bool) or not isinstance(node, int | float):
                raise mismatch
            if kind is Kind.integer:
                if float(node).is_integer():
                    return int(node)
                return decimal.Decimal(str(node))
            return float(node)
        if kind is Kind.boolean:
            if not isinstance(node, bool):
                raise mismatch
            return node
        if kind in _TIME_KINDS and isinstance(node, str):
            return _instant({"timestamp" if "T" in node else "date": node}, kind)
        raise mismatch

    # ---- spatial and temporal --------------------------------------------------------------

    def _spatial(self, function: str, left: Any, right: Any) -> str:
        if _is_geometry_property(right) and not _is_geometry_property(left):
            left, right = right, left
        if not _is_geometry_property(left):
            raise problem(f"{function} needs the property '{GEOMETRY}'", _show(left))
        if isinstance(right, dict) and "bbox" in right:
            box = right["bbox"]
            if not isinstance(box, list) or len(box) not in (4, 6):
                raise problem("BBOX needs 4 (or 6) numbers", _show(right))
            x0, y0, x1, y1 = (
                (box[0], box[1], box[2], box[3])
                if len(box) == 4
                else (box[0], box[1], box[3], box[4])
            )
            shape = (
                f"ST_MakeEnvelope({self.p.add(float(x0))}, {self.p.add(float(y0))}, "
                f"{self.p.add(float(x1))}, {self.p.add(float(y1))}, 4326)"
            )
        elif isinstance(right, dict) and "type" in right and "coordinates" in right:
            geojson = self.p.add(orjson.dumps(right).decode())
            shape = f"ST_SetSRID(ST_GeomFromGeoJSON({geojson}), 4326)"
        else:
            raise problem(f"{function} needs a geometry literal", _show(right))
        return f"{function}(i.geom, {shape})"

    def _temporal(self, op: str, left: Any, right: Any) -> str:
        lhs, kind = self.operand(left)
        if kind not in _TIME_KINDS:
            raise problem(f"{op.upper()} needs a date or timestamp property", _show(left))
        if isinstance(right, dict) and "interval" in right:
            bounds = right["interval"]
            if not isinstance(bounds, list) or len(bounds) != 2:
                raise problem("INTERVAL needs a start and an end", _show(right))
            start, end = (
                None if b in ("..", None) else self.p.add(self._literal(b, kind)) for b in bounds
            )
        else:
            instant = self.p.add(self._literal(right, kind))
            start = end = instant
        after_start = f"{lhs} >= {start}" if start else "true"
        before_end = f"{lhs} <= {end}" if end else "true"
        if op in ("t_intersects", "t_equals"):
            return f"({after_start} AND {before_end})"
        if op == "t_during":
            inside = [f"{lhs} > {start}" if start else "true", f"{lhs} < {end}" if end else "true"]
            return "(" + " AND ".join(inside) + ")"
        if op == "t_before":
            return f"({lhs} < {start})" if start else "false"
        return f"({lhs} > {end})" if end else "false"  # t_after

    @staticmethod
    def _one(op: str, args: list[Any]) -> Any:
        if len(args) != 1:
            raise problem(f"{op.upper()} takes one argument")
        return args[0]

    @staticmethod
    def _two(op: str, args: list[Any]) -> tuple[Any, Any]:
        if len(args) != 2:
            raise problem(f"{op.upper()} takes two arguments")
        return args[0], args[1]


def _is_property_side(node: Any) -> bool:
    if isinstance(node, dict) and "property" in node:
        return True
    return isinstance(node, dict) and str(node.get("op", "")).lower() in ("casei", "accenti")


def _is_geometry_property(node: Any) -> bool:
    return isinstance(node, dict) and node.get("property") == GEOMETRY


def _literal_kind(node: Any) -> Kind:
    if isinstance(node, bool):
        return Kind.boolean
    if isinstance(node, int | float):
        return Kind.number
    if isinstance(node, dict) and "timestamp" in node:
        return Kind.datetime
    if isinstance(node, dict) and "date" in node:
        return Kind.date
    return Kind.text


def _instant(node: dict[str, Any], kind: Kind) -> dt.date | dt.datetime:
    text = str(node.get("date") or node.get("timestamp"))
    try:
        if "timestamp" in node:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return moment.astimezone(dt.UTC).date() if kind is Kind.date else moment
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise problem("not a valid date or timestamp", text) from exc
    if kind is Kind.datetime:
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return day


def _show(node: Any) -> str:
    return orjson.dumps(node, default=str).decode()[:200]


def translate(tree: dict[str, Any], params: Params) -> str:
    return Translator(params).condition(tree)
