"""Initial schema of the hub (generated from pos.hub.schema, then frozen).

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("registration_no", sa.String(length=100), nullable=False),
        sa.Column("kyb_status", sa.String(length=20), server_default="unverified", nullable=False),
        sa.Column("kyb_message", sa.Text(), nullable=True),
        sa.Column("kyb_batch_id", sa.String(length=100), nullable=True),
        sa.Column("kyb_submitted_at", sa.String(length=32), nullable=True),
        sa.Column("kyb_next_at", sa.String(length=32), nullable=True),
        sa.Column("kyb_lease_until", sa.String(length=32), nullable=True),
        sa.Column("kyb_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("kyb_business_name", sa.String(length=200), nullable=True),
        sa.Column("kyb_registration_no", sa.String(length=100), nullable=True),
        sa.Column("kyb_verified_at", sa.String(length=32), nullable=True),
        sa.Column("kyb_data_json", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "kyb_status IN ('unverified','queued','pending','verified','rejected',"
            "'not_found','retry','billing','error')",
            name=op.f("ck_merchants_kyb_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
    )
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.String(length=32), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limits")),
    )
    op.create_table(
        "webhook_seen",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=100), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_webhook_seen")),
    )
    op.create_table(
        "shops",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_shops_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shops")),
        sa.UniqueConstraint("merchant_id", "name", name=op.f("uq_shops_merchant_id_name")),
    )
    op.create_table(
        "enrol_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("terminal_name", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.String(length=32), nullable=False),
        sa.Column("used_at", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_enrol_codes_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_enrol_codes_shop_id_shops")
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_enrol_codes")),
    )
    op.create_table(
        "terminals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("enrolled_at", sa.String(length=32), nullable=False),
        sa.Column("last_seen_at", sa.String(length=32), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("link", sa.String(length=200), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("unsynced_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unsynced_json", sa.Text(), nullable=True),
        sa.Column("flagged_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("float_json", sa.Text(), nullable=True),
        sa.Column("receipt_no", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_terminals_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name=op.f("fk_terminals_shop_id_shops")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terminals")),
        sa.UniqueConstraint("key_id", name=op.f("uq_terminals_key_id")),
        sa.UniqueConstraint("merchant_id", "name", name=op.f("uq_terminals_merchant_id_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "role = 'owner' OR shop_id IS NOT NULL", name=op.f("ck_users_supervisor_has_shop")
        ),
        sa.CheckConstraint("role IN ('owner', 'supervisor')", name=op.f("ck_users_role")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_users_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name=op.f("fk_users_shop_id_shops")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "events",
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("at", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_events_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("terminal_id", "event_id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_events_terminal_id_ref"), ["terminal_id", "ref"], unique=False
        )

    op.create_table(
        "particeep_outbox",
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("particeep_id", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_at", sa.String(length=32), nullable=False),
        sa.Column("lease_until", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("confirmed_at", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'confirmed', 'failed')",
            name=op.f("ck_particeep_outbox_status"),
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.id"],
            name=op.f("fk_particeep_outbox_terminal_id_terminals"),
        ),
        sa.PrimaryKeyConstraint("terminal_id", "ref", name=op.f("pk_particeep_outbox")),
    )
    with op.batch_alter_table("particeep_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_particeep_outbox_status_next_at"), ["status", "next_at"], unique=False
        )

    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sessions")),
    )
    op.create_table(
        "txns",
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tender", sa.String(length=8), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("card_no", sa.String(length=32), nullable=True),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("meter", sa.String(length=32), nullable=True),
        sa.Column("account", sa.String(length=64), nullable=True),
        sa.Column("customer_name", sa.String(length=200), nullable=True),
        sa.Column("receipt_number", sa.BigInteger(), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        sa.Column("settled_at", sa.String(length=32), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_txns_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_txns_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("terminal_id", "ref", name=op.f("pk_txns")),
    )
    with op.batch_alter_table("txns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_txns_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_txns_card_last4"), ["card_last4"], unique=False)
        batch_op.create_index(batch_op.f("ix_txns_card_no"), ["card_no"], unique=False)
        batch_op.create_index(batch_op.f("ix_txns_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_txns_flagged_terminal_id"), ["flagged", "terminal_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_txns_meter"), ["meter"], unique=False)
        batch_op.create_index(batch_op.f("ix_txns_ref"), ["ref"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_txns_terminal_id_created_at"),
            ["terminal_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "z_reports",
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("payload_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_z_reports_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("terminal_id", "number", name=op.f("pk_z_reports")),
    )


def downgrade() -> None:
    op.drop_table("z_reports")
    with op.batch_alter_table("txns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_txns_terminal_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_txns_ref"))
        batch_op.drop_index(batch_op.f("ix_txns_meter"))
        batch_op.drop_index(batch_op.f("ix_txns_flagged_terminal_id"))
        batch_op.drop_index(batch_op.f("ix_txns_created_at"))
        batch_op.drop_index(batch_op.f("ix_txns_card_no"))
        batch_op.drop_index(batch_op.f("ix_txns_card_last4"))
        batch_op.drop_index(batch_op.f("ix_txns_account"))

    op.drop_table("txns")
    op.drop_table("sessions")
    with op.batch_alter_table("particeep_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_particeep_outbox_status_next_at"))

    op.drop_table("particeep_outbox")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_terminal_id_ref"))

    op.drop_table("events")
    op.drop_table("users")
    op.drop_table("terminals")
    op.drop_table("enrol_codes")
    op.drop_table("shops")
    op.drop_table("webhook_seen")
    op.drop_table("rate_limits")
    op.drop_table("merchants")
