"""``cti-server admin import FILE --call-center NAME``: bulk-load contacts with a progress bar on stderr.

Registered into ``cti-server admin`` by cti_server/admin_cli.py (``register_admin``). The file is CSV, a
JSON array or JSON lines (by extension: ``.csv``, ``.json``, ``.jsonl``/``.ndjson``; ``--format`` to
say otherwise). The summary goes to stdout; each bad row (line, field, reason) to stderr, or to a CSV
file with ``--errors FILE``. Exit status: 0 when the file was read (even with bad rows), 1 when it
could not be (unreadable, unknown call center, store down).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import or_, select
from sqlalchemy.exc import DBAPIError

from cti_server.config import load_config
from cti_server.logs import configure_logging
from cti_server.screenpop.importer import (
    ContactImporter,
    ImportFormatError,
    ImportReport,
    read_csv,
    read_json,
)
from cti_server.store import Store
from cti_server.store.models import CallCenter

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json"}
SHOWN_ERRORS = 20


class ProgressBar:
    """A one-line progress bar redrawn in place on a terminal (plain lines every 10% otherwise)."""

    def __init__(self, total: int | None, stream: TextIO, width: int = 30) -> None:
        self.total = total
        self.stream = stream
        self.width = width
        self.started = time.perf_counter()
        self.tty = stream.isatty()
        self._last_decile = -1

    def update(self, done: int, rejected: int) -> None:
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        if self.total:
            share = min(done / self.total, 1.0)
            filled = int(share * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            line = f"[{bar}] {share:4.0%} {done:,}/{self.total:,} rows  {rate:,.0f} rows/s  {rejected:,} bad"
            decile = int(share * 10)
        else:
            line = f"{done:,} rows  {rate:,.0f} rows/s  {rejected:,} bad"
            decile = done // 10000
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
        elif decile != self._last_decile:
            self.stream.write(line + "\n")
        self._last_decile = decile
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def count_records(path: Path, kind: str) -> int | None:
    """Roughly how many records the file holds (lines; minus the header for CSV), None for a JSON array."""
    with path.open("rb") as handle:
        head = handle.read(64).lstrip()
        handle.seek(0)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    if kind == "json" and head.startswith(b"["):
        return None
    return max(lines - 1, 0) if kind == "csv" else lines


async def import_file(
    store: Store, path: Path, call_center: str, kind: str, batch_size: int, max_errors: int, stderr: TextIO
) -> ImportReport:
    """Import ``path`` into ``call_center`` (name or id); raises LookupError / ImportFormatError."""
    async with store.engine.connect() as connection:
        row = (
            await connection.execute(
                select(CallCenter.id, CallCenter.phone_region).where(
                    or_(CallCenter.id == call_center, CallCenter.name == call_center)
                )
            )
        ).first()
    if row is None:
        raise LookupError(f"no call center named {call_center!r}")
    bar = ProgressBar(count_records(path, kind), stderr)
    importer = ContactImporter(
        store, row.id, row.phone_region, batch_size=batch_size, max_errors=max_errors, progress=bar.update
    )
    try:
        if kind == "csv":
            with path.open(encoding="utf-8-sig", newline="") as handle:
                return await importer.run(read_csv(handle))
        return await importer.run(read_json(await asyncio.to_thread(path.read_text, encoding="utf-8-sig")))
    finally:
        bar.finish()


def _write_errors(report: ImportReport, errors_path: Path | None, stderr: TextIO) -> None:
    if errors_path is not None:
        with errors_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["line", "field", "reason"])
            writer.writerows((e.line, e.field, e.reason) for e in report.errors)
        return
    for error in report.errors[:SHOWN_ERRORS]:
        stderr.write(f"line {error.line}: {error.field}: {error.reason}\n")
    if report.rejected and len(report.errors) > SHOWN_ERRORS:
        stderr.write(f"... {len(report.errors) - SHOWN_ERRORS} more (use --errors FILE for all)\n")


def _command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(config.log)
    path: Path = args.file
    kind = args.format or FORMATS.get(path.suffix.lower())
    if kind is None:
        sys.stderr.write(
            f"cti-server admin import: cannot tell the format of {path}; use --format csv|json\n"
        )
        return 1
    if not path.is_file():
        sys.stderr.write(f"cti-server admin import: no such file: {path}\n")
        return 1
    settings = config.screenpop

    async def main() -> ImportReport:
        store = Store(config.store)
        try:
            await store.open()
            return await import_file(
                store,
                path,
                args.call_center,
                kind,
                args.batch_size or settings.import_batch_size,
                max(settings.import_max_errors, 100000 if args.errors else settings.import_max_errors),
                sys.stderr,
            )
        finally:
            await store.close()

    try:
        report = asyncio.run(main())
    except ImportFormatError as exc:
        sys.stderr.write(f"cti-server admin import: {path}: line {exc.line}: {exc.reason}\n")
        return 1
    except (LookupError, UnicodeDecodeError, DBAPIError, OSError) as exc:
        sys.stderr.write(f"cti-server admin import: {exc}\n")
        return 1
    _write_errors(report, args.errors, sys.stderr)
    sys.stdout.write(
        f"imported {report.imported:,} of {report.received:,} contacts ({report.rejected:,} rejected, "
        f"{report.phones:,} numbers, {report.accounts_created:,} new accounts) in {report.elapsed_s:.1f} s, "
        f"{report.rows_per_second:,.0f} rows/s\n"
    )
    return 0


def register_admin(commands: Subparsers) -> None:
    """Add ``cti-server admin import``."""
    p = commands.add_parser(
        "import",
        help="import contacts from a CSV or JSON file into a call center",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path, help="contacts: .csv, .json (array) or .jsonl")
    p.add_argument("--call-center", required=True, help="name or id of the call center")
    p.add_argument("--format", choices=("csv", "json"), help="override the format the extension implies")
    p.add_argument("--batch-size", type=int, default=0, help="rows per insert batch (default from config)")
    p.add_argument("--errors", type=Path, help="write every bad row (line, field, reason) to this CSV file")
    p.add_argument("--config", type=Path, default=None, help="TOML file (default config/cti-server.toml)")
    p.set_defaults(func=_command)
