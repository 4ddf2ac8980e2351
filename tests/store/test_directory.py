"""Directory operations: call centers, users, one call center per user, DIDs, cascades, audit entries."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cti_server.store import CLI_ACTOR, Actor, Store
from cti_server.store.directory import (
    add_did,
    assign,
    create_call_center,
    create_user,
    delete_call_center,
    delete_user,
    e164,
    get_call_center,
    unassign,
    update_call_center,
    update_user,
)
from cti_server.store.errors import Conflict, InvalidField, NotFound
from cti_server.store.models import AuditEntry, CallLog, Contact, ContactPhone, Did, Membership, User

ACTOR = Actor("user", "u-1", "ada")


async def test_a_user_is_in_at_most_one_call_center(store: Store) -> None:
    async with store.session() as db:
        alpha = await create_call_center(db, ACTOR, "Alpha")
        beta = await create_call_center(db, ACTOR, "Beta", "GB")
        bob = await create_user(db, ACTOR, "bob", "agent")
        assert await assign(db, ACTOR, bob, alpha) is None
        assert await assign(db, ACTOR, bob, beta) == alpha.id
        assert await assign(db, ACTOR, bob, beta) == beta.id  # already there: no change
        members = (await db.execute(select(Membership.user_id, Membership.call_center_id))).all()
        assert members == [(bob.id, beta.id)]
        assert await unassign(db, ACTOR, bob) == beta.id
        assert await unassign(db, ACTOR, bob) is None
        actions = (
            await db.scalars(
                select(AuditEntry.action).where(AuditEntry.target_id == bob.id).order_by(AuditEntry.id)
            )
        ).all()
        assert actions == ["user.create", "membership.assign", "membership.assign", "membership.unassign"]


async def test_the_membership_table_itself_refuses_a_second_call_center(store: Store) -> None:
    async with store.session() as db:
        alpha = await create_call_center(db, ACTOR, "Alpha")
        beta = await create_call_center(db, ACTOR, "Beta")
        bob = await create_user(db, ACTOR, "bob", "agent")
        db.add(Membership(user_id=bob.id, call_center_id=alpha.id))
        await db.commit()
    async with store.session() as db:
        db.add(Membership(user_id=bob.id, call_center_id=beta.id))
        with pytest.raises(IntegrityError):
            await db.flush()


async def test_admins_are_in_no_call_center(store: Store) -> None:
    async with store.session() as db:
        alpha = await create_call_center(db, ACTOR, "Alpha")
        root = await create_user(db, ACTOR, "root", "admin")
        with pytest.raises(InvalidField) as error:
            await assign(db, ACTOR, root, alpha)
        assert error.value.field == "user_id"
        bob = await create_user(db, ACTOR, "bob", "agent")
        await assign(db, ACTOR, bob, alpha)
        await update_user(db, ACTOR, bob, role="admin")
        assert await db.get(Membership, bob.id) is None


async def test_validation_names_the_field(store: Store) -> None:
    async with store.session() as db:
        for kwargs, field in (
            ({"name": " "}, "name"),
            ({"name": "X", "phone_region": "QQ"}, "phone_region"),
            ({"name": "X", "recording_policy": "maybe"}, "recording_policy"),
        ):
            with pytest.raises(InvalidField) as error:
                await create_call_center(db, ACTOR, **kwargs)  # type: ignore[arg-type]
            assert error.value.field == field
        with pytest.raises(InvalidField) as error:
            await create_user(db, ACTOR, "bob", "boss")
        assert error.value.field == "role"
        await create_call_center(db, ACTOR, "Alpha")
        with pytest.raises(Conflict):
            await create_call_center(db, ACTOR, "Alpha")
        call_center = await get_call_center(db, "Alpha")
        with pytest.raises(InvalidField):
            await update_call_center(db, ACTOR, call_center, colour="red")
        with pytest.raises(NotFound):
            await get_call_center(db, "Nowhere")


def test_e164_reads_local_numbers_with_the_region() -> None:
    assert e164("(415) 555-0100", "US") == "+14155550100"
    assert e164("020 7946 0000", "GB") == "+442079460000"
    assert e164("+44 20 7946 0000", "US") == "+442079460000"
    with pytest.raises(InvalidField):
        e164("12", "US")


async def test_dids_are_unique_across_call_centers(store: Store) -> None:
    async with store.session() as db:
        alpha = await create_call_center(db, ACTOR, "Alpha")
        beta = await create_call_center(db, ACTOR, "Beta", "GB")
        did = await add_did(db, ACTOR, beta, "020 7946 0000")
        assert did.number == "+442079460000"
        with pytest.raises(Conflict):
            await add_did(db, ACTOR, alpha, "+44 20 7946 0000")


async def test_deleting_a_call_center_cascades_to_its_records(store: Store) -> None:
    async with store.session() as db:
        alpha = await create_call_center(db, ACTOR, "Alpha")
        bob = await create_user(db, ACTOR, "bob", "agent")
        await assign(db, ACTOR, bob, alpha)
        await add_did(db, ACTOR, alpha, "+14155550100")
        contact = Contact(call_center_id=alpha.id, first_name="Carol")
        db.add(contact)
        await db.flush()
        db.add_all(
            [
                ContactPhone(call_center_id=alpha.id, contact_id=contact.id, number="+14155550199"),
                CallLog(call_center_id=alpha.id, direction="inbound", contact_id=contact.id),
            ]
        )
        await db.commit()
        await delete_call_center(db, ACTOR, alpha)
        db.expunge_all()
        for model in (Did, Contact, ContactPhone, CallLog, Membership):
            assert (await db.scalars(select(model))).all() == [], model.__name__
        # The user stays, unassigned; the audit log keeps the call center's history.
        assert (await db.scalars(select(User.username))).all() == ["bob"]
        history = (
            await db.scalars(
                select(AuditEntry.action).where(AuditEntry.call_center_id == alpha.id).order_by(AuditEntry.id)
            )
        ).all()
        assert history == ["call_center.create", "membership.assign", "did.create", "call_center.delete"]


async def test_deleting_a_contact_keeps_its_call_logs_unmatched(store: Store) -> None:
    async with store.session() as db:
        alpha = await create_call_center(db, ACTOR, "Alpha")
        contact = Contact(call_center_id=alpha.id, first_name="Carol")
        db.add(contact)
        await db.flush()
        db.add(
            CallLog(
                call_center_id=alpha.id,
                direction="inbound",
                contact_id=contact.id,
                customer_number="+14155550199",
            )
        )
        await db.commit()
        await db.delete(contact)
        await db.commit()
        db.expunge_all()
        log = await db.scalar(select(CallLog))
        assert log is not None and log.contact_id is None and log.customer_number == "+14155550199"


async def test_deleting_a_user_is_audited(store: Store) -> None:
    async with store.session() as db:
        bob = await create_user(db, CLI_ACTOR, "bob", "agent")
        await delete_user(db, ACTOR, bob)
        entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "user.delete"))
        assert entry is not None and entry.actor_name == "ada" and entry.details == {"username": "bob"}
