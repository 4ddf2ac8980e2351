"""What the CRM routes (contacts, accounts, cases, call logs, webhooks, imports) share: whose call center
a request works in, paging, the 404 for a record of another call center, and time formatting.

Reads go through ``db_session(request)`` (scoped to the principal's call center by the store itself);
writes name their call center with ``target_call_center``: the principal's own, or for an admin (who
belongs to none) the ``call_center_id`` of the body or query string, which is then required.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import web
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti_server.api.auth import principal_of
from cti_server.api.errors import api_error
from cti_server.api.openapi import QueryParameter
from cti_server.store.models import CallCenter

MAX_PAGE = 1000
DEFAULT_PAGE = 100

CRM_ROLES = ("admin", "supervisor", "agent", "integrator")
"""Who may read and write contacts, accounts, cases and call logs."""
MANAGER_ROLES = ("admin", "supervisor", "integrator")
"""Who may delete CRM records, import them and manage webhooks."""

PAGE_PARAMETERS = (
    QueryParameter("limit", f"most records returned (1-{MAX_PAGE})", {"type": "integer"}),
    QueryParameter("offset", "records skipped", {"type": "integer"}),
)
CALL_CENTER_PARAMETER = QueryParameter(
    "call_center_id", "admins only: the call center to work in (others always work in their own)"
)

_M = TypeVar("_M")


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text of an aware time, or None."""
    return value.isoformat() if value is not None else None


def page(request: web.Request) -> tuple[int, int]:
    """``limit`` and ``offset`` of the query string; 400 naming the field when out of range."""
    values = []
    for name, default, low, high in (("limit", DEFAULT_PAGE, 1, MAX_PAGE), ("offset", 0, 0, 10**9)):
        raw = request.query.get(name)
        try:
            value = default if raw is None else int(raw)
        except ValueError:
            raise api_error(400, "must be an integer", field=name) from None
        if not low <= value <= high:
            raise api_error(400, f"must be {low}-{high}", field=name)
        values.append(value)
    return values[0], values[1]


async def fetch_page(
    db: AsyncSession,
    query: Select[_M],
    order_by: tuple[Any, ...],
    limit: int,
    offset: int,
) -> tuple[int, list[_M]]:
    """The total count of ``query``'s rows and the page of them ordered by ``order_by``."""
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = (await db.scalars(query.order_by(*order_by).limit(limit).offset(offset))).all()
    return total, list(rows)


async def target_call_center(
    request: web.Request, db: AsyncSession, body: dict[str, Any] | None = None
) -> CallCenter:
    """The call center a write (or an admin's lookup) works in; 400/404 naming ``call_center_id``."""
    principal = principal_of(request)
    wanted = (body or {}).get("call_center_id") or request.query.get("call_center_id")
    if principal.call_center_id is not None:
        if wanted and wanted != principal.call_center_id:
            raise api_error(403, "you may only work in your own call center", field="call_center_id")
        wanted = principal.call_center_id
    elif not wanted:
        raise api_error(
            400, "is required for an admin (admins are in no call center)", field="call_center_id"
        )
    if not isinstance(wanted, str):
        raise api_error(400, "must be a string", field="call_center_id")
    center = await db.get(CallCenter, wanted)
    if center is None:
        raise api_error(404, "no such call center", field="call_center_id")
    return center


async def get_scoped(db: AsyncSession, model: type[_M], record_id: str, what: str) -> _M:
    """The record by id through a scoped session (another call center's record is simply not found)."""
    found = await db.get(model, record_id)
    if found is None:
        raise api_error(404, f"no such {what}")
    return found


def number_param(request: web.Request, name: str = "number") -> str:
    """A phone-number query parameter with a literal ``+`` kept.

    Form encoding turns ``?number=+14155550100`` into a space; integrators rarely write ``%2B``, so a
    leading ``+`` in the raw query string stays a ``+`` here (later ones are spaces).
    """
    for pair in request.rel_url.raw_query_string.split("&"):
        key, _, value = pair.partition("=")
        if unquote(key) == name:
            text = unquote(value)
            # Only a leading + belongs to the number; a + further on is an encoded space.
            return (text[:1] + text[1:].replace("+", " ")).strip()
    return ""
