"""Contact imports: CSV and JSON with line numbers, per-field errors, good rows kept, on both stores."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from cti_server.screenpop.directory import StoreContactDirectory
from cti_server.screenpop.importer import (
    ContactImporter,
    ContactRow,
    ImportFormatError,
    RowError,
    check_record,
    read_csv,
    read_json,
    read_records,
)
from cti_server.store import Store
from cti_server.store.models import Account, CallCenter, Contact, ContactPhone
from tests.screenpop.fixtures import make_call_center

CSV_TEXT = (
    "first_name,last_name,email,mobile,work_phone,account,external_id,tier\n"
    "Ada,Lovelace,ada@example.com,(415) 555-0100,,Acme,crm-1,gold\n"
    'Bob,"Multi\nLine",bob@example.com,+14155550200,415-555-0201,acme,crm-2,\n'
    "Cy,,not-an-email,12,,,crm-3,\n"
    "\n"
    ",,,+14155550300,,,,\n"
    "Dee,Dup,dee@example.com,+14155550400,,,crm-1,\n"
)


def test_csv_records_carry_the_line_they_start_on() -> None:
    records = list(read_csv(CSV_TEXT.splitlines(keepends=True)))
    assert [line for line, _ in records] == [2, 3, 5, 7, 8]
    assert records[1][1]["last_name"] == "Multi\nLine"


def test_csv_without_header_or_with_a_repeated_column_is_refused() -> None:
    with pytest.raises(ImportFormatError) as info:
        list(read_csv([]))
    assert info.value.line == 1
    with pytest.raises(ImportFormatError) as info:
        list(read_csv(["phone,Phone\n"]))
    assert "twice" in info.value.reason


def test_csv_row_with_too_many_fields_is_a_bad_row() -> None:
    records = list(read_csv(["first_name\n", "a,b\n"]))
    assert check_record(*records[0], "US") == [RowError(2, "record", "2 fields for 1 columns")]


def test_json_array_records_carry_their_line() -> None:
    text = '[\n  {"first_name": "Ada"},\n  {"first_name": "Bob",\n   "email": "b@x.org"},\n  7\n]\n'
    records = list(read_json(text))
    assert [line for line, _ in records] == [2, 3, 5]
    assert records[2][1] == {"": "expected an object, got int"}


def test_broken_json_array_names_the_line() -> None:
    with pytest.raises(ImportFormatError) as info:
        list(read_json('[\n{"first_name": "Ada"},\n{"first_name": }\n]'))
    assert info.value.line == 3
    with pytest.raises(ImportFormatError):
        list(read_json('[{"first_name": "Ada"}'))


def test_json_lines_keep_going_past_a_bad_line() -> None:
    records = list(
        read_records(b'{"first_name": "A"}\n{oops\n\n{"first_name": "C"}\n', "application/x-ndjson")
    )
    assert [line for line, _ in records] == [1, 2, 4]
    errors = check_record(*records[1], "US")
    assert isinstance(errors, list) and errors[0].field == "record"


def test_unknown_content_type_is_refused() -> None:
    with pytest.raises(ImportFormatError):
        read_records(b"x", "application/pdf")


def test_check_record_normalizes_numbers_and_keeps_extra_columns() -> None:
    row = check_record(
        4,
        {
            "first_name": " Ada ",
            "mobile": "020 7946 0018",
            "phones": "+14155550100; +1 415 555 0101",
            "tier": "gold",
        },
        "GB",
    )
    assert isinstance(row, ContactRow)
    assert row.first_name == "Ada"
    assert [(n, k) for n, k, _ in row.phones] == [
        ("+442079460018", "mobile"),
        ("+14155550100", "other"),
        ("+14155550101", "other"),
    ]
    assert row.attributes == {"tier": "gold"}


def test_check_record_reports_every_bad_field() -> None:
    errors = check_record(
        9, {"email": "nope", "mobile": "12", "phones": [{"number": "+1", "kind": "fax"}]}, "US"
    )
    assert isinstance(errors, list)
    assert {(e.line, e.field) for e in errors} == {(9, "email"), (9, "mobile"), (9, "phones[0].kind")}
    assert check_record(1, {"title": "x"}, "US") == [
        RowError(1, "first_name", "a contact needs a first name, last name or e-mail")
    ]
    too_long = check_record(1, {"first_name": "x" * 121}, "US")
    assert isinstance(too_long, list) and too_long[0].field == "first_name"


async def _count(
    store: Store, center: CallCenter, model: type[Account] | type[Contact] | type[ContactPhone]
) -> int:
    async with store.session() as session:
        query = select(func.count()).select_from(model).where(model.call_center_id == center.id)
        return int((await session.execute(query)).scalar_one())


async def test_import_keeps_good_rows_and_reports_bad_ones(store: Store, call_center: CallCenter) -> None:
    progress: list[tuple[int, int]] = []
    importer = ContactImporter(
        store, call_center.id, "US", batch_size=2, progress=lambda d, r: progress.append((d, r))
    )
    report = await importer.run(read_records(CSV_TEXT.encode(), "text/csv"))
    assert (report.received, report.imported, report.rejected) == (5, 2, 3)
    assert {(e.line, e.field) for e in report.errors} == {
        (5, "email"),
        (5, "mobile"),
        (7, "first_name"),
        (8, "external_id"),
    }
    assert report.phones == 3 and report.accounts_created == 1  # "Acme" and "acme" are one account
    assert progress[-1] == (5, 3)
    assert await _count(store, call_center, Contact) == 2
    assert await _count(store, call_center, ContactPhone) == 3
    assert await _count(store, call_center, Account) == 1

    again = await ContactImporter(store, call_center.id, "US").run(
        read_records(CSV_TEXT.encode(), "text/csv")
    )
    assert again.imported == 0
    assert {e.line for e in again.errors if e.field == "external_id"} == {2, 3, 8}


async def test_imported_contacts_pop(store: Store, directory: StoreContactDirectory) -> None:
    from cti_server.config import config_from_mapping
    from cti_server.screenpop.lookup import ScreenPopLookup

    center = await make_call_center(store)
    rows = [{"first_name": f"P{i}", "phones": [f"+1415555{i:04d}"]} for i in range(300)]
    report = await ContactImporter(store, center.id, "US", batch_size=64).run(
        read_records(json.dumps(rows).encode(), "application/json")
    )
    assert report.imported == 300 and not report.errors
    lookup = ScreenPopLookup(directory, config_from_mapping({}).screenpop)
    pop = await lookup.lookup(center.id, "415 555 0123", publish=False)
    assert pop.outcome == "single" and pop.matches[0].display_name == "P123"


async def test_error_list_is_capped(store: Store, call_center: CallCenter) -> None:
    rows = [{"email": "bad"} for _ in range(10)]
    report = await ContactImporter(store, call_center.id, "US", max_errors=3).run(
        read_records(json.dumps(rows), "application/json")
    )
    assert report.rejected == 10 and len(report.errors) == 3 and report.errors_truncated


def test_imported_ids_are_uuid7_and_grow_with_time() -> None:
    import time as clock
    import uuid

    from cti_server.screenpop.importer import time_ordered_id

    first = time_ordered_id()
    clock.sleep(0.002)
    second = time_ordered_id()
    parsed = uuid.UUID(first)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and len(first) == 36
    assert first < second


def test_a_batch_gets_distinct_ascending_uuid7() -> None:
    import uuid

    from cti_server.screenpop.import_rows import time_ordered_ids

    ids = list(time_ordered_ids(2000))
    assert len(set(ids)) == 2000 and ids == sorted(ids)
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert all(str(uuid.UUID(i)) == i for i in ids)
    assert {i[19] for i in ids} == set("89ab")  # the two random bits after the variant vary
