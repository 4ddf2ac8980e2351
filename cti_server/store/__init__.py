"""The CRM and directory store: SQLAlchemy 2 async models, the session factory and migrations.

``Store(config.store)`` owns the engine; ``store.session()`` is unscoped (system and admins),
``store.tenant_session(call_center_id)`` sees only one call center's rows. Tables are in
``cti_server.store.models``.
"""

from cti_server.store.audit import CLI_ACTOR, Actor, record_audit
from cti_server.store.component import StoreComponent
from cti_server.store.engine import ScopeViolation, Store
from cti_server.store.migrate import SchemaOutOfDate

__all__ = [
    "CLI_ACTOR",
    "Actor",
    "SchemaOutOfDate",
    "ScopeViolation",
    "Store",
    "StoreComponent",
    "record_audit",
]
