"""Call-center scoping lives in the ORM: a tenant session never reads or writes another call center's rows."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import delete, func, select, update

from cti_server.store import ScopeViolation, Store
from cti_server.store.models import (
    ApiKey,
    CallCenter,
    CallLog,
    Contact,
    ContactPhone,
    Did,
    Membership,
    User,
)


@dataclass
class TwoCenters:
    alpha: str
    beta: str


@pytest.fixture
async def two(store: Store) -> TwoCenters:
    async with store.session() as db:
        alpha, beta = CallCenter(name="Alpha"), CallCenter(name="Beta", phone_region="GB")
        db.add_all([alpha, beta])
        await db.flush()
        for center, digit in ((alpha, "1"), (beta, "2")):
            user = User(username=f"agent-{center.name}", role="agent")
            contact = Contact(call_center_id=center.id, first_name=center.name)
            db.add_all([user, contact])
            await db.flush()
            db.add_all(
                [
                    Membership(user_id=user.id, call_center_id=center.id),
                    Did(call_center_id=center.id, number=f"+1555000000{digit}"),
                    ContactPhone(call_center_id=center.id, contact_id=contact.id, number="+15550001234"),
                    CallLog(
                        call_center_id=center.id,
                        direction="inbound",
                        customer_number="+15550001234",
                        contact_id=contact.id,
                    ),
                    ApiKey(call_center_id=center.id, prefix=f"prefix{digit}", key_hash="0" * 64),
                ]
            )
        db.add(User(username="admin", role="admin"))
        await db.commit()
        return TwoCenters(alpha.id, beta.id)


async def test_selects_see_only_the_sessions_call_center(store: Store, two: TwoCenters) -> None:
    for own in (two.alpha, two.beta):
        async with store.tenant_session(own) as db:
            for model in (Did, Contact, ContactPhone, CallLog, ApiKey, Membership):
                rows = (await db.scalars(select(model))).all()
                assert [r.call_center_id for r in rows] == [own], model.__name__
            assert [c.id for c in (await db.scalars(select(CallCenter))).all()] == [own]
            users = (await db.scalars(select(User))).all()
            assert len(users) == 1 and users[0].username.startswith("agent-")
            # Aggregates and joins are filtered too.
            assert await db.scalar(select(func.count()).select_from(Did)) == 1
            joined = (
                await db.execute(
                    select(Contact.first_name, ContactPhone.number).join(
                        ContactPhone, ContactPhone.contact_id == Contact.id
                    )
                )
            ).all()
            assert len(joined) == 1
            # Fetching by primary key a row of the other call center finds nothing.
            other = two.beta if own == two.alpha else two.alpha
            assert await db.scalar(select(CallCenter).where(CallCenter.id == other)) is None
            assert await db.get(CallCenter, other) is None
            other_did = await _unscoped_did_id(store, other)
            assert await db.get(Did, other_did) is None


async def test_updates_and_deletes_touch_only_the_sessions_call_center(store: Store, two: TwoCenters) -> None:
    async with store.tenant_session(two.alpha) as db:
        await db.execute(update(Did).values(description="mine"))
        await db.execute(delete(CallLog))
        await db.commit()
    async with store.session() as db:
        descriptions = dict((await db.execute(select(Did.call_center_id, Did.description))).all())
        assert descriptions == {two.alpha: "mine", two.beta: ""}
        assert (await db.scalars(select(CallLog.call_center_id))).all() == [two.beta]


async def test_inserts_are_stamped_with_and_limited_to_the_sessions_call_center(
    store: Store, two: TwoCenters
) -> None:
    async with store.tenant_session(two.alpha) as db:
        contact = Contact(first_name="New")
        db.add(contact)
        await db.flush()
        assert contact.call_center_id == two.alpha
        db.add(Contact(first_name="Intruder", call_center_id=two.beta))
        with pytest.raises(ScopeViolation):
            await db.flush()


async def test_moving_a_row_to_another_call_center_is_refused(store: Store, two: TwoCenters) -> None:
    async with store.tenant_session(two.alpha) as db:
        did = await db.scalar(select(Did))
        assert did is not None
        did.call_center_id = two.beta
        with pytest.raises(ScopeViolation):
            await db.flush()


async def test_a_user_in_no_call_center_sees_nothing(store: Store, two: TwoCenters) -> None:
    async with store.tenant_session(None) as db:
        for model in (Did, Contact, CallLog, User, CallCenter):
            assert (await db.scalars(select(model))).all() == [], model.__name__


async def test_the_unscoped_session_sees_everything(store: Store, two: TwoCenters) -> None:
    async with store.session() as db:
        assert await db.scalar(select(func.count()).select_from(Did)) == 2
        assert await db.scalar(select(func.count()).select_from(User)) == 3


async def _unscoped_did_id(store: Store, call_center_id: str) -> str:
    async with store.session() as db:
        did_id = await db.scalar(select(Did.id).where(Did.call_center_id == call_center_id))
    assert did_id is not None
    return did_id
