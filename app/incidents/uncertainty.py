"""Location uncertainty: how far from its point an incident may have happened, in km.

An incident stores `uncertainty_km` when it was given (or when a UCDP import derived it from
`where_prec`); otherwise its uncertainty is the default for its `geo_precision`
(`UNCERTAINTY_KM_BY_GEO_PRECISION`, 1 -> 1 km, 2 -> 10 km, 3 -> 50 km), and 0 without either.
`effective_sql` is that rule in SQL: every output and every `match=` comparison uses it. The
defaults are settings, so they are numbers checked at start-up, written into the SQL as
literals (the SQL text stays constant per process; no request value goes into it).
"""

from __future__ import annotations

from app.core.config import get_settings


def _km(value: float) -> str:
    return repr(float(value))


def effective_sql(alias: str = "i") -> str:
    """The incident's uncertainty in km (float8): as stored, else its precision's default."""
    table = get_settings().uncertainty_km_by_geo_precision
    cases = " ".join(f"WHEN {int(k)} THEN {_km(v)}" for k, v in sorted(table.items()))
    default = f"CASE {alias}.geo_precision {cases} END" if cases else "NULL"
    return f"coalesce({alias}.uncertainty_km::float8, {default}, 0.0::float8)"


def defaults_km() -> dict[int, float]:
    """geo_precision -> its default uncertainty (the setting)."""
    return dict(get_settings().uncertainty_km_by_geo_precision)


def largest_default_km() -> float:
    """The largest uncertainty an incident can have without storing one."""
    return max(get_settings().uncertainty_km_by_geo_precision.values(), default=0.0)


def where_prec_km(where_prec: int | None) -> float | None:
    """What a UCDP import stores for a `where_prec` (None when unknown)."""
    if where_prec is None:
        return None
    return get_settings().uncertainty_km_by_where_prec.get(where_prec)
