"""Initial schema: call centers, users, roles, membership, DIDs, CRM records, credentials, webhooks, audit.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 05:59:48.805818
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cti_server.store.base

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=36), nullable=False),
        sa.Column("actor_name", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("call_center_id", sa.String(length=36), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_call_center_id"), ["call_center_id"], unique=False)

    op.create_table(
        "call_centers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("phone_region", sa.String(length=2), nullable=False),
        sa.Column("screen_pop_rules", sa.JSON(), nullable=False),
        sa.Column("recording_policy", sa.String(length=16), nullable=False),
        sa.Column("created_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_centers")),
        sa.UniqueConstraint("name", name=op.f("uq_call_centers_name")),
    )
    roles = op.create_table(
        "roles",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_roles")),
    )
    op.bulk_insert(
        roles,
        [
            {
                "name": "admin",
                "description": "manages call centers, users, DIDs and API keys; in no call center",
            },
            {"name": "supervisor", "description": "watches and steers the queues of one call center"},
            {"name": "agent", "description": "handles calls and work items in one call center"},
            {"name": "integrator", "description": "a system using the API and webhooks of one call center"},
        ],
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("external_id", sa.String(length=120), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("website", sa.String(length=200), nullable=False),
        sa.Column("industry", sa.String(length=80), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("call_center_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_center_id"],
            ["call_centers.id"],
            name=op.f("fk_accounts_call_center_id_call_centers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint(
            "call_center_id", "external_id", name=op.f("uq_accounts_call_center_id_external_id")
        ),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounts_call_center_id"), ["call_center_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("last_used_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("call_center_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_center_id"],
            ["call_centers.id"],
            name=op.f("fk_api_keys_call_center_id_call_centers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["role"], ["roles.name"], name=op.f("fk_api_keys_role_roles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_call_center_id"), ["call_center_id"], unique=False)

    op.create_table(
        "dids",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("created_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("call_center_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_center_id"],
            ["call_centers.id"],
            name=op.f("fk_dids_call_center_id_call_centers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dids")),
        sa.UniqueConstraint("number", name=op.f("uq_dids_number")),
    )
    with op.batch_alter_table("dids", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dids_call_center_id"), ["call_center_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("display_name", sa.String(length=120), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("sip_username", sa.String(length=80), nullable=True),
        sa.Column("sip_realm", sa.String(length=120), nullable=True),
        sa.Column("sip_ha1_md5", sa.String(length=32), nullable=True),
        sa.Column("sip_ha1_sha256", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["role"], ["roles.name"], name=op.f("fk_users_role_roles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("sip_username", name=op.f("uq_users_sip_username")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("call_center_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_center_id"],
            ["call_centers.id"],
            name=op.f("fk_webhook_subscriptions_call_center_id_call_centers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_subscriptions_call_center_id"), ["call_center_id"], unique=False
        )

    op.create_table(
        "call_center_members",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("assigned_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("assigned_by", sa.String(length=120), nullable=False),
        sa.Column("call_center_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_center_id"],
            ["call_centers.id"],
            name=op.f("fk_call_center_members_call_center_id_call_centers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_call_center_members_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_call_center_members")),
    )
    with op.batch_alter_table("call_center_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_call_center_members_call_center_id"), ["call_center_id"], unique=False
        )

    op.create_table(
        "contacts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.Column("external_id", sa.String(length=120), nullable=True),
        sa.Column("first_name", sa.String(length=120), nullable=False),
        sa.Column("last_name", sa.String(length=120), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("call_center_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_contacts_account_id_accounts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["call_center_id"],
            ["call_centers.id"],
            name=op.f("fk_contacts_call_center_id_call_centers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint(
            "call_center_id", "external_id", name=op.f("uq_contacts_call_center_id_external_id")
        ),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_contacts_call_center_id"), ["call_center_id"], unique=False)

    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "webhook_deliveries",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=120), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("call_center_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_center_id"],
            ["call_centers.id"],
            name=op.f("fk_webhook_deliveries_call_center_id_call_centers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_deliveries_subscription_id_webhook_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_call_center_id"), ["call_center_id"], unique=False
        )
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_subscription_id"), ["subscription_id"], unique=False
        )

    op.create_table(
        "cases",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=True),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.Column("owner_user_id", sa.String(length=36), nullable=True),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("created_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("call_center_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_cases_account_id_accounts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["call_center_id"],
            ["call_centers.id"],
            name=op.f("fk_cases_call_center_id_call_centers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_cases_contact_id_contacts"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["owner_user_id"], ["users.id"], name=op.f("fk_cases_owner_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("call_center_id", "number", name=op.f("uq_cases_call_center_id_number")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_call_center_id"), ["call_center_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_contact_id"), ["contact_id"], unique=False)

    op.create_table(
        "contact_phones",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("call_center_id", sa.String(length=36), nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("raw", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_center_id"],
            ["call_centers.id"],
            name=op.f("fk_contact_phones_call_center_id_call_centers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_contact_phones_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_phones")),
    )
    with op.batch_alter_table("contact_phones", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_phones_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(
            "ix_contact_phones_lookup", ["call_center_id", "number", "contact_id"], unique=False
        )

    op.create_table(
        "call_logs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("from_number", sa.String(length=64), nullable=False),
        sa.Column("to_number", sa.String(length=64), nullable=False),
        sa.Column("customer_number", sa.String(length=20), nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=True),
        sa.Column("case_id", sa.String(length=36), nullable=True),
        sa.Column("agent_user_id", sa.String(length=36), nullable=True),
        sa.Column("started_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", cti_server.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("disposition", sa.String(length=32), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("recording_url", sa.String(length=500), nullable=False),
        sa.Column("transcript_url", sa.String(length=500), nullable=False),
        sa.Column("screen_pop", sa.JSON(), nullable=False),
        sa.Column("call_center_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_user_id"],
            ["users.id"],
            name=op.f("fk_call_logs_agent_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["call_center_id"],
            ["call_centers.id"],
            name=op.f("fk_call_logs_call_center_id_call_centers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_call_logs_case_id_cases"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_call_logs_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_logs")),
    )
    with op.batch_alter_table("call_logs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_logs_call_center_id"), ["call_center_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_logs_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_logs_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_logs_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index("ix_call_logs_customer", ["call_center_id", "customer_number"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("call_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_call_logs_customer")
        batch_op.drop_index(batch_op.f("ix_call_logs_contact_id"))
        batch_op.drop_index(batch_op.f("ix_call_logs_case_id"))
        batch_op.drop_index(batch_op.f("ix_call_logs_call_id"))
        batch_op.drop_index(batch_op.f("ix_call_logs_call_center_id"))

    op.drop_table("call_logs")
    with op.batch_alter_table("contact_phones", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_phones_lookup")
        batch_op.drop_index(batch_op.f("ix_contact_phones_contact_id"))

    op.drop_table("contact_phones")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_contact_id"))
        batch_op.drop_index(batch_op.f("ix_cases_call_center_id"))
        batch_op.drop_index(batch_op.f("ix_cases_account_id"))

    op.drop_table("cases")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_subscription_id"))
        batch_op.drop_index("ix_webhook_deliveries_due")
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_call_center_id"))

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_user_id"))

    op.drop_table("web_sessions")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_call_center_id"))
        batch_op.drop_index(batch_op.f("ix_contacts_account_id"))

    op.drop_table("contacts")
    with op.batch_alter_table("call_center_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_center_members_call_center_id"))

    op.drop_table("call_center_members")
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_subscriptions_call_center_id"))

    op.drop_table("webhook_subscriptions")
    op.drop_table("users")
    with op.batch_alter_table("dids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dids_call_center_id"))

    op.drop_table("dids")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_call_center_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_call_center_id"))

    op.drop_table("accounts")
    op.drop_table("roles")
    op.drop_table("call_centers")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_call_center_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
