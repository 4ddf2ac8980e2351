"""Reading and checking contact records without the store: the part of an import a worker process runs.

``check_chunk`` turns a list of records into rows ready for the store (plain tuples, cheap to send
between processes) and the errors of the bad ones. ``ContactImporter``
(cti_server/screenpop/importer.py) runs it in a second process on large imports, so checking overlaps
with writing; this module imports no database code, so that process starts quickly.
"""

from __future__ import annotations

import csv
import gc
import io
import itertools
import json
import marshal
import os
import pickle
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from cti_server.screenpop.phone import PhoneNumberError, normalize_number

PHONE_COLUMNS = {"phone": "other", "mobile": "mobile", "work_phone": "work", "home_phone": "home"}
PHONE_KINDS = ("mobile", "work", "home", "other")
TEXT_LIMITS = {
    "first_name": 120,
    "last_name": 120,
    "email": 254,
    "title": 120,
    "external_id": 120,
    "account": 200,
}
_TEXT_LIMIT_ITEMS = tuple(TEXT_LIMITS.items())
_PHONE_COLUMN_ITEMS = tuple(PHONE_COLUMNS.items())
_NO_ATTRIBUTES: dict[str, str] = {}
"""The attributes of every row without extra columns (never changed)."""
_KNOWN_COLUMNS = frozenset(TEXT_LIMITS) | frozenset(PHONE_COLUMNS) | {"phones"}
MAX_PHONES = 20
MAX_ATTRIBUTES = 50
YIELD_EVERY = 256
"""Records checked between two yields to the event loop (a few milliseconds of work)."""

T = TypeVar("T")
Record = tuple[int, Mapping[str, Any]]
"""(line number, the record's fields) as read from the file."""


