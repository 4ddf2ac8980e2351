"""Bulk import of contacts from CSV (RFC 4180) or JSON (RFC 8259: an array of objects, or JSON lines).

Every record is checked on its own: a bad one is reported by its line number with the field and the
reason, the good ones are kept. Records are checked a batch at a time, yielding to the event loop
every few hundred records so calls are never held up; each batch is written at driver speed
(``bulk.bulk_insert``: COPY on PostgreSQL) in its own transaction.

Columns (CSV header names or JSON keys):

- ``first_name``, ``last_name``, ``email``, ``title``: text; a contact needs a name or an e-mail;
- ``external_id``: your system's id, unique per call center (a repeat is refused, in the file or the store);
- ``account``: account name, matched in the call center or created;
- ``phone``, ``mobile``, ``work_phone``, ``home_phone``: one number each; ``phones``: several numbers
  separated by ``;`` (CSV) or a list of strings or ``{"number", "kind"}`` objects (JSON). Numbers are
  stored in E.164, national forms read with the call center's region;
- any other column is kept in the contact's ``attributes``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

import structlog
from sqlalchemy import Table, select, text

from cti_server.screenpop.bulk import bulk_insert_tuples, prepare_for_bulk
from cti_server.screenpop.phone import PhoneNumberError, normalize_number
from cti_server.store import Store
from cti_server.store.models import Account, Contact, ContactPhone

log = structlog.get_logger(__name__)

ACCOUNTS = cast(Table, Account.__table__)
CONTACTS = cast(Table, Contact.__table__)
CONTACT_PHONES = cast(Table, ContactPhone.__table__)
ACCOUNT_COLUMNS = (
    "id",
    "call_center_id",
    "name",
    "external_id",
    "phone",
    "website",
    "industry",
    "attributes",
    "created_at",
    "updated_at",
)
CONTACT_COLUMNS = (
    "id",
    "call_center_id",
    "account_id",
    "external_id",
    "first_name",
    "last_name",
    "email",
    "title",
    "attributes",
    "created_at",
    "updated_at",
)
EXTERNAL_IDS_OF_CALL_CENTER = text(
    "SELECT external_id FROM contacts WHERE call_center_id = :call_center_id AND external_id IS NOT NULL"
)
"""The external ids a call center's contacts already use (read once per import on PostgreSQL)."""
PHONE_COLUMNS_ORDER = ("call_center_id", "contact_id", "number", "kind", "raw")

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
_NO_ATTRIBUTES: dict[str, str] = {}
"""The attributes of every row without extra columns (never changed)."""
_KNOWN_COLUMNS = frozenset(TEXT_LIMITS) | frozenset(PHONE_COLUMNS) | {"phones"}
MAX_PHONES = 20
MAX_ATTRIBUTES = 50
YIELD_EVERY = 256
"""Records checked between two yields to the event loop (a few milliseconds of work)."""

Record = tuple[int, Mapping[str, Any]]
"""(line number, the record's fields) as read from the file."""

Progress = Callable[[int, int], None]
"""Called after each batch with (records done, records rejected so far)."""


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


@dataclass
class ImportReport:
    """What an import did: counts and the bad records (the first ``max_errors`` of them)."""

    received: int = 0
    imported: int = 0
    rejected: int = 0
    phones: int = 0
    accounts_created: int = 0
    errors: list[RowError] = field(default_factory=list)
    errors_truncated: bool = False
    elapsed_s: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.received / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "imported": self.imported,
            "rejected": self.rejected,
            "phones": self.phones,
            "accounts_created": self.accounts_created,
            "errors": [e.to_dict() for e in self.errors],
            "errors_truncated": self.errors_truncated,
            "elapsed_s": round(self.elapsed_s, 3),
        }


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


# --- reading ----------------------------------------------------------------------------------------


def read_csv(lines: Iterable[str]) -> Iterator[Record]:
    """Records of a CSV file with a header row; line numbers count the header as line 1."""
    reader = csv.reader(lines)
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
    line = reader.line_num
    every_column_named = all(names)
    while True:
        start = line + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFormatError(start, f"not CSV: {exc}") from None
        line = reader.line_num
        if not values or not "".join(values).strip():  # a blank row
            continue
        if len(values) > len(names):
            yield start, {"": f"{len(values)} fields for {len(names)} columns"}
            continue
        if every_column_named:
            yield start, dict(zip(names, values, strict=False))
        else:
            yield start, {name: value for name, value in zip(names, values, strict=False) if name}


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


