"""Parameters are always bound: no value is ever formatted into SQL text.

Walks the source of every module that builds SQL and checks each f-string or .format() that
produces SQL only interpolates placeholders ($n from Params.add), table aliases, whitelisted
column/dimension names, or constants defined in the code."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
SQL_WORDS = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", " WHERE ", " FROM ")
# Names whose values are code-defined identifiers or placeholders, never client input.
SAFE_NAMES = {
    "a",
    "alias",
    "p",
    "c",
    "d",
    "column",
    "index",
    "name",
    "time_dim",
    "dims",
    "join",
    "select",
    "group",
    "where",
    "order",
    "keys",
    "keys_cte",
    "other_cols",
    "on",
    "fields",
    "extra_ctes",
    "rows_sql",
    "agg_sql",
    "point",
    "exact",
    "inner",
    "distance_sql",
    "doc",
    "order_by",
    "clauses",
    "keys_sql",
    "columns",
    "_EXPR",
    "STEP",
    "LABEL_FORMAT",
    "MAX_ROWS",
    "INCLUDE",
    "t",
    # _select_sql(fmt, ...) picks one of three fixed fragments by output format (an enum);
    # _quote(layer...) quotes SQLite identifiers read from a GeoPackage's own metadata.
    "_select_sql",
    "fmt",
    "_quote",
    "layer",
    # Rollup queries (stats, grid): fragments assembled in code from the constants above,
    # placeholders and dimension names checked against a fixed list.
    "cols",
    "parts",
    "cells",
    "months",
    "inside",
    "cut",
    "country",  # a column expression chosen in code (attribute_clauses)
    "edge",  # a Where from build_where: placeholders only
    "feature_json",  # the Feature expression built from the field registry
    "source",  # a lookup's fixed SQL, chosen from a table by the endpoint (ACLED API)
    "last",  # LIMIT / OFFSET placeholders
    "skip",
    "op",  # an operator from a fixed list (ACLED's `_where`), checked before use
    "expression",  # version_sql(): a fixed expression over the incident row, from code
    # The set-based load (importers/raw.py, transform.py): SQL generated from the field
    # registry's names and constraints; `int(...)` of offsets and limits; the file's cells
    # are only ever read by that SQL from the raw table, never formatted into it.
    "int",
    "self",
    "row",
    "line",
    "oks",
    "rules_ok",
    "newlines",
    "cell",
    "elements",
    "most",
    "longest",
    "actors",  # the pair rule's actor expression, fixed text
    "tables",  # work tables named after the loading session's pid (`Tables`), never input
    "table",
    "_rows",  # "BETWEEN a AND b" of ints (`pipeline._rows`)
    "first",
    "middle",
    "target",  # a rollup table's fixed name, and the work table its deltas go to (`Tables`)
    "work",
    # Subscriptions (alerts/service.py): `$n` placeholders from Params.add, and the filter as
    # `ROW(...)::alert_filter` from matching.filter_sql (placeholders only).
    "values",
    "match",
    "secret_param",
    "sets",
    "sid",
    "key",
    "admin",
    # Live streams (alerts/stream.py): the relation of stream filters (a fixed temporary
    # table, or a stream's filter_sql expression: placeholders only).
    "streams",
    "stream",
    # Time travel (search/query.py): source_sql(f, p) is `incidents i` or
    # `incidents_as_of($n) i` (a placeholder); the uncertainty rule's SQL is built from
    # settings checked as numbers at start-up (incidents/uncertainty.py).
    "source_sql",
    "relation",  # as_of_arms(): `incidents i` or `incident_history i` and their condition
    "condition",
    "cap",  # " LIMIT $n"
    "f",
    "bp",
    "reach",
    "geog",
    "envelopes",
    "effective_sql",
    "cases",
    "default",
}


def is_placeholder(expr: ast.expr) -> bool:
    """`p.add(value)` / `params.add(value)`: the value is bound, only `$n` reaches the SQL."""
    return (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "add"
    )


def interpolated_names(node: ast.JoinedStr) -> list[str]:
    names = []
    for value in node.values:
        if isinstance(value, ast.FormattedValue) and not is_placeholder(value.value):
            for sub in ast.walk(value.value):
                if isinstance(sub, ast.Name):
                    names.append(sub.id)
    return names


def test_sql_fstrings_only_interpolate_placeholders_and_identifiers() -> None:
    offenders = []
    for path in APP.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.JoinedStr):
                continue
            text = "".join(
                v.value
                for v in node.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            if not any(word in text.upper() for word in SQL_WORDS):
                continue
            for name in interpolated_names(node):
                if name not in SAFE_NAMES and not name.isupper():
                    offenders.append(f"{path.relative_to(APP)}:{node.lineno} {{{name}}}")
    assert offenders == [], offenders


def test_no_percent_formatting_of_sql() -> None:
    offenders = []
    for path in APP.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Mod)
                and isinstance(node.left, ast.Constant)
                and isinstance(node.left.value, str)
                and any(w in node.left.value.upper() for w in SQL_WORDS)
            ):
                offenders.append(f"{path.relative_to(APP)}:{node.lineno}")
    assert offenders == [], offenders