class ImportFormatError(ValueError):
    """The file as a whole cannot be read (not CSV/JSON, no header); ``line`` is where it went wrong."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class RowError:
    """One problem with one record: its line, the field and why."""

    line: int
    field: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


class ContactRow(NamedTuple):
    """A record that passed every check, ready to insert (a tuple: built for every imported row)."""

    line: int
    first_name: str
    last_name: str
    email: str
    title: str
    external_id: str | None
    account: str
    phones: tuple[tuple[str, str, str], ...]
    """(E.164 number, kind, the text it was given as)."""
    attributes: dict[str, str]


def time_ordered_id() -> str:
    """A UUIDv7 (RFC 9562 section 5.7): 48-bit Unix milliseconds, then random bits.

    Imported rows get ids that grow with time, so their primary-key index grows at its right edge
    instead of taking a random page per row (the random UUIDv4 of ``new_id`` costs several times more
    per insert once the table is large). The text form is the same 36 characters.
    """
    bits = random.getrandbits(74)
    # 48 bits of milliseconds, version 7, 12 random bits, variant 0b10, 62 random bits
    value = (
        (time.time_ns() // 1_000_000) << 80
        | (0x7000 | bits >> 62) << 64
        | 0x8000000000000000
        | bits & 0x3FFFFFFFFFFFFFFF
    )
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def time_ordered_ids(count: int) -> Iterator[str]:
    """``count`` UUIDv7 like ``time_ordered_id``, with the millisecond of the call (a batch's ids).

    The 74 random bits of each come from one ``os.urandom`` call for all of them; the id costs a few
    string slices instead of the integer arithmetic and formatting of ``time_ordered_id``. They come
    in ascending order (RFC 9562 section 6.2 lets ids of one millisecond be made monotonic): rows
    inserted in that order append to the primary-key and contact-id indexes instead of splitting
    pages inside the batch's range.
    """
    millis = f"{time.time_ns() // 1_000_000:012x}"
    head = f"{millis[:8]}-{millis[8:]}-7"
    random_hex = os.urandom(10 * count).hex()  # 20 hex digits (80 bits) per id, 74 used
    variant = "89ab" * 4  # the variant 0b10 and two random bits, by one random hex digit
    ids = [
        f"{head}{r[:3]}-{variant[int(r[3], 16)]}{r[4:7]}-{r[7:19]}"
        for r in (random_hex[start : start + 20] for start in range(0, 20 * count, 20))
    ]
    ids.sort()
    return iter(ids)


# --- reading ----------------------------------------------------------------------------------------


class CsvRecords:
    """The records of a CSV file with a header row; line numbers count the header as line 1.

    Iterating yields (line, fields) like every reader here. ``rows`` yields (line, values) instead,
    ``columns`` the header they belong to: a worker process makes the same records of them
    (``record_of``), and a list of values costs this process less to read and to send than a dict.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = lines
        self.columns: tuple[list[str], bool] = ([], True)
        """The column names, and whether every column has a name (set once the header is read)."""

    def __iter__(self) -> Iterator[Record]:
        rows = self.rows()
        for line, values in rows:
            names, every_column_named = self.columns
            yield line, record_of(names, every_column_named, values)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line, values) of each row that is not blank, after the header."""
        lines = iter(self._lines)
        reader = csv.reader(lines)
        self._read_header(reader)
        yield from _rows_of(reader, 0)

    def rows_or_lines(self) -> Iterator[tuple[int, list[str] | str]]:
        """``rows``, but while the file has no quote a row comes as its line's text.

        A line without a quote is one record, so its text can be sent to a worker as it is: the worker
        parses it (``records_of``), and this process neither parses it nor pickles its values. From the
        first line with a quote (a field may span lines), a NUL or more than the field size limit,
        rows are parsed here as in ``rows``, with the same line numbers and errors.
        """
        lines = iter(self._lines)
        reader = csv.reader(lines)
        self._read_header(reader)
        line = reader.line_num
        limit = csv.field_size_limit()
        for text in lines:
            line += 1
            if '"' in text or "\0" in text or len(text) > limit:
                yield from _rows_of(csv.reader(itertools.chain((text,), lines)), line - 1)
                return
            first = text[:1]
            # not a blank row (only commas and spaces); a row that starts otherwise is not one
            if (first != "," and not first.isspace() and first) or text.replace(",", "").strip():
                yield line, text

    def _read_header(self, reader: Any) -> None:
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFormatError(1, "empty file: expected a header row") from None
        except csv.Error as exc:
            raise ImportFormatError(1, f"not CSV: {exc}") from None
        names = [name.strip().lower().lstrip("\ufeff") for name in header]
        if not any(names):
            raise ImportFormatError(1, "empty header row")
        seen: set[str] = set()
        for name in names:
            if name in seen and name:
                raise ImportFormatError(1, f"column {name!r} appears twice")
            seen.add(name)
        self.columns = (names, all(names))


def _rows_of(reader: Any, before: int) -> Iterator[tuple[int, list[str]]]:
    """(line, values) of the rows ``reader`` reads that are not blank; ``before`` lines precede its
    first line in the file."""
    line = before + reader.line_num
    while True:
        start = line + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFormatError(start, f"not CSV: {exc}") from None
        line = before + reader.line_num
        if not values or not "".join(values).strip():  # a blank row
            continue
        yield start, values


def records_of(columns: tuple[list[str], bool], rows: list[tuple[int, list[str] | str]]) -> list[Record]:
    """The records of ``CsvRecords.rows_or_lines`` items under the header ``columns``."""
    names, every_column_named = columns
    parsed = csv.reader([row for _, row in rows if isinstance(row, str)])
    return [
        (line, record_of(names, every_column_named, next(parsed) if isinstance(row, str) else row))
        for line, row in rows
    ]


def record_of(names: list[str], every_column_named: bool, values: list[str]) -> Mapping[str, Any]:
    """The record of one CSV row's ``values`` under the header ``names``."""
    if len(values) > len(names):
        return {"": f"{len(values)} fields for {len(names)} columns"}
    if every_column_named:
        return dict(zip(names, values, strict=False))
    return {name: value for name, value in zip(names, values, strict=False) if name}


