"""Bulk import of contacts from CSV (RFC 4180) or JSON (RFC 8259: an array of objects, or JSON lines).

Every record is checked on its own: a bad one is reported by its line number with the field and the
reason, the good ones are kept. Records are read and checked a batch at a time, yielding to the event
loop every few hundred records so calls are never held up; each batch is written at driver speed
(``bulk.insert_driver_rows``: COPY on PostgreSQL, executemany on SQLite) in its own transaction. On a
machine with more than one core, an import of more than one batch checks its records in a worker
process (``import_rows.check_chunk``) while this process writes the batch before, so checking and
writing overlap on two cores; on PostgreSQL the next batch's rows are also built while the server
copies the batch before.

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
import functools
import json
import multiprocessing
import os
import pickle
import sqlite3
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

import structlog
from sqlalchemy import Table, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cti_server.screenpop.bulk import insert_driver_rows, prepare_for_bulk, to_driver
from cti_server.screenpop.import_rows import (
    MAX_ATTRIBUTES,
    MAX_PHONES,
    PHONE_COLUMNS,
    PHONE_KINDS,
    TEXT_LIMITS,
    YIELD_EVERY,
    CheckedChunk,
    ContactRow,
    CsvRecords,
    ImportFormatError,
    PhoneTuple,
    Record,
    RowError,
    check_chunk,
    check_csv_pickled,
    check_pickled,
    check_record,
    decode_chunk,
    read_csv,
    read_json,
    read_records,
    records_of,
    time_ordered_id,
    without_gc,
)
from cti_server.store import Store
from cti_server.store.models import Account, Contact, ContactPhone

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_PHONES",
    "PHONE_COLUMNS",
    "PHONE_KINDS",
    "TEXT_LIMITS",
    "ContactImporter",
    "ContactRow",
    "ImportFormatError",
    "ImportReport",
    "Progress",
    "Record",
    "RowError",
    "check_record",
    "read_csv",
    "read_json",
    "read_records",
    "time_ordered_id",
]

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
EXTERNAL_IDS_IN_SQLITE = text(
    "SELECT external_id FROM contacts WHERE call_center_id = :call_center_id"
    " AND external_id IN (SELECT value FROM json_each(:wanted))"
)
"""Which of a batch's external ids a call center's contacts already use (SQLite: one probe of the
unique (call_center_id, external_id) index per id, in one statement per batch)."""
LOCK_CALL_CENTER = text("SELECT id FROM call_centers WHERE id = :id FOR KEY SHARE")
LOCK_ACCOUNTS = text("SELECT id FROM accounts WHERE id = ANY(:ids) FOR KEY SHARE")
"""The locks a foreign-key check takes on the rows a batch refers to, taken once per batch (PostgreSQL)."""
SQLITE_CALL_CENTER = text("SELECT id FROM call_centers WHERE id = :id")
SQLITE_ACCOUNTS = text("SELECT id FROM accounts WHERE id IN (SELECT value FROM json_each(:ids))")
"""The same checks on SQLite, run after a batch's inserts (its write lock keeps the rows there)."""
SQLITE_IMPORT_WAL_AUTOCHECKPOINT = 10000
"""WAL pages (4 KiB) between checkpoints while a SQLite connection writes an import batch (1000 by
default): each checkpoint copies every page the batches changed back to the database file, and an
import's batches change the same index pages again and again. Commits are as durable as before."""
MAY_SKIP_KEY_TRIGGERS = {
    True: text("SELECT has_parameter_privilege('session_replication_role', 'SET')"),
    False: text("SELECT current_setting('is_superuser') = 'on'"),
}
"""Whether the role may set session_replication_role (by PostgreSQL 15 or later; superusers before)."""
IN_FLIGHT = 2
"""Batches handed to the checking worker ahead of the one being written (one more is being read)."""

Progress = Callable[[int, int], None]
"""Called after each batch with (records done, records rejected so far)."""


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


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ReadyBatch(NamedTuple):
    """A batch's rows in the driver's forms, ready to insert, and the existing accounts they use."""

    contacts: list[tuple[Any, ...]]
    phones: list[PhoneTuple]
    new_accounts: list[tuple[Any, ...]]
    used_accounts: set[str]


class ImportConflict(RuntimeError):
    """A row a batch refers to (its call center, an account) was deleted while the import ran."""


