"""Contact imports REST API: ``POST /api/v1/imports/contacts`` with a CSV or JSON body.

Good rows are kept, bad ones reported by line with the field and the reason (the columns are listed in
cti_server/screenpop/importer.py). A body that cannot be read at all (no header, broken JSON array) is
a 400 naming its line, and nothing is imported.
"""

from __future__ import annotations

from aiohttp import web

from cti_server.api.auth import db_session, requires
from cti_server.api.crm_scope import CALL_CENTER_PARAMETER, MANAGER_ROLES, target_call_center
from cti_server.api.errors import api_error
from cti_server.api.keys import CONFIG_KEY, STORE_KEY
from cti_server.api.openapi import documented
from cti_server.api.validation import Schema
from cti_server.screenpop.importer import ContactImporter, ImportFormatError, read_records

routes = web.RouteTableDef()
READABLE_UNTYPED = ("text/plain", "application/octet-stream", "")

CONTACT_RECORD: Schema = {
    "type": "object",
    "description": "one contact; unknown keys go to its attributes",
    "properties": {
        "first_name": {"type": "string"},
        "last_name": {"type": "string"},
        "email": {"type": "string"},
        "title": {"type": "string"},
        "external_id": {"type": "string"},
        "account": {"type": "string", "description": "account name, matched or created"},
        "phone": {"type": "string"},
        "mobile": {"type": "string"},
        "work_phone": {"type": "string"},
        "home_phone": {"type": "string"},
        "phones": {
            "type": ["array", "string"],
            "description": "numbers separated by ';', or a list of numbers or {number, kind} objects",
        },
    },
}
IMPORT_BODY: Schema = {"type": "array", "items": CONTACT_RECORD}
CSV_BODY: Schema = {
    "type": "string",
    "description": "CSV with a header row naming the same columns as the JSON keys",
}
IMPORT_REPORT: Schema = {
    "type": "object",
    "properties": {
        "received": {"type": "integer"},
        "imported": {"type": "integer"},
        "rejected": {"type": "integer"},
        "phones": {"type": "integer"},
        "accounts_created": {"type": "integer"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "line": {"type": "integer"},
                    "field": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
        "errors_truncated": {"type": "boolean"},
        "elapsed_s": {"type": "number"},
    },
}


@routes.post("/api/v1/imports/contacts")
@documented(
    "Import contacts from CSV or JSON",
    tags=("imports",),
    query=(CALL_CENTER_PARAMETER,),
    request=IMPORT_BODY,
    request_media_types=("application/json", "application/x-ndjson", "text/csv"),
    response=IMPORT_REPORT,
    errors=(400, 401, 403, 404, 415),
)
@requires(*MANAGER_ROLES)
async def import_contacts(request: web.Request) -> web.Response:
    """Import the body's contacts into the caller's call center; returns counts and per-line errors."""
    content_type = request.content_type
    if not any(kind in content_type for kind in ("json", "csv")) and content_type not in READABLE_UNTYPED:
        raise api_error(415, "send text/csv, application/json or application/x-ndjson", field="Content-Type")
    async with db_session(request) as db:
        center = await target_call_center(request, db)
    data = await request.read()
    try:
        # Read the whole body first: a broken file is refused before any row is written.
        records = list(read_records(data, content_type))
    except ImportFormatError as exc:
        raise api_error(400, f"line {exc.line}: {exc.reason}", field="body") from None
    except UnicodeDecodeError:
        raise api_error(400, "the body is not UTF-8 text", field="body") from None
    config = request.app[CONFIG_KEY].screenpop
    importer = ContactImporter(
        request.app[STORE_KEY],
        center.id,
        center.phone_region,
        batch_size=config.import_batch_size,
        max_errors=config.import_max_errors,
    )
    report = await importer.run(records)
    return web.json_response(report.to_dict())