def read_records(data: bytes | str, content_type: str) -> Iterator[Record]:
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
    if record.keys() - _KNOWN_COLUMNS:  # extra columns: kept in the contact's attributes
        attributes = {}
        _collect_attributes(line, record, attributes, errors)
    if errors:
        return errors
    return ContactRow(
        line,
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
    for column, kind in PHONE_COLUMNS.items():
        value = record.get(column)
        if value in (None, ""):
            continue
        if not isinstance(value, str | int):
            errors.append(RowError(line, column, f"expected a phone number, got {type(value).__name__}"))
            continue
        given.append((column, kind, str(value)))
    many = record.get("phones")
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


# --- writing ----------------------------------------------------------------------------------------


class ContactImporter:
    """Imports records into one call center of the store, a batch per transaction."""

    def __init__(
        self,
        store: Store,
        call_center_id: str,
        region: str,
        *,
        batch_size: int = 5000,
        max_errors: int = 1000,
        progress: Progress | None = None,
    ) -> None:
        self.store = store
        self.call_center_id = call_center_id
        self.region = region
        self.batch_size = batch_size
        self.max_errors = max_errors
        self.progress = progress
        self._accounts: dict[str, str] | None = None
        self._known_external_ids: set[str] | None = None

    async def run(self, records: Iterable[Record]) -> ImportReport:
        """Check and insert every record; ImportFormatError if the file itself cannot be read."""
        report = ImportReport()
        started = time.perf_counter()
        iterator = iter(records)
        seen_external: set[str] = set()
        while True:
            batch, results = await self._next_batch(iterator)
            if not batch:
                break
            report.received += len(batch)
            good: list[ContactRow] = []
            for result in results:
                if isinstance(result, ContactRow):
                    good.append(result)
                else:
                    self._reject(report, result)
            good = await self._drop_known_external_ids(good, seen_external, report)
            if good:
                await self._insert(good, report)
            if self.progress is not None:
                self.progress(report.received, report.rejected)
        report.elapsed_s = time.perf_counter() - started
        log.info(
            "contacts_imported",
            call_center=self.call_center_id,
            received=report.received,
            imported=report.imported,
            rejected=report.rejected,
            rows_per_s=round(report.rows_per_second),
        )
        return report

    async def _next_batch(
        self, iterator: Iterator[Record]
    ) -> tuple[list[Record], list[ContactRow | list[RowError]]]:
        # Reading and checking is CPU work done in the event loop's thread (a worker thread would fight
        # the database driver's thread for the GIL); it yields to the loop every YIELD_EVERY records so
        # calls keep being served during an import.
        batch: list[Record] = []
        results: list[ContactRow | list[RowError]] = []
        for line, fields in iterator:
            batch.append((line, fields))
            results.append(check_record(line, fields, self.region))
            if len(batch) % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if len(batch) == self.batch_size:
                break
        return batch, results

    def _reject(self, report: ImportReport, errors: list[RowError]) -> None:
        report.rejected += 1
        room = self.max_errors - len(report.errors)
        if room < len(errors):
            report.errors_truncated = True
        report.errors.extend(errors[: max(room, 0)])

    async def _drop_known_external_ids(
        self, rows: list[ContactRow], seen: set[str], report: ImportReport
    ) -> list[ContactRow]:
        wanted = [r.external_id for r in rows if r.external_id]
        if not wanted:
            return rows
        existing: set[str] = set()
        async with self.store.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # The call center's external ids are read once per import. Asked per batch, the
                # planner (its statistics taken before the import's rows) answers with a scan of every
                # contact of the call center on ix_contacts_call_center_id, each batch slower than
                # the last (~400 rows/s by 20,000 rows; 1,300 rows/s into a 1,000,000-contact store).
                if self._known_external_ids is None:
                    found = await connection.execute(
                        EXTERNAL_IDS_OF_CALL_CENTER, {"call_center_id": self.call_center_id}
                    )
                    self._known_external_ids = set(found.scalars())
                existing = self._known_external_ids
                wanted = []
            for start in range(0, len(wanted), 500):
                query = select(Contact.external_id).where(
                    Contact.call_center_id == self.call_center_id,
                    Contact.external_id.in_(wanted[start : start + 500]),
                )
                existing.update(x for x in (await connection.execute(query)).scalars() if x)
        kept: list[ContactRow] = []
        for row in rows:
            if row.external_id and (row.external_id in existing or row.external_id in seen):
                self._reject(
                    report, [RowError(row.line, "external_id", f"{row.external_id!r} already exists")]
                )
                continue
            if row.external_id:
                seen.add(row.external_id)
            kept.append(row)
        return kept

    async def _account_ids(self) -> dict[str, str]:
        if self._accounts is None:
            query = select(Account.name, Account.id).where(Account.call_center_id == self.call_center_id)
            async with self.store.engine.connect() as connection:
                self._accounts = {
                    name.casefold(): id_ for name, id_ in (await connection.execute(query)).all()
                }
        return self._accounts

    async def _insert(self, rows: list[ContactRow], report: ImportReport) -> None:
        accounts = await self._account_ids()
        now = datetime.now(UTC)
        cc = self.call_center_id
        new_accounts: list[tuple[Any, ...]] = []
        contacts: list[tuple[Any, ...]] = []
        phones: list[tuple[Any, ...]] = []
        for row in rows:
            account_id = None
            if row.account:
                key = row.account.casefold()
                account_id = accounts.get(key)
                if account_id is None:
                    account_id = accounts[key] = time_ordered_id()
                    new_accounts.append((account_id, cc, row.account, None, "", "", "", {}, now, now))
            contact_id = time_ordered_id()
            contacts.append(
                (
                    contact_id,
                    cc,
                    account_id,
                    row.external_id,
                    row.first_name,
                    row.last_name,
                    row.email,
                    row.title,
                    row.attributes,
                    now,
                    now,
                )
            )
            for number, kind, raw in row.phones:
                phones.append((cc, contact_id, number, kind, raw))
        try:
            async with self.store.engine.begin() as connection:
                await prepare_for_bulk(connection)
                await bulk_insert_tuples(connection, ACCOUNTS, ACCOUNT_COLUMNS, new_accounts)
                await bulk_insert_tuples(connection, CONTACTS, CONTACT_COLUMNS, contacts)
                await bulk_insert_tuples(connection, CONTACT_PHONES, PHONE_COLUMNS_ORDER, phones)
        except Exception:
            self._accounts = None  # the accounts of this batch were not written after all
            raise
        report.imported += len(contacts)
        report.phones += len(phones)
        report.accounts_created += len(new_accounts)