def read_csv(lines: Iterable[str]) -> CsvRecords:
    """Records of a CSV file with a header row; line numbers count the header as line 1."""
    return CsvRecords(lines)


def read_json(text: str) -> Iterator[Record]:
    """Records of a JSON array of objects, or of JSON lines (one object per line), with their line.

    In JSON lines a line that is not JSON is a bad record; in an array it ends the import (the array
    cannot be read past it).
    """
    start = _skip_space(text, 0)
    if start == len(text):
        raise ImportFormatError(1, "empty body: expected a JSON array or JSON lines")
    if text[start] != "[":
        yield from _read_json_lines(text)
        return
    decoder = json.JSONDecoder()
    lines = _LineCounter(text)
    position = start + 1
    while True:
        position = _skip_space(text, position)
        if text.startswith("]", position):
            if _skip_space(text, position + 1) != len(text):
                raise ImportFormatError(lines.line_of(position + 1), "text after the array")
            return
        if position >= len(text):
            raise ImportFormatError(lines.line_of(position), "the array is not closed")
        line = lines.line_of(position)
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(exc.lineno, f"not JSON: {exc.msg}") from None
        yield line, _as_object(value)
        position = _skip_space(text, end)
        if text.startswith(",", position):
            position += 1
        elif not text.startswith("]", position):
            raise ImportFormatError(lines.line_of(position), "expected ',' or ']' after a record")


def _read_json_lines(text: str) -> Iterator[Record]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, {"": f"not JSON: {exc.msg}"}
            continue
        yield number, _as_object(value)


def _as_object(value: Any) -> Mapping[str, Any]:
    if isinstance(value, dict):
        return {str(k).strip().lower(): v for k, v in value.items()}
    return {"": f"expected an object, got {type(value).__name__}"}


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


