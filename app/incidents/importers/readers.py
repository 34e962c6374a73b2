"""Streaming readers: a file-like upload in, one raw record at a time out.

Nothing reads the whole body into memory: CSV and NDJSON go line by line, JSON arrays and
GeoJSON FeatureCollections are decoded one element at a time.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import ijson
import orjson

from app.incidents.importers.mappings import (
    detect_csv_layout,
    from_acled,
    from_incident_csv,
    from_ucdp,
)

FORMATS = ("json", "ndjson", "geojson", "csv")
CONTENT_TYPES = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/geo+json": "geojson",
    "text/csv": "csv",
    "application/csv": "csv",
}
# Output-only fields of our own exports, dropped so an export can be imported again.
OUTPUT_ONLY = {"id", "created_at", "updated_at", "version", "distance_km", "possible_duplicates"}

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class ReadError(Exception):
    """The file as a whole cannot be read (not one bad row): 400."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Record:
    row: int  # 1-based data row / array element
    line: int | None  # line in the file where it starts, when the format has lines
    data: dict[str, Any] | None  # incident input fields
    error: str | None = None  # a record that could not even be read as an object


def sniff(head: bytes, content_type: str | None) -> str:
    """The body's format, from the content type, else from its first bytes."""
    media = (content_type or "").split(";")[0].strip().lower()
    text = head.lstrip(codecs.BOM_UTF8).lstrip()
    if media in CONTENT_TYPES and CONTENT_TYPES[media] != "json":
        return CONTENT_TYPES[media]
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        first_line = text.split(b"\n", 1)[0]
        if b'"FeatureCollection"' in text[:4096] and b'"features"' in text[:100_000]:
            return "geojson"
        try:
            json.loads(first_line)
            return "ndjson"
        except ValueError:
            return "geojson" if b'"FeatureCollection"' in text else "json"
    if media == "application/json":
        return "json"
    return "csv"


def _text(stream: IO[bytes]) -> io.TextIOWrapper:
    # utf-8-sig drops a byte-order mark; newline="" lets csv see embedded newlines.
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")


def read_csv(stream: IO[bytes]) -> tuple[str, Iterator[Record]]:
    """(layout, records). Layouts: acled (current or pre-2023), ucdp, incidents (ours)."""
    text = _text(stream)
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration as exc:
        raise ReadError("empty CSV file") from exc
    except UnicodeDecodeError as exc:
        raise ReadError("the file is not UTF-8 text") from exc
    header = [h.strip().lower() for h in header]
    layout = detect_csv_layout(header)
    if layout is None:
        raise ReadError(
            "unrecognised CSV header: expected ACLED (event_id_cnty, event_date, event_type, "
            "latitude, longitude, ...) or UCDP GED (id, side_a, side_b, type_of_violence, "
            "best, date_start, ...) columns",
            line=1,
        )
    convert = {"acled": from_acled, "ucdp": from_ucdp, "incidents": from_incident_csv}[layout]

    def records() -> Iterator[Record]:
        row_no = 0
        width = len(header)
        try:
            line = reader.line_num + 1
            for values in reader:
                start_line = line
                line = reader.line_num + 1
                if not values or (len(values) == 1 and not values[0].strip()):
                    continue
                if row_no == 0 and all(v.strip().startswith("#") for v in values if v.strip()):
                    continue  # HXL hashtag row under the header (HDX exports)
                row_no += 1
                if len(values) != width:
                    yield Record(
                        row_no, start_line, None, f"expected {width} columns, found {len(values)}"
                    )
                    continue
                yield Record(row_no, start_line, convert(dict(zip(header, values, strict=True))))
        except csv.Error as exc:
            raise ReadError(f"malformed CSV: {exc}", line=reader.line_num) from exc
        except UnicodeDecodeError as exc:
            raise ReadError("the file is not UTF-8 text", line=reader.line_num) from exc

    return layout, records()


def _incident_fields(obj: Any) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(obj, dict):
        return None, "expected a JSON object"
    return {k: v for k, v in obj.items() if k not in OUTPUT_ONLY}, None


