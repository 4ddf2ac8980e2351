"""Screen-pop benchmark: lookup latency with 1,000,000 contacts, and contact import speed.

For each store (SQLite file, PostgreSQL database):

1. migrate a fresh store and bulk-load ``--contacts`` contacts (10% with a second number, one number in
   a thousand shared by two contacts) straight through ``cti_server.screenpop.bulk`` (COPY on
   PostgreSQL, executemany in one transaction on SQLite);
2. time ``--lookups`` lookups through the real ``ScreenPopLookup`` over ``StoreContactDirectory`` (the
   code a call runs): 80% hits, 20% misses, half written nationally (``(415) 555-0100``), half E.164;
3. import ``--import-rows`` CSV rows (two numbers and an account each) through ``ContactImporter``
   into a second call center of the same, already large, store.

Run: ``.venv/bin/python bench/screenpop_bench.py [--backend sqlite|postgresql|both]``. Figures and the
machine they came from are in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import asyncpg
import structlog
from sqlalchemy import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cti_server.config import StoreConfig, config_from_mapping
from cti_server.screenpop.bulk import bulk_insert, prepare_for_bulk
from cti_server.screenpop.directory import StoreContactDirectory
from cti_server.screenpop.importer import ContactImporter, read_csv, time_ordered_id
from cti_server.screenpop.lookup import ScreenPopLookup
from cti_server.store import Store
from cti_server.store.models import CallCenter, Contact, ContactPhone

PG_SERVER = "postgres@127.0.0.1:5432"


def progress(text: str) -> None:
    """A progress line on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def report(text: str) -> None:
    """A result line on stdout (what goes into bench/README.md)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


PG_DATABASE = "cti_screenpop_bench"
LOAD_BATCH = 50_000


def number_of(i: int) -> str:
    """The main number of contact ``i`` (every thousandth contact shares its neighbour's)."""
    j = i - 1 if i % 1000 == 999 else i
    return f"+1415{j:07d}" if j < 10_000_000 else f"+1628{j - 10_000_000:07d}"


async def bulk_load(store: Store, call_center_id: str, count: int) -> float:
    """Load ``count`` contacts with their numbers; returns seconds taken."""
    contacts_table = cast(Table, Contact.__table__)
    phones_table = cast(Table, ContactPhone.__table__)
    now = datetime.now(UTC)
    started = time.perf_counter()
    async with store.engine.begin() as connection:
        await prepare_for_bulk(connection)
        for start in range(0, count, LOAD_BATCH):
            contacts: list[dict[str, Any]] = []
            phones: list[dict[str, Any]] = []
            for i in range(start, min(start + LOAD_BATCH, count)):
                contact_id = time_ordered_id()
                contacts.append(
                    {
                        "id": contact_id,
                        "call_center_id": call_center_id,
                        "account_id": None,
                        "external_id": None,
                        "first_name": f"First{i}",
                        "last_name": f"Last{i}",
                        "email": f"c{i}@example.com",
                        "title": "",
                        "attributes": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                phones.append(
                    {
                        "call_center_id": call_center_id,
                        "contact_id": contact_id,
                        "number": number_of(i),
                        "kind": "mobile",
                        "raw": "",
                    }
                )
                if i % 10 == 0:
                    phones.append(
                        {
                            "call_center_id": call_center_id,
                            "contact_id": contact_id,
                            "number": f"+1650{i:07d}",
                            "kind": "work",
                            "raw": "",
                        }
                    )
            await bulk_insert(connection, contacts_table, contacts)
            await bulk_insert(connection, phones_table, phones)
            progress(f"  loaded {min(start + LOAD_BATCH, count):,}")
    if store.url.get_backend_name() == "postgresql":
        async with store.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute("ANALYZE contacts; ANALYZE contact_phones; ANALYZE accounts")  # type: ignore[union-attr]
    return time.perf_counter() - started


def callers(count: int, contacts: int, seed: int = 7) -> list[str]:
    """Caller ids to look up: 80% numbers of loaded contacts, 20% unknown; half national, half E.164."""
    rng = random.Random(seed)
    found = []
    for k in range(count):
        if rng.random() < 0.8:
            number = number_of(rng.randrange(contacts))
        else:
            number = f"+1212{rng.randrange(10_000_000):07d}"
        if k % 2:
            digits = number[2:]
            number = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
        found.append(number)
    return found


async def time_lookups(store: Store, call_center_id: str, count: int, contacts: int) -> dict[str, Any]:
    """p50/p99/max in milliseconds of ``count`` lookups through the real lookup code."""
    directory = StoreContactDirectory(store)
    lookup = ScreenPopLookup(directory, config_from_mapping({}).screenpop)
    for caller in callers(200, contacts, seed=1):  # warm the pool, the profile cache and the page cache
        await lookup.lookup(call_center_id, caller, publish=False)
    times: list[float] = []
    outcomes: dict[str, int] = {}
    cpu_started = time.process_time()
    for caller in callers(count, contacts):
        started = time.perf_counter()
        pop = await lookup.lookup(call_center_id, caller, publish=False)
        times.append((time.perf_counter() - started) * 1000)
        outcomes[pop.outcome] = outcomes.get(pop.outcome, 0) + 1
    cpu = time.process_time() - cpu_started
    await directory.close()
    times.sort()
    return {
        "cpu_us_per_lookup": round(cpu / count * 1e6),
        "lookups": count,
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[int(len(times) * 0.99) - 1], 3),
        "max_ms": round(times[-1], 3),
        "outcomes": outcomes,
        "late": lookup.stats["late"],
    }


def import_csv(rows: int) -> str:
    buffer = io.StringIO()
    buffer.write("first_name,last_name,email,mobile,work_phone,account,external_id\n")
    for i in range(rows):
        buffer.write(
            f"Im{i},Port{i},im{i}@example.org,+1917{i:07d},"
            f"(212) {200 + i // 10000 % 800:03d}-{i % 10000:04d},Account {i % 500},ext-{i}\n"
        )
    return buffer.getvalue()


def postgres_cpu() -> float:
    """CPU seconds so far of this host's PostgreSQL processes serving the benchmark database, and of
    its WAL writer, checkpointer and background writer (/proc; 0 where the server is elsewhere)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    wanted = (PG_DATABASE.encode(), b"walwriter", b"checkpointer", b"background writer")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read()
            if not command.startswith(b"postgres") or not any(w in command for w in wanted):
                continue
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def cpu_reference() -> float:
    """CPU seconds of a fixed 5M-iteration Python loop (about 0.3 s on an idle core): the yardstick
    to read this run's CPU-per-row figures against another machine's or another load's."""
    started = time.process_time()
    total = 0
    for i in range(5_000_000):
        total += i
    return time.process_time() - started


def children_cpu() -> float:
    """CPU seconds of this process's ended child processes (the importer's checking worker)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def time_import(store: Store, rows: int) -> dict[str, Any]:
    async with store.session() as db:
        center = CallCenter(name=f"import-{uuid.uuid4().hex[:8]}", phone_region="US")
        db.add(center)
        await db.commit()
    text = import_csv(rows)
    importer = ContactImporter(store, center.id, "US", batch_size=5000)
    cpu_started, worker_started, server_started = time.process_time(), children_cpu(), postgres_cpu()
    result = await importer.run(read_csv(io.StringIO(text, newline="")))
    cpu = time.process_time() - cpu_started
    worker = children_cpu() - worker_started  # the checking worker process, joined by run()
    server = postgres_cpu() - server_started
    return {
        "cpu_us_per_row": round((cpu + worker) / rows * 1e6),
        "worker_cpu_us_per_row": round(worker / rows * 1e6),
        "server_cpu_us_per_row": round(server / rows * 1e6),
        "rows": rows,
        "imported": result.imported,
        "rejected": result.rejected,
        "seconds": round(result.elapsed_s, 2),
        "rows_per_s": round(result.rows_per_second),
    }


async def fresh_postgres() -> str:
    connection = await asyncpg.connect(f"postgresql://{PG_SERVER}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    finally:
        await connection.close()
    return f"postgresql+asyncpg://{PG_SERVER}/{PG_DATABASE}"


async def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    url = await fresh_postgres() if backend == "postgresql" else f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    store = Store(StoreConfig(url=url, pool_size=5))
    await store.open(migrate=True)
    try:
        async with store.session() as db:
            center = CallCenter(name="bench", phone_region="US")
            db.add(center)
            await db.commit()
        progress(f"{backend}: loading {args.contacts:,} contacts")
        load_s = await bulk_load(store, center.id, args.contacts)
        progress(f"{backend}: {args.lookups:,} lookups")
        lookups = await time_lookups(store, center.id, args.lookups, args.contacts)
        progress(f"{backend}: importing {args.import_rows:,} rows")
        imported = await time_import(store, args.import_rows)
        return {
            "backend": backend,
            "contacts": args.contacts,
            "bulk_load_s": round(load_s, 1),
            "bulk_load_rows_per_s": round(args.contacts / load_s),
            "lookup": lookups,
            "import": imported,
        }
    finally:
        await store.close()
        if backend == "postgresql" and not args.keep:
            connection = await asyncpg.connect(f"postgresql://{PG_SERVER}/postgres")
            await connection.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
            await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database afterwards")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    report(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}, cpu_reference_s {cpu_reference():.3f}"
    )
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="screenpop-bench-") as tmp:
        for backend in backends:
            result = await run_backend(backend, args, Path(tmp))
            lookup, imported = result["lookup"], result["import"]
            report(
                f"{backend}: {result['contacts']:,} contacts bulk-loaded in {result['bulk_load_s']} s "
                f"({result['bulk_load_rows_per_s']:,} contacts/s)"
            )
            report(
                f"{backend}: lookup p50 {lookup['p50_ms']} ms, p99 {lookup['p99_ms']} ms, "
                f"max {lookup['max_ms']} ms over {lookup['lookups']:,} lookups {lookup['outcomes']}, "
                f"late {lookup['late']}, client CPU {lookup['cpu_us_per_lookup']} us/lookup"
            )
            report(
                f"{backend}: import {imported['imported']:,}/{imported['rows']:,} rows in "
                f"{imported['seconds']} s = {imported['rows_per_s']:,} rows/s, client CPU "
                f"{imported['cpu_us_per_row']} us/row, of which the checking worker "
                f"{imported['worker_cpu_us_per_row']} us/row; PostgreSQL server CPU "
                f"{imported['server_cpu_us_per_row']} us/row (load average now {os.getloadavg()[0]:.2f})"
            )


if __name__ == "__main__":
    asyncio.run(main())