class ContactImporter:
    """Imports records into one call center of the store, a batch per transaction.

    ``check_in_worker``: check records in a second process (``None``: when the machine has more than
    one core and the import more than one batch; ``False``: always in this process).
    """

    def __init__(
        self,
        store: Store,
        call_center_id: str,
        region: str,
        *,
        batch_size: int = 5000,
        max_errors: int = 1000,
        progress: Progress | None = None,
        check_in_worker: bool | None = None,
    ) -> None:
        self.store = store
        self.call_center_id = call_center_id
        self.region = region
        self.batch_size = batch_size
        self.max_errors = max_errors
        self.progress = progress
        self.check_in_worker = _usable_cpus() > 1 if check_in_worker is None else check_in_worker
        self._accounts: dict[str, str] | None = None
        self._account_names: dict[str, str] = {}
        self._known_external_ids: set[str] | None = None
        self._checks_keys_per_batch: bool | None = None
        self._probes_external_ids = False

    async def run(self, records: Iterable[Record]) -> ImportReport:
        """Check and insert every record; ImportFormatError if the file itself cannot be read.

        Batches read before a format error are written first; the records of the batch it was found
        in are not.
        """
        report = ImportReport()
        started = time.perf_counter()
        seen_external: set[str] = set()
        # On PostgreSQL, once the call center's external ids and accounts are known, batch N+1 is made
        # ready (its duplicates rejected, its rows built) while batch N is being written in a task:
        # this process's work overlaps the server's COPY. Batches are still written one after the
        # other, in file order; progress is reported when a batch is written.
        writing: asyncio.Task[None] | None = None
        unreported: list[tuple[int, int]] = []
        try:
            async with aclosing(self._checked(records)) as batches:
                async for received, checked in batches:
                    report.received += received
                    for errors in checked.rejected:
                        self._reject(report, errors)
                    if checked.contacts and self._writes_behind():
                        ready = await self._prepare(self.store.engine, checked, seen_external, report)
                        task, writing = writing, None
                        if task is not None:
                            await task
                        self._report_progress(unreported)
                        writing = asyncio.create_task(self._insert_ready(ready, report))
                    elif checked.contacts:
                        task, writing = writing, None
                        if task is not None:
                            await task
                        await self._insert(checked, seen_external, report)
                    unreported.append((report.received, report.rejected))
                    if writing is None:
                        self._report_progress(unreported)
            task, writing = writing, None
            if task is not None:
                await task
            self._report_progress(unreported)
        except asyncio.CancelledError:
            if writing is not None:
                writing.cancel()
            raise
        except Exception:
            if writing is not None:
                await writing  # the batch before a format error is written, as without the task
            raise
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

    async def _checked(self, records: Iterable[Record]) -> AsyncGenerator[tuple[int, CheckedChunk], None]:
        """(records read, what checking them found) a batch at a time, in file order."""
        # A CSV file's rows go to the worker as their lines' text or lists of values (cheaper to read and
        # send than dicts).
        csv_rows = records if isinstance(records, CsvRecords) and self.check_in_worker else None
        source: Iterator[tuple[int, Any]] = iter(records) if csv_rows is None else csv_rows.rows_or_lines()
        batch = await self._read_batch(source)
        if not self.check_in_worker or len(batch) < self.batch_size:
            while batch:
                if csv_rows is not None:
                    batch = records_of(csv_rows.columns, batch)
                yield len(batch), await self._check_here(batch)
                batch = await self._read_batch(source)
            return
        # Fork: the worker has every module already (spawn would import the caller's main module)
        # and only ever runs check_pickled.
        executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        ready: asyncio.Queue[tuple[int, asyncio.Future[bytes]] | BaseException | None]
        ready = asyncio.Queue(maxsize=IN_FLIGHT - 1)
        reader = asyncio.create_task(self._hand_to_worker(batch, source, csv_rows, executor, ready))
        try:
            while (item := await ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item  # after the batches read before it
                received, checking = item
                payload = await checking
                yield received, without_gc(functools.partial(decode_chunk, payload))
            await asyncio.to_thread(executor.shutdown)  # the worker is joined (its CPU time counted)
        finally:
            reader.cancel()
            executor.shutdown(wait=False, cancel_futures=True)

    async def _hand_to_worker(
        self,
        batch: list[tuple[int, Any]],
        source: Iterator[tuple[int, Any]],
        csv_rows: CsvRecords | None,
        executor: ProcessPoolExecutor,
        ready: asyncio.Queue[tuple[int, asyncio.Future[bytes]] | BaseException | None],
    ) -> None:
        """Read the batches and hand them to the worker, ahead of the writing (a task of its own).

        Batches travel pickled here, in the event loop's thread, rather than in the executor's helper
        threads: a pickle of a few thousand records is one C call that holds the GIL for milliseconds,
        which would stall the SQLite driver's thread once per row.
        """
        loop = asyncio.get_running_loop()
        try:
            while batch:
                payload = pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
                if csv_rows is None:
                    checking = loop.run_in_executor(
                        executor, check_pickled, self.call_center_id, self.region, payload
                    )
                else:
                    checking = loop.run_in_executor(
                        executor,
                        check_csv_pickled,
                        self.call_center_id,
                        self.region,
                        csv_rows.columns,
                        payload,
                    )
                await ready.put((len(batch), checking))
                batch = await self._read_batch(source)
        except Exception as exc:  # handed to the writer, raised there after the batches before it
            await ready.put(exc)
            return
        await ready.put(None)

    async def _read_batch(self, records: Iterator[tuple[int, Any]]) -> list[tuple[int, Any]]:
        # Reading is CPU work in the event loop's thread: it yields every YIELD_EVERY records so
        # calls keep being served during an import.
        batch: list[tuple[int, Any]] = []
        for record in records:
            batch.append(record)
            if len(batch) == self.batch_size:
                break
            if len(batch) % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        return batch

    async def _check_here(self, batch: list[Record]) -> CheckedChunk:
        """``check_chunk`` in this process, yielding to the event loop every YIELD_EVERY records."""
        found = check_chunk(self.call_center_id, self.region, batch[:YIELD_EVERY])
        for start in range(YIELD_EVERY, len(batch), YIELD_EVERY):
            await asyncio.sleep(0)
            more = check_chunk(self.call_center_id, self.region, batch[start : start + YIELD_EVERY])
            found.contacts.extend(more.contacts)
            found.phones.extend(more.phones)
            found.rejected.extend(more.rejected)
        return found

    def _reject(self, report: ImportReport, errors: list[RowError]) -> None:
        report.rejected += 1
        room = self.max_errors - len(report.errors)
        if room < len(errors):
            report.errors_truncated = True
        report.errors.extend(errors[: max(room, 0)])

    async def _existing_external_ids(self, connection: AsyncConnection, wanted: list[str]) -> set[str]:
        """Which of ``wanted`` the call center's contacts already use."""
        backend = connection.dialect.name
        if backend == "postgresql":
            # The call center's external ids are read once per import. Asked per batch, the planner
            # (its statistics taken before the import's rows) answers with a scan of every contact of
            # the call center, each batch slower than the last (~400 rows/s by 20,000 rows).
            if self._known_external_ids is None:
                found = await connection.execute(
                    EXTERNAL_IDS_OF_CALL_CENTER, {"call_center_id": self.call_center_id}
                )
                self._known_external_ids = set(found.scalars())
            return self._known_external_ids
        if not wanted:
            return set()
        if backend == "sqlite":
            found = await connection.execute(
                EXTERNAL_IDS_IN_SQLITE,
                {"call_center_id": self.call_center_id, "wanted": json.dumps(wanted)},
            )
            return set(found.scalars())
        existing: set[str] = set()
        for start in range(0, len(wanted), 500):
            query = select(Contact.external_id).where(
                Contact.call_center_id == self.call_center_id,
                Contact.external_id.in_(wanted[start : start + 500]),
            )
            existing.update(x for x in (await connection.execute(query)).scalars() if x)
        return existing

    async def _account_ids(self, connection: AsyncConnection) -> dict[str, str]:
        """The call center's accounts by case-folded name (read once per import)."""
        if self._accounts is None:
            query = select(Account.name, Account.id).where(Account.call_center_id == self.call_center_id)
            self._accounts = {name.casefold(): id_ for name, id_ in (await connection.execute(query)).all()}
            self._account_names = {}
        return self._accounts

    def _writes_behind(self) -> bool:
        """True when a batch can be made ready without the store: PostgreSQL (asyncpg) with the call
        center's external ids and accounts already read."""
        dialect = self.store.engine.dialect
        return (
            (dialect.name, dialect.driver) == ("postgresql", "asyncpg")
            and self._known_external_ids is not None
            and self._accounts is not None
        )

    def _report_progress(self, unreported: list[tuple[int, int]]) -> None:
        if self.progress is not None:
            for done, rejected in unreported:
                self.progress(done, rejected)
        unreported.clear()

    async def _insert(self, checked: CheckedChunk, seen: set[str], report: ImportReport) -> None:
        """Make a batch ready and write it, in one transaction (ids and accounts read in it).

        On SQLite the batch is first written without asking which of its external ids the call center
        already uses (an index probe per id, 1.6-2 us a row): the unique (call_center_id,
        external_id) index refuses a used one as it inserts. Only then is the transaction rolled back
        and the batch made ready again with the store's answer, its rows rejected as always; the
        rest of the import probes first (a file that repeats stored ids likely repeats more of them).
        """
        if self.store.engine.dialect.name == "sqlite" and not self._probes_external_ids:
            rejected, errors, truncated = report.rejected, len(report.errors), report.errors_truncated
            claimed: list[str] = []
            try:
                await self._insert_once(checked, seen, report, claimed)
                return
            except (sqlite3.IntegrityError, IntegrityError):
                self._probes_external_ids = True
                seen.difference_update(claimed)
                report.rejected, report.errors_truncated = rejected, truncated
                del report.errors[errors:]
        await self._insert_once(checked, seen, report, None)

    async def _insert_once(
        self, checked: CheckedChunk, seen: set[str], report: ImportReport, claimed: list[str] | None
    ) -> None:
        """``_insert``; ``claimed``: skip asking the store for the batch's external ids, and list there
        those the batch took into ``seen``."""
        try:
            async with self.store.engine.connect() as connection:
                sqlite_keys_off = await _sqlite_keys_off(connection)
                try:
                    async with connection.begin():
                        await prepare_for_bulk(connection)
                        existing: set[str] = set()
                        if claimed is None:
                            wanted = [row[1] for row in checked.contacts if row[1] is not None]
                            existing = await self._existing_external_ids(connection, wanted)
                        await self._account_ids(connection)
                        ready = await self._prepare(connection, checked, seen, report, existing)
                        if claimed is not None:
                            claimed.extend(row[3] for row in ready.contacts if row[3] is not None)
                        await self._write(connection, ready, sqlite_keys_off)
                finally:
                    if sqlite_keys_off:
                        await _sqlite_keys_on(connection)
        except Exception:
            self._accounts = None  # the accounts of this batch were not written after all
            raise
        self._count(ready, report)

    async def _insert_ready(self, ready: ReadyBatch, report: ImportReport) -> None:
        """Write a batch ``_prepare`` made ready outside a transaction (PostgreSQL, ``_writes_behind``)."""
        try:
            async with self.store.engine.begin() as connection:
                await self._write(connection, ready, False)
        except Exception:
            self._accounts = None
            raise
        self._count(ready, report)

    @staticmethod
    def _count(ready: ReadyBatch, report: ImportReport) -> None:
        report.imported += len(ready.contacts)
        report.phones += len(ready.phones)
        report.accounts_created += len(ready.new_accounts)

    async def _prepare(
        self,
        bind: AsyncConnection | AsyncEngine,
        checked: CheckedChunk,
        seen: set[str],
        report: ImportReport,
        existing: set[str] | None = None,
    ) -> ReadyBatch:
        """A batch's rows for the store: repeated external ids rejected, accounts found or made.

        ``existing``: the external ids the call center already uses (those read once per import when
        not given). Yields to the event loop every YIELD_EVERY records.
        """
        cc = self.call_center_id
        if existing is None:
            existing = self._known_external_ids or set()
        accounts = self._accounts
        assert accounts is not None  # read by _account_ids before
        used_accounts: set[str] = set()
        by_name = self._account_names  # exact name -> id, before case folding
        now = to_driver(bind, CONTACTS, "created_at", datetime.now(UTC))
        no_attributes = to_driver(bind, CONTACTS, "attributes", {})
        new_accounts: list[tuple[Any, ...]] = []
        contacts: list[tuple[Any, ...]] = []
        dropped: set[str] = set()
        for done, (
            line,
            external_id,
            account,
            contact_id,
            first,
            last,
            email,
            title,
            attributes,
        ) in enumerate(checked.contacts, start=1):
            if done % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if external_id is not None:
                if external_id in existing or external_id in seen:
                    self._reject(report, [RowError(line, "external_id", f"{external_id!r} already exists")])
                    dropped.add(contact_id)
                    continue
                seen.add(external_id)
            account_id = None
            if account:
                account_id = by_name.get(account)
                if account_id is None:
                    key = account.casefold()
                    account_id = accounts.get(key)
                    if account_id is None:
                        account_id = accounts[key] = time_ordered_id()
                        new_accounts.append(
                            (account_id, cc, account, None, "", "", "", no_attributes, now, now)
                        )
                    by_name[account] = account_id
                used_accounts.add(account_id)
            contacts.append(
                (
                    contact_id,
                    cc,
                    account_id,
                    external_id,
                    first,
                    last,
                    email,
                    title,
                    no_attributes
                    if attributes is None
                    else to_driver(bind, CONTACTS, "attributes", attributes),
                    now,
                    now,
                )
            )
        phones = checked.phones
        if dropped:
            phones = [phone for phone in phones if phone[1] not in dropped]
        return ReadyBatch(contacts, phones, new_accounts, used_accounts)

    async def _write(self, connection: AsyncConnection, ready: ReadyBatch, sqlite_keys_off: bool) -> None:
        """Insert a ready batch in ``connection``'s transaction."""
        contacts, phones, new_accounts, used_accounts = ready
        if await self._checks_keys_per_batch_on(connection):
            await self._lock_referenced(connection, used_accounts, new_accounts)
        await insert_driver_rows(connection, ACCOUNTS, ACCOUNT_COLUMNS, new_accounts)
        await insert_driver_rows(connection, CONTACTS, CONTACT_COLUMNS, contacts)
        await insert_driver_rows(connection, CONTACT_PHONES, PHONE_COLUMNS_ORDER, phones)
        if sqlite_keys_off:
            # After the inserts: the transaction holds SQLite's one write lock, so nothing it
            # checked can be deleted before it commits.
            await self._lock_referenced(connection, used_accounts, new_accounts)

    async def _checks_keys_per_batch_on(self, connection: AsyncConnection) -> bool:
        """On PostgreSQL, when the role may: the foreign keys of a batch are checked once per batch.

        PostgreSQL checks a foreign key with a trigger per inserted row (a query and a row lock each):
        a contact and two numbers cost six of them, twice the server time of the rows themselves.
        With ``session_replication_role = replica`` for the batch's transaction those triggers do not
        fire, and ``_lock_referenced`` takes what they would have checked and locked in two queries;
        a number's contact is a row of the same batch. Indexes, unique and check constraints apply as
        always. Roles that may not set the parameter keep the triggers.
        """
        if self._checks_keys_per_batch is None:
            allowed = False
            if connection.dialect.name == "postgresql" and connection.dialect.driver == "asyncpg":
                version = int((await connection.execute(text("SHOW server_version_num"))).scalar_one())
                query = MAY_SKIP_KEY_TRIGGERS[version >= 150000]
                allowed = bool((await connection.execute(query)).scalar_one())
            self._checks_keys_per_batch = allowed
        if self._checks_keys_per_batch:
            await connection.execute(text("SET LOCAL session_replication_role = replica"))
        return self._checks_keys_per_batch

    async def _lock_referenced(
        self, connection: AsyncConnection, used_accounts: set[str], new_accounts: list[tuple[Any, ...]]
    ) -> None:
        """Check and key-share lock the call center and the existing accounts the batch refers to."""
        sqlite = connection.dialect.name == "sqlite"
        query = SQLITE_CALL_CENTER if sqlite else LOCK_CALL_CENTER
        found = await connection.execute(query, {"id": self.call_center_id})
        if found.first() is None:
            raise ImportConflict(f"call center {self.call_center_id} was deleted during the import")
        existing = used_accounts.difference(row[0] for row in new_accounts)
        if existing:
            ids: Any = json.dumps(sorted(existing)) if sqlite else list(existing)
            found = await connection.execute(SQLITE_ACCOUNTS if sqlite else LOCK_ACCOUNTS, {"ids": ids})
            missing = existing.difference(found.scalars())
            if missing:
                raise ImportConflict(f"account {min(missing)} was deleted during the import")


async def _sqlite_keys_off(connection: AsyncConnection) -> bool:
    """On SQLite (aiosqlite): foreign keys off and rarer checkpoints for the batch about to be written.

    SQLite checks a foreign key with an index probe per row and key: a contact and two numbers cost
    six, a fifth of the batch's SQLite time. The batch checks what they would have itself
    (``_lock_referenced``; a number's contact is a row of the same batch). The pragma cannot change
    inside a transaction, so it is set before the batch's transaction begins and restored by
    ``_sqlite_keys_on`` once it has ended, before the connection goes back to the pool.
    """
    if (connection.dialect.name, connection.dialect.driver) != ("sqlite", "aiosqlite"):
        return False
    raw = (await connection.get_raw_connection()).driver_connection
    await raw.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    await raw.execute(f"PRAGMA wal_autocheckpoint={SQLITE_IMPORT_WAL_AUTOCHECKPOINT}")  # type: ignore[union-attr]
    return True


async def _sqlite_keys_on(connection: AsyncConnection) -> None:
    """Undo ``_sqlite_keys_off`` after the batch's transaction; a connection that cannot is dropped."""
    try:
        raw = (await connection.get_raw_connection()).driver_connection
        await raw.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
        await raw.execute("PRAGMA wal_autocheckpoint=1000")  # type: ignore[union-attr]
    except Exception:
        await connection.invalidate()
        raise
