"""Which rollup can answer a filter: the one place that says so.

Each rollup table (kept current by the write path, migrations 0006 and 0007) carries some of
a filter's dimensions (`SearchFilter.dimensions()`); it can answer a filter exactly when it
carries every dimension the filter constrains. Stats, grid and tiles ask here; what each adds
(the dimensions to group by, the hexagon sizes) is their own business.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.search.filters import SearchFilter


@dataclass(frozen=True)
class Rollup:
    table: str
    carries: frozenset[str]

    def serves(self, f: SearchFilter) -> bool:
        return f.dimensions() <= self.carries


# Live incidents per month and attribute key: /v1/stats over whole months.
MONTHLY = Rollup(
    "incident_rollup_month",
    frozenset(
        {"dates", "country", "admin1", "admin2", "event_type", "sub_event_type", "disorder_type"}
    ),
)
# Live incidents per month and hexagon (10, 25, 50, 100 km): /v1/stats/grid.
GRID = Rollup("incident_grid_cells", frozenset({"dates", "bbox"}))
# Live incidents per zoom-14 Web Mercator cell, all time: unfiltered cluster tiles.
TILE_CELLS = Rollup("incident_tile_cells", frozenset())

DateRange = tuple[dt.date, dt.date]


def split_months(
    start: dt.date | None, end: dt.date | None
) -> tuple[dt.date | None, dt.date | None, list[DateRange]] | None:
    """[start, end] as whole months [lo, hi) for the monthly rollups plus the partial-month
    days at either end (inclusive ranges, read from the incidents). None bounds are open.
    None when the range holds no whole month."""
    if (start is not None and start.year >= dt.MAXYEAR) or (
        end is not None and end.year >= dt.MAXYEAR
    ):
        return None  # no next month to bound by; the incidents answer directly
    lo = None if start is None else (start if start.day == 1 else _next_month(start))
    hi = None if end is None else (end + dt.timedelta(days=1)).replace(day=1)
    if lo is not None and hi is not None and lo >= hi:
        return None
    edges: list[DateRange] = []
    if start is not None and lo is not None and start < lo:
        edges.append((start, lo - dt.timedelta(days=1)))
    if end is not None and hi is not None and hi <= end:
        edges.append((hi, end))
    return lo, hi, edges


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