def _feature_fields(obj: Any) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(obj, dict) or obj.get("type") != "Feature":
        return None, "expected a GeoJSON Feature"
    data, _ = _incident_fields(obj.get("properties") or {})
    assert data is not None
    geometry = obj.get("geometry")
    if geometry is not None:
        data.pop("latitude", None)
        data.pop("longitude", None)
        data["geometry"] = geometry
    return data, None


INVALID_JSON = object()  # what `ndjson_lines` gives for a line that is not JSON


def ndjson_lines(stream: IO[bytes]) -> Iterator[tuple[int, int, bytes, Any]]:
    """(record number, line number, stripped line, decoded value or INVALID_JSON) for every
    non-blank line (a BOM before the first dropped). One reading for the Python path and the
    COPY path: orjson, which refuses what JSON does not allow (NaN, Infinity, bad UTF-8)."""
    row_no = 0
    for line_no, raw in enumerate(stream, start=1):
        line = raw.strip()
        if line_no == 1:
            line = line.lstrip(codecs.BOM_UTF8)
        if not line:
            continue
        row_no += 1
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            value = INVALID_JSON
        yield row_no, line_no, line, value


def read_ndjson(stream: IO[bytes]) -> Iterator[Record]:
    for row_no, line_no, _, value in ndjson_lines(stream):
        if value is INVALID_JSON:
            yield Record(row_no, line_no, None, "invalid JSON")
            continue
        data, error = _incident_fields(value)
        yield Record(row_no, line_no, data, error)


def _elements(stream: IO[bytes], array: str | None) -> Iterator[Any]:
    """The elements of the array at key `array` of the top-level object (None: the top-level
    value is the array), decoded one at a time by ijson. Only that key of the top level
    counts: a `features` key inside a feature's properties is data, not the array."""
    head = stream.read(3)
    body: Any = stream if head == codecs.BOM_UTF8 else _Prepend(head, stream)
    found = False

    def checked(events: Iterator[tuple[str, str, Any]]) -> Iterator[tuple[str, str, Any]]:
        nonlocal found
        for n, (prefix, event, value) in enumerate(events):
            if n == 0 and array is None and event != "start_array":
                raise ReadError("expected a JSON array")
            if n == 0 and array is not None and event != "start_map":
                raise ReadError(f"expected a JSON object with a '{array}' array")
            if array is not None and prefix == array and not found:
                if event != "start_array":
                    raise ReadError(f"expected an array at '{array}'")
                found = True
            yield prefix, event, value

    path = "item" if array is None else f"{array}.item"
    try:
        yield from ijson.items(checked(ijson.parse(body, use_float=True)), path)
    except ijson.JSONError as exc:
        raise ReadError(f"malformed JSON: {_reason(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise ReadError("the body is not UTF-8 text") from exc
    if array is not None and not found:
        raise ReadError(f"no '{array}' array found")


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


class _Prepend:
    """A byte stream with some bytes already read put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head = head
        self.rest = rest

    def read(self, size: int = -1) -> bytes:
        if not self.head:
            return self.rest.read(size)
        if size < 0:
            data, self.head = self.head + self.rest.read(), b""
            return data
        data, self.head = self.head[:size], self.head[size:]
        if len(data) < size:
            data += self.rest.read(size - len(data))
        return data


def read_json_array(stream: IO[bytes], *, geojson: bool) -> Iterator[Record]:
    convert = _feature_fields if geojson else _incident_fields
    elements = _elements(stream, "features" if geojson else None)
    for row_no, obj in enumerate(elements, start=1):
        data, error = convert(obj)
        yield Record(row_no, None, data, error)


def read_records(stream: IO[bytes], fmt: str) -> tuple[str, Iterator[Record]]:
    """(layout, records) for a body already known to be `fmt`."""
    if fmt == "csv":
        return read_csv(stream)
    if fmt == "ndjson":
        return "ndjson", read_ndjson(stream)
    if fmt == "geojson":
        return "geojson", read_json_array(stream, geojson=True)
    return "json", read_json_array(stream, geojson=False)
