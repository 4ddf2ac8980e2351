"""Model behaviour on both backends: aware UTC times, JSON columns, contacts with several numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection

from cti_server.store import Store
from cti_server.store.models import CallCenter, CallLog, Contact, ContactPhone


async def test_times_come_back_timezone_aware_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    async with store.session() as db:
        center = CallCenter(name="Alpha")
        db.add(center)
        await db.flush()
        db.add(
            CallLog(
                call_center_id=center.id,
                direction="inbound",
                started_at=datetime(2026, 1, 2, 10, 0, tzinfo=paris),
            )
        )
        await db.commit()
    async with store.session() as db:
        log = await db.scalar(select(CallLog))
        assert log is not None
        assert log.started_at == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
        assert log.started_at.tzinfo is not None and log.started_at.utcoffset() == timedelta(0)
        fetched = await db.scalar(select(CallCenter))
        assert fetched is not None and fetched.created_at.tzinfo is not None


async def test_naive_times_are_refused(store: Store) -> None:
    async with store.session() as db:
        center = CallCenter(name="Alpha")
        db.add(center)
        await db.flush()
        db.add(CallLog(call_center_id=center.id, direction="inbound", started_at=datetime(2026, 1, 2)))
        with pytest.raises(Exception, match="naive datetime"):
            await db.flush()


async def test_json_columns_round_trip(store: Store) -> None:
    rules = {"single_match": "record", "multiple_matches": "list", "no_match": "new_contact"}
    async with store.session() as db:
        db.add(CallCenter(name="Alpha", screen_pop_rules=rules))
        await db.commit()
    async with store.session() as db:
        center = await db.scalar(select(CallCenter))
        assert center is not None and center.screen_pop_rules == rules


async def test_a_contact_has_several_numbers_and_each_finds_it(store: Store) -> None:
    async with store.session() as db:
        center = CallCenter(name="Alpha")
        db.add(center)
        await db.flush()
        carol, dave = (
            Contact(call_center_id=center.id, first_name="Carol"),
            Contact(call_center_id=center.id, first_name="Dave"),
        )
        db.add_all([carol, dave])
        await db.flush()
        db.add_all(
            [
                ContactPhone(
                    call_center_id=center.id, contact_id=carol.id, number="+14155550100", kind="work"
                ),
                ContactPhone(
                    call_center_id=center.id, contact_id=carol.id, number="+14155550101", kind="mobile"
                ),
                ContactPhone(
                    call_center_id=center.id, contact_id=dave.id, number="+14155550101", kind="home"
                ),
            ]
        )
        await db.commit()
        query = (
            select(Contact.first_name)
            .join(ContactPhone, ContactPhone.contact_id == Contact.id)
            .where(ContactPhone.call_center_id == center.id)
            .order_by(Contact.first_name)
        )
        assert (await db.scalars(query.where(ContactPhone.number == "+14155550100"))).all() == ["Carol"]
        assert (await db.scalars(query.where(ContactPhone.number == "+14155550101"))).all() == [
            "Carol",
            "Dave",
        ]


def _lookup_index_columns(connection: Connection) -> list[str]:
    indexes = inspect(connection).get_indexes("contact_phones")
    found = [i for i in indexes if i["name"] == "ix_contact_phones_lookup"]
    return [str(c) for c in found[0]["column_names"]] if found else []


async def test_phone_lookup_uses_the_covering_index(store: Store) -> None:
    async with store.engine.connect() as connection:
        assert await connection.run_sync(_lookup_index_columns) == ["call_center_id", "number", "contact_id"]
        if store.is_sqlite:
            plan = (
                await connection.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT contact_id FROM contact_phones "
                        "WHERE call_center_id = 'x' AND number = '+14155550100'"
                    )
                )
            ).all()
            assert "COVERING INDEX ix_contact_phones_lookup" in " ".join(str(row[-1]) for row in plan)


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_store: Store) -> None:
    async with sqlite_store.engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
