"""Every table of the store, imported in one place so ``Base.metadata`` is complete (alembic reads it)."""

from cti_server.store.audit import AuditEntry
from cti_server.store.base import Base, CallCenterScoped
from cti_server.store.crm import Account, CallLog, Case, Contact, ContactPhone
from cti_server.store.integrations import (
    ApiKey,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
    WebSession,
)
from cti_server.store.tenancy import CallCenter, Did, Membership, Role, User

__all__ = [
    "Account",
    "ApiKey",
    "AuditEntry",
    "Base",
    "CallCenter",
    "CallCenterScoped",
    "CallLog",
    "Case",
    "Contact",
    "ContactPhone",
    "Did",
    "Membership",
    "Role",
    "User",
    "WebSession",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
]
