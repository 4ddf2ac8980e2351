"""Contact imports checked in a worker process or in this one store the same rows and report the same
errors; a PostgreSQL import checks its foreign keys once per batch where the role may."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import select

from cti_server.screenpop.importer import (
    ContactImporter,
    ImportConflict,
    ImportFormatError,
    read_records,
)
from cti_server.store import Store
from cti_server.store.models import Account, CallCenter, Contact, ContactPhone
from tests.screenpop.fixtures import make_call_center


def mixed_csv(rows: int) -> str:
    lines = ["first_name,last_name,email,mobile,work_phone,account,external_id,tier"]
    for i in range(rows):
        email = "broken" if i % 9 == 4 else f"p{i}@example.org"
        mobile = "12" if i % 11 == 5 else f"+1917555{i:04d}"
        external = f"ext-{i % 40}"  # rows 40.. repeat the ids of rows 0..
        account = ["Acme", "acme", "Initech", ""][i % 4]
        tier = "gold" if i % 3 == 0 else ""
        lines.append(f"P{i},Q{i},{email},{mobile},(212) 555-{i:04d},{account},{external},{tier}")
    return "\n".join(lines) + "\n"


async def stored(store: Store, center: CallCenter) -> set[tuple[Any, ...]]:
    """Every contact of ``center`` with its account name, attributes and numbers (ids left out)."""
    async with store.session() as db:
        contacts = (await db.scalars(select(Contact).where(Contact.call_center_id == center.id))).all()
        query = select(Account.id, Account.name).where(Account.call_center_id == center.id)
        accounts = {id_: name for id_, name in (await db.execute(query)).all()}
        phones: dict[str, set[tuple[str, str, str]]] = {}
        for phone in await db.scalars(select(ContactPhone).where(ContactPhone.call_center_id == center.id)):
            phones.setdefault(phone.contact_id, set()).add((phone.number, phone.kind, phone.raw))
    return {
        (
            c.external_id,
            c.first_name,
            c.email,
            accounts.get(c.account_id or ""),
            json.dumps(c.attributes, sort_keys=True),
            frozenset(phones.get(c.id, ())),
        )
        for c in contacts
    }


async def test_worker_and_in_process_checks_import_the_same(store: Store) -> None:
    body = mixed_csv(90).encode()
    found = []
    progress: list[list[tuple[int, int]]] = []
    for in_worker in (True, False):
        center = await make_call_center(store)
        progress.append([])
        importer = ContactImporter(
            store,
            center.id,
            "US",
            batch_size=7,
            check_in_worker=in_worker,
            progress=lambda done, rejected: progress[-1].append((done, rejected)),
        )
        report = await importer.run(read_records(body, "text/csv"))
        found.append((center, {k: v for k, v in report.to_dict().items() if k != "elapsed_s"}))
    (worker_center, by_worker), (here_center, here) = found
    assert by_worker == here
    # once per batch, in file order, with the rejections up to that batch (on PostgreSQL a batch is
    # made ready while the one before is written)
    assert progress[0] == progress[1] == [
        (7, 2), (14, 3), (21, 4), (28, 6), (35, 7), (42, 10), (49, 15),
        (56, 21), (63, 26), (70, 33), (77, 40), (84, 46), (90, 52),
    ]  # fmt: skip
    assert here["received"] == 90 and here["imported"] == 38 and here["accounts_created"] == 2
    assert {e["field"] for e in here["errors"]} == {"email", "mobile", "external_id"}
    rows = await stored(store, worker_center)
    assert rows == await stored(store, here_center) and len(rows) == 38
    assert (
        "ext-6",
        "P6",
        "p6@example.org",
        "Initech",
        '{"tier": "gold"}',
        frozenset({("+19175550006", "mobile", "+19175550006"), ("+12125550006", "work", "(212) 555-0006")}),
    ) in rows


async def test_odd_csv_rows_are_read_the_same_by_the_worker(store: Store) -> None:
    body = "first_name,,mobile\n" + "".join(
        "a,b,c,d\n" if i % 5 == 0 else ("\n" if i % 7 == 0 else f"N{i},skipped,+1917555{i:04d}\n")
        for i in range(40)
    )
    reports = []
    for in_worker in (True, False):
        center = await make_call_center(store)
        importer = ContactImporter(store, center.id, "US", batch_size=6, check_in_worker=in_worker)
        report = (await importer.run(read_records(body, "text/csv"))).to_dict()
        reports.append({k: v for k, v in report.items() if k != "elapsed_s"})
    assert reports[0] == reports[1]
    assert reports[0]["received"] == 36 and reports[0]["rejected"] == 8
    assert reports[0]["errors"][0] == {"line": 2, "field": "record", "reason": "4 fields for 3 columns"}


async def test_a_format_error_keeps_the_batches_read_before_it(store: Store) -> None:
    center = await make_call_center(store)
    text = "[\n" + ",\n".join(json.dumps({"first_name": f"J{i}"}) for i in range(25)) + ",\n{oops\n]"
    importer = ContactImporter(store, center.id, "US", batch_size=10, check_in_worker=True)
    with pytest.raises(ImportFormatError) as info:
        await importer.run(read_records(text, "application/json"))
    assert info.value.line == 27
    assert len(await stored(store, center)) == 20  # the third batch was being read: not written


async def test_foreign_keys_are_checked_once_per_batch(store: Store) -> None:
    center = await make_call_center(store)
    importer = ContactImporter(store, center.id, "US", batch_size=4)
    report = await importer.run(read_records(mixed_csv(12).encode(), "text/csv"))
    assert report.imported == 10 and report.accounts_created == 2
    # the test databases' role is a superuser: it may set session_replication_role; SQLite turns its
    # foreign keys off per batch and back on after it
    assert importer._checks_keys_per_batch is (store.url.get_backend_name() == "postgresql")
    await assert_sqlite_settings_restored(store)
    async with store.engine.begin() as connection:
        await importer._lock_referenced(connection, set(), [])  # the call center is there
        with pytest.raises(ImportConflict, match="account gone"):
            await importer._lock_referenced(connection, {"gone"}, [])
        await importer._lock_referenced(connection, {"new"}, [("new",)])  # created by the batch
    gone = await make_call_center(store)
    async with store.session() as db:
        await db.delete(await db.get(CallCenter, gone.id))
        await db.commit()
    orphan = ContactImporter(store, gone.id, "US", batch_size=4)
    with pytest.raises(ImportConflict, match="call center"):
        await orphan.run(read_records(mixed_csv(3).encode(), "text/csv"))
    await assert_sqlite_settings_restored(store)
    assert await stored(store, gone) == set()


async def assert_sqlite_settings_restored(store: Store) -> None:
    """Every pooled SQLite connection has its foreign keys on and the default checkpoint interval."""
    if store.url.get_backend_name() != "sqlite":
        return
    async with store.engine.connect() as first, store.engine.connect() as second:
        for connection in (first, second):
            assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
            assert (await connection.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one() == 1000


@pytest.mark.parametrize(
    "text",
    [
        "a,b\n1,2\n\n,\n3,4\r\n5,6\r7,8",
        'first_name,last_name\nx,y\n,,\n  ,\nq"r,s\nt,u\n"multi\nline",v\nw,x\n',
        "a,b\n1,2\n3\x004\n5,6\n",
        "a,b\n1,2,3\nx,\n",
        "a,,b\n1,2,3\n4,5,6\n",
        "a,b\n" + "x" * 200_000 + ",y\n1,2\n",
        "\ufeffA,B\r\n1,2\r\n\r\n3,4",
        'a,b\n1,2\n"open\n',
    ],
)
def test_csv_lines_sent_as_text_make_the_same_records(text: str) -> None:
    """Rows handed to the worker as their line's text (until the first quote) read as the file does:
    the same records, line numbers and format errors."""
    from cti_server.screenpop.import_rows import read_csv, records_of

    def as_read(records: Any) -> Any:
        return [(line, dict(record)) for line, record in records]

    try:
        expected: Any = as_read(read_csv(io.StringIO(text, newline="")))
    except ImportFormatError as exc:
        expected = (exc.line, exc.reason)
    reader = read_csv(io.StringIO(text, newline=""))
    try:
        rows = list(reader.rows_or_lines())  # reads the header first
        found: Any = as_read(records_of(reader.columns, rows))
    except ImportFormatError as exc:
        found = (exc.line, exc.reason)
    assert found == expected


async def test_a_reimport_rejects_the_stored_external_ids_by_line(store: Store) -> None:
    """Ids the store already has, ids repeated in the file and bad rows, in batches that mix them:
    the same report on both stores (SQLite learns of stored ids from its unique index and writes the
    batch again; PostgreSQL reads them before the first batch)."""
    center = await make_call_center(store)
    first = await ContactImporter(store, center.id, "US", batch_size=5).run(
        read_records(mixed_csv(20).encode(), "text/csv")
    )
    assert first.imported == 16 and first.accounts_created == 2
    progress: list[tuple[int, int]] = []
    importer = ContactImporter(
        store,
        center.id,
        "US",
        batch_size=6,
        progress=lambda done, rejected: progress.append((done, rejected)),
    )
    again = await importer.run(read_records(mixed_csv(60).encode(), "text/csv"))
    assert (again.received, again.imported, again.rejected, again.accounts_created) == (60, 20, 40, 0)
    # the first six rows are stored (one batch refused whole by the index), later ones repeat them
    by_line = [e.line for e in again.errors if e.field == "external_id"]
    assert by_line[:4] == [2, 3, 4, 5] and by_line == sorted(by_line)
    assert progress == [
        (6, 6),
        (12, 12),
        (18, 18),
        (24, 21),
        (30, 22),
        (36, 23),
        (42, 26),
        (48, 30),
        (54, 35),
        (60, 40),
    ]
    assert len(await stored(store, center)) == 36
    # a batch with a repeat inside the file before a stored id: each reported once, in line order
    tail = "first_name,external_id\nA,ext-70\nB,ext-71\nC,ext-70\nD,ext-1\nE,ext-72\n"
    mixed = await ContactImporter(store, center.id, "US", batch_size=4).run(read_records(tail, "text/csv"))
    assert [(e.line, e.field) for e in mixed.errors] == [(4, "external_id"), (5, "external_id")]
    assert (mixed.imported, mixed.rejected) == (3, 2)
    await assert_sqlite_settings_restored(store)