class _LineCounter:
    """Line numbers of increasing positions in ``text``, counting each newline once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self.line = 1

    def line_of(self, position: int) -> int:
        self.line += self.text.count("\n", self.position, position)
        self.position = position
        return self.line


def read_records(data: bytes | str, content_type: str) -> Iterable[Record]:
    """Records of ``data`` by content type (``text/csv``, ``application/json``, ``application/x-ndjson``).

    An unspecific type (``text/plain``, ``application/octet-stream``, none) is JSON when the text starts
    with ``[`` or ``{`` and CSV otherwise.
    """
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    if content_type in ("text/plain", "application/octet-stream", ""):
        content_type = "application/json" if text.lstrip()[:1] in ("[", "{") else "text/csv"
    if "json" in content_type:
        return read_json(text)
    if "csv" in content_type:
        return read_csv(io.StringIO(text, newline=""))
    raise ImportFormatError(
        0, f"unsupported content type {content_type!r}: send text/csv or application/json"
    )


# --- checking ---------------------------------------------------------------------------------------


def check_record(line: int, record: Mapping[str, Any], region: str) -> ContactRow | list[RowError]:
    """The record as a ContactRow, or every problem found in it."""
    fields = _check_fields(line, record, region)
    return ContactRow(line, *fields) if isinstance(fields, tuple) else fields


CheckedFields = tuple[str, str, str, str, str | None, str, tuple[tuple[str, str, str], ...], dict[str, str]]
"""A ContactRow's fields after ``line``, as a plain tuple (cheaper to make than the NamedTuple)."""


def _check_fields(line: int, record: Mapping[str, Any], region: str) -> CheckedFields | list[RowError]:
    errors: list[RowError] = []
    if "" in record and len(record) == 1:
        return [RowError(line, "record", str(record[""]))]
    texts: dict[str, str] = {}
    get = record.get
    for name, limit in _TEXT_LIMIT_ITEMS:
        value = get(name)
        if value is None:
            texts[name] = ""
            continue
        if value.__class__ is not str:
            if not isinstance(value, str | int):
                errors.append(RowError(line, name, f"expected text, got {type(value).__name__}"))
                continue
            value = str(value)
        text = texts[name] = value.strip()
        if len(text) > limit:
            errors.append(RowError(line, name, f"longer than {limit} characters"))
    if not (texts.get("first_name") or texts.get("last_name") or texts.get("email")):
        if not any(e.field in ("first_name", "last_name", "email") for e in errors):
            errors.append(RowError(line, "first_name", "a contact needs a first name, last name or e-mail"))
    email = texts.get("email", "")
    if email and not _looks_like_email(email):
        errors.append(RowError(line, "email", "not an e-mail address"))
    phones = _check_phones(line, record, region, errors)
    attributes = _NO_ATTRIBUTES  # shared: the bulk insert turns it into JSON once per batch
    if not _KNOWN_COLUMNS.issuperset(record):  # extra columns: kept in the contact's attributes
        attributes = {}
        _collect_attributes(line, record, attributes, errors)
    if errors:
        return errors
    return (
        texts["first_name"],
        texts["last_name"],
        email,
        texts["title"],
        texts["external_id"] or None,
        texts["account"],
        tuple(phones),
        attributes,
    )


def _collect_attributes(
    line: int, record: Mapping[str, Any], attributes: dict[str, str], errors: list[RowError]
) -> None:
    for name, value in record.items():
        if name in TEXT_LIMITS or name in PHONE_COLUMNS or name == "phones" or value in (None, ""):
            continue
        if len(attributes) == MAX_ATTRIBUTES:
            errors.append(RowError(line, name, f"more than {MAX_ATTRIBUTES} extra columns"))
            break
        attributes[name] = value if isinstance(value, str) else json.dumps(value)


def _looks_like_email(text: str) -> bool:
    local, at, domain = text.rpartition("@")
    return bool(at and local and "." in domain and " " not in text and not domain.startswith("."))


def _check_phones(
    line: int, record: Mapping[str, Any], region: str, errors: list[RowError]
) -> list[tuple[str, str, str]]:
    given: list[tuple[str, str, str]] = []  # (field, kind, raw)
    get = record.get
    for column, kind in _PHONE_COLUMN_ITEMS:
        value = get(column)
        if value.__class__ is str:  # the usual case first: text (CSV values always are)
            if value:
                given.append((column, kind, value))
            continue
        if value is None:
            continue
        if not isinstance(value, str | int):
            errors.append(RowError(line, column, f"expected a phone number, got {type(value).__name__}"))
            continue
        if value != "":
            given.append((column, kind, str(value)))
    many = get("phones")
    if isinstance(many, str):
        given.extend(("phones", "other", part) for part in many.split(";") if part.strip())
    elif isinstance(many, list):
        for index, item in enumerate(many):
            where = f"phones[{index}]"
            if isinstance(item, str):
                given.append((where, "other", item))
            elif isinstance(item, dict) and isinstance(item.get("number"), str):
                kind = str(item.get("kind") or "other")
                if kind not in PHONE_KINDS:
                    errors.append(
                        RowError(line, f"{where}.kind", f"expected one of {', '.join(PHONE_KINDS)}")
                    )
                    continue
                given.append((where, kind, item["number"]))
            else:
                errors.append(RowError(line, where, 'expected a number or {"number", "kind"}'))
    elif many is not None:
        errors.append(RowError(line, "phones", "expected numbers separated by ';' or a list"))
    if len(given) > MAX_PHONES:
        errors.append(RowError(line, "phones", f"more than {MAX_PHONES} numbers"))
        return []
    phones: list[tuple[str, str, str]] = []
    for where, kind, raw in given:
        try:
            phones.append((normalize_number(raw, region), kind, raw.strip()[:64]))
        except PhoneNumberError as exc:
            errors.append(RowError(line, where, f"{raw.strip()!r} is not a phone number: {exc.reason}"))
    return phones


# --- a chunk, for the store ---------------------------------------------------------------------------

CheckedContact = tuple[int, str | None, str, str, str, str, str, str, dict[str, str] | None]
"""(line, external id, account name, contact id, first name, last name, e-mail, title, attributes or
None when there are none) of a record that passed every check."""

PhoneTuple = tuple[str, str, str, str, str]
"""(call center id, contact id, E.164 number, kind, raw): a contact_phones row in column order."""


class CheckedChunk(NamedTuple):
    """What ``check_chunk`` found in a list of records, in their order."""

    contacts: list[CheckedContact]
    phones: list[PhoneTuple]
    rejected: list[list[RowError]]
    """The errors of each bad record."""


def check_chunk(call_center_id: str, region: str, records: list[Record]) -> CheckedChunk:
    """Check ``records``; the good ones get a contact id (UUIDv7) and their phone rows.

    A pure function of its arguments (and the clock): runs in the importer's process or in a worker.
    """
    contacts: list[CheckedContact] = []
    phones: list[PhoneTuple] = []
    rejected: list[list[RowError]] = []
    new_id = time_ordered_ids(len(records)).__next__
    for line, record in records:
        row = _check_fields(line, record, region)
        if isinstance(row, list):
            rejected.append(row)
            continue
        first, last, email, title, external_id, account, numbers, attributes = row
        contact_id = new_id()
        contacts.append(
            (line, external_id, account, contact_id, first, last, email, title, attributes or None)
        )
        for number, kind, raw in numbers:
            phones.append((call_center_id, contact_id, number, kind, raw))
    return CheckedChunk(contacts, phones, rejected)


def without_gc(task: Callable[[], T]) -> T:
    """``task()`` with the cyclic garbage collector paused (and restored as it was).

    Checking and (un)pickling a batch allocate a few tuples, strings and dicts per record and make no
    reference cycles, yet the allocations start collections that walk every tracked object of the
    process (in the forked worker: everything it inherited). Paused, a batch is checked in about a
    fifth less CPU.
    """
    if not gc.isenabled():
        return task()
    gc.disable()
    try:
        return task()
    finally:
        gc.enable()


def encode_chunk(chunk: CheckedChunk) -> bytes:
    """``chunk`` as bytes for the importer's process (``decode_chunk``).

    marshal rather than pickle: a chunk is lists of flat tuples of text, which marshal writes in
    about half of pickle's time (no memo of every object) and reads a little faster; both ends are
    the same interpreter, so its format is no concern. Errors travel as (line, field, reason).
    """
    rejected = [[(e.line, e.field, e.reason) for e in errors] for errors in chunk.rejected]
    return marshal.dumps((chunk.contacts, chunk.phones, rejected))


def decode_chunk(data: bytes) -> CheckedChunk:
    """The CheckedChunk ``encode_chunk`` wrote."""
    contacts, phones, rejected = marshal.loads(data)
    return CheckedChunk(contacts, phones, [[RowError(*error) for error in errors] for errors in rejected])


def check_pickled(call_center_id: str, region: str, records: bytes) -> bytes:
    """``check_chunk`` of pickled records, to ``encode_chunk`` bytes: the checking worker's task."""

    def check() -> bytes:
        return encode_chunk(check_chunk(call_center_id, region, pickle.loads(records)))

    return without_gc(check)


def check_csv_pickled(
    call_center_id: str, region: str, columns: tuple[list[str], bool], rows: bytes
) -> bytes:
    """``check_pickled`` of ``CsvRecords.rows_or_lines`` items under the header ``columns``."""

    def check() -> bytes:
        records = records_of(columns, pickle.loads(rows))
        return encode_chunk(check_chunk(call_center_id, region, records))

    return without_gc(check)
