"""Contacts REST API: CRUD of the people who call, each with several phone numbers in E.164.

Numbers are normalized with the call center's phone region (``020 7946 0018`` in a GB call center is
``+442079460018``), so the screen pop finds the contact whichever way the caller's number arrives. A bad
number is a 400 naming it: ``{"error": "...", "field": "phones[1].number"}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti_server.api.auth import db_session, principal_of, requires
from cti_server.api.crm_scope import (
    CALL_CENTER_PARAMETER,
    CRM_ROLES,
    MANAGER_ROLES,
    PAGE_PARAMETERS,
    fetch_page,
    get_scoped,
    iso,
    number_param,
    page,
    target_call_center,
)
from cti_server.api.errors import api_error
from cti_server.api.openapi import QueryParameter, documented
from cti_server.api.validation import Schema, read_body
from cti_server.screenpop.directory import display_name
from cti_server.screenpop.phone import PhoneNumberError, normalize_number
from cti_server.store.models import Account, CallCenter, Contact, ContactPhone

routes = web.RouteTableDef()
TAG = ("contacts",)

PHONE_KINDS = ["mobile", "work", "home", "other"]
PHONE_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "number": {"type": "string", "minLength": 1, "maxLength": 64},
        "kind": {"type": "string", "enum": PHONE_KINDS},
    },
    "required": ["number"],
    "additionalProperties": False,
}
_FIELDS: dict[str, Schema] = {
    "first_name": {"type": "string", "maxLength": 120},
    "last_name": {"type": "string", "maxLength": 120},
    "email": {"type": "string", "maxLength": 254, "format": "email"},
    "title": {"type": "string", "maxLength": 120},
    "external_id": {"type": ["string", "null"], "maxLength": 120},
    "account_id": {"type": ["string", "null"], "maxLength": 36},
    "attributes": {"type": "object"},
    "phones": {"type": "array", "items": PHONE_SCHEMA, "maxItems": 20},
}
CONTACT_CREATE: Schema = {
    "type": "object",
    "properties": {**_FIELDS, "call_center_id": {"type": "string"}},
    "additionalProperties": False,
}
CONTACT_UPDATE: Schema = {"type": "object", "properties": _FIELDS, "additionalProperties": False}
CONTACT: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "call_center_id": {"type": "string"},
        "display_name": {"type": "string"},
        **_FIELDS,
        "phones": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "number": {"type": "string"},
                    "kind": {"type": "string"},
                    "raw": {"type": "string"},
                },
            },
        },
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
CONTACT_LIST: Schema = {
    "type": "object",
    "properties": {"contacts": {"type": "array", "items": CONTACT}, "total": {"type": "integer"}},
}


def contact_json(contact: Contact, phones: list[ContactPhone]) -> dict[str, Any]:
    """JSON of a contact with its phone numbers."""
    return {
        "id": contact.id,
        "call_center_id": contact.call_center_id,
        "display_name": display_name(contact.first_name, contact.last_name, contact.email),
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "email": contact.email,
        "title": contact.title,
        "external_id": contact.external_id,
        "account_id": contact.account_id,
        "attributes": contact.attributes,
        "phones": [{"number": p.number, "kind": p.kind, "raw": p.raw} for p in phones],
        "created_at": iso(contact.created_at),
        "updated_at": iso(contact.updated_at),
    }


async def _phones_of(db: AsyncSession, contact_ids: list[str]) -> dict[str, list[ContactPhone]]:
    found: dict[str, list[ContactPhone]] = {cid: [] for cid in contact_ids}
    if contact_ids:
        rows = await db.scalars(
            select(ContactPhone).where(ContactPhone.contact_id.in_(contact_ids)).order_by(ContactPhone.id)
        )
        for phone in rows:
            found[phone.contact_id].append(phone)
    return found


def _normalized_phones(body: dict[str, Any], region: str) -> list[tuple[str, str, str]]:
    phones = []
    for index, item in enumerate(body.get("phones") or []):
        try:
            number = normalize_number(item["number"], region)
        except PhoneNumberError as exc:
            raise api_error(
                400, f"not a phone number: {exc.reason}", field=f"phones[{index}].number"
            ) from None
        phones.append((number, item.get("kind", "other"), item["number"].strip()))
    return phones


async def _check_account(db: AsyncSession, account_id: Any) -> None:
    if account_id is not None and await db.get(Account, account_id) is None:
        raise api_error(400, "no such account in this call center", field="account_id")


async def _check_external_id(
    db: AsyncSession, call_center_id: str, external_id: Any, own_id: str | None
) -> None:
    if not external_id:
        return
    query = select(Contact.id).where(
        Contact.call_center_id == call_center_id, Contact.external_id == external_id
    )
    existing = (await db.execute(query)).scalar()
    if existing is not None and existing != own_id:
        raise api_error(409, "another contact has this external_id", field="external_id")


@routes.get("/api/v1/contacts")
@documented(
    "List or search contacts",
    tags=TAG,
    query=(
        QueryParameter("number", "a phone number in any form; matched in E.164 on every number of a contact"),
        QueryParameter("q", "text found in the first name, last name or e-mail"),
        QueryParameter("account_id", "only contacts of this account"),
        *PAGE_PARAMETERS,
    ),
    response=CONTACT_LIST,
)
@requires(*CRM_ROLES)
async def list_contacts(request: web.Request) -> web.Response:
    """Contacts of the caller's call center (admins: every call center), newest first."""
    limit, offset = page(request)
    query = select(Contact)
    async with db_session(request) as db:
        number = number_param(request)
        if number:
            center = await _region_center(request, db)
            try:
                e164 = normalize_number(number, center)
            except PhoneNumberError as exc:
                raise api_error(400, exc.reason, field="number") from None
            query = query.where(
                Contact.id.in_(select(ContactPhone.contact_id).where(ContactPhone.number == e164))
            )
        text = request.query.get("q", "").strip()
        if text:
            like = f"%{text.lower()}%"
            query = query.where(
                or_(
                    func.lower(Contact.first_name).like(like),
                    func.lower(Contact.last_name).like(like),
                    func.lower(Contact.email).like(like),
                )
            )
        if request.query.get("account_id"):
            query = query.where(Contact.account_id == request.query["account_id"])
        total, contacts = await fetch_page(db, query, (Contact.created_at.desc(), Contact.id), limit, offset)
        phones = await _phones_of(db, [c.id for c in contacts])
    return web.json_response({"contacts": [contact_json(c, phones[c.id]) for c in contacts], "total": total})


async def _region_center(request: web.Request, db: AsyncSession) -> str:
    """The phone region to read a searched number in: the principal's call center's (admins: given or US)."""
    principal = principal_of(request)
    if principal.call_center_id is None and not request.query.get("call_center_id"):
        return "US"
    return (await target_call_center(request, db)).phone_region


@routes.post("/api/v1/contacts")
@documented(
    "Create a contact",
    tags=TAG,
    query=(CALL_CENTER_PARAMETER,),
    request=CONTACT_CREATE,
    response=CONTACT,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
@requires(*CRM_ROLES)
async def create_contact(request: web.Request) -> web.Response:
    """Create a contact; numbers are stored in E.164 read with the call center's region."""
    body = await read_body(request, CONTACT_CREATE)
    if not (body.get("first_name") or body.get("last_name") or body.get("email")):
        raise api_error(400, "a contact needs a first name, last name or e-mail", field="first_name")
    async with db_session(request) as db:
        center = await target_call_center(request, db, body)
        phones = _normalized_phones(body, center.phone_region)
        await _check_account(db, body.get("account_id"))
        await _check_external_id(db, center.id, body.get("external_id"), None)
        contact = Contact(
            call_center_id=center.id,
            first_name=body.get("first_name", ""),
            last_name=body.get("last_name", ""),
            email=body.get("email", ""),
            title=body.get("title", ""),
            external_id=body.get("external_id") or None,
            account_id=body.get("account_id"),
            attributes=body.get("attributes") or {},
        )
        db.add(contact)
        await db.flush()
        rows = [
            ContactPhone(call_center_id=center.id, contact_id=contact.id, number=n, kind=k, raw=r)
            for n, k, r in phones
        ]
        db.add_all(rows)
        await db.commit()
        return web.json_response(contact_json(contact, rows), status=201)


@routes.get("/api/v1/contacts/{contact_id}")
@documented("Get a contact", tags=TAG, response=CONTACT, errors=(401, 403, 404))
@requires(*CRM_ROLES)
async def get_contact(request: web.Request) -> web.Response:
    """One contact of the caller's call center with its phone numbers."""
    async with db_session(request) as db:
        contact = await get_scoped(db, Contact, request.match_info["contact_id"], "contact")
        phones = await _phones_of(db, [contact.id])
    return web.json_response(contact_json(contact, phones[contact.id]))


@routes.patch("/api/v1/contacts/{contact_id}")
@documented(
    "Change a contact (phones, when given, replace the old ones)",
    tags=TAG,
    request=CONTACT_UPDATE,
    response=CONTACT,
    errors=(400, 401, 403, 404, 409),
)
@requires(*CRM_ROLES)
async def update_contact(request: web.Request) -> web.Response:
    """Change the given fields of a contact; ``phones`` replaces the whole list."""
    body = await read_body(request, CONTACT_UPDATE)
    async with db_session(request) as db:
        contact = await get_scoped(db, Contact, request.match_info["contact_id"], "contact")
        if "account_id" in body:
            await _check_account(db, body["account_id"])
        if "external_id" in body:
            await _check_external_id(db, contact.call_center_id, body["external_id"], contact.id)
        for name in ("first_name", "last_name", "email", "title", "external_id", "account_id", "attributes"):
            if name in body:
                setattr(contact, name, body[name] if name != "external_id" else (body[name] or None))
        if not (contact.first_name or contact.last_name or contact.email):
            raise api_error(400, "a contact needs a first name, last name or e-mail", field="first_name")
        if "phones" in body:
            center = await db.get(CallCenter, contact.call_center_id)
            phones = _normalized_phones(body, center.phone_region if center else "US")
            await db.execute(delete(ContactPhone).where(ContactPhone.contact_id == contact.id))
            db.add_all(
                ContactPhone(
                    call_center_id=contact.call_center_id, contact_id=contact.id, number=n, kind=k, raw=r
                )
                for n, k, r in phones
            )
        await db.commit()
        current = await _phones_of(db, [contact.id])
        return web.json_response(contact_json(contact, current[contact.id]))


@routes.delete("/api/v1/contacts/{contact_id}")
@documented("Delete a contact", tags=TAG, status=204, errors=(401, 403, 404))
@requires(*MANAGER_ROLES)
async def delete_contact(request: web.Request) -> web.Response:
    """Delete a contact and its numbers; its call logs stay, unlinked, findable by number."""
    async with db_session(request) as db:
        contact = await get_scoped(db, Contact, request.match_info["contact_id"], "contact")
        await db.delete(contact)
        await db.commit()
    return web.Response(status=204)
