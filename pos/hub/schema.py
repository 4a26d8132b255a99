"""The hub's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Timestamps are fixed-width UTC ISO strings, as in the terminal's journal: they sort
as text on both engines and survive a round trip unchanged. Amounts are integer
minor units beside their currency. The migrations in ``pos/hub/migrations`` build
exactly these tables (a test compares the migrated database with this metadata).

Everything two hub processes must agree on lives here: sessions, sign-in and
enrolment rate limits, one-time codes, the pending KYB search, the Particeep
outbox with its leases, and the webhook replay cache.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

TS = String(32)  # "2026-01-02T03:04:05.123456+00:00"
KYB_STATES = ("unverified", "queued", "pending", "verified", "rejected", "not_found",
              "retry", "billing", "error")

merchants = Table(
    "merchants", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("registration_no", String(100), nullable=False),
    Column("kyb_status", String(20), nullable=False, server_default="unverified"),
    Column("kyb_message", Text),
    Column("kyb_batch_id", String(100)),
    Column("kyb_submitted_at", TS),
    Column("kyb_next_at", TS),
    Column("kyb_lease_until", TS),
    Column("kyb_attempts", Integer, nullable=False, server_default="0"),
    Column("kyb_business_name", String(200)),
    Column("kyb_registration_no", String(100)),
    Column("kyb_verified_at", TS),
    Column("kyb_data_json", Text),
    Column("created_at", TS, nullable=False),
    CheckConstraint("kyb_status IN ('" + "','".join(KYB_STATES) + "')", name="kyb_status"),
)

shops = Table(
    "shops", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("merchant_id", Integer, ForeignKey("merchants.id"), nullable=False),
    Column("name", String(200), nullable=False),
    UniqueConstraint("merchant_id", "name"),
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("merchant_id", Integer, ForeignKey("merchants.id"), nullable=False),
    Column("shop_id", Integer, ForeignKey("shops.id")),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(300), nullable=False),
    Column("role", String(20), nullable=False),
    Column("created_at", TS, nullable=False),
    CheckConstraint("role IN ('owner', 'supervisor')", name="role"),
    CheckConstraint("role = 'owner' OR shop_id IS NOT NULL", name="supervisor_has_shop"),
)

sessions = Table(
    "sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
)

rate_limits = Table(
    "rate_limits", metadata,
    Column("key", String(200), primary_key=True),
    Column("window_start", TS, nullable=False),
    Column("hits", Integer, nullable=False),
)

enrol_codes = Table(
    "enrol_codes", metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("merchant_id", Integer, ForeignKey("merchants.id"), nullable=False),
    Column("shop_id", Integer, ForeignKey("shops.id"), nullable=False),
    Column("terminal_name", String(64), nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("used_at", TS),
)

terminals = Table(
    "terminals", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("merchant_id", Integer, ForeignKey("merchants.id"), nullable=False),
    Column("shop_id", Integer, ForeignKey("shops.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("key_id", String(32), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("enrolled_at", TS, nullable=False),
    Column("last_seen_at", TS),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    Column("link", String(200)),
    Column("online", Boolean),
    Column("unsynced_count", Integer, nullable=False, server_default="0"),
    Column("unsynced_json", Text),
    Column("flagged_count", Integer, nullable=False, server_default="0"),
    Column("float_json", Text),
    Column("receipt_no", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("merchant_id", "name"),
)

txns = Table(
    "txns", metadata,
    Column("terminal_id", Integer, ForeignKey("terminals.id"), primary_key=True),
    Column("ref", String(40), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("state", String(32), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("tender", String(8), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("card_no", String(32)),
    Column("card_last4", String(4)),
    Column("meter", String(32)),
    Column("account", String(64)),
    Column("customer_name", String(200)),
    Column("receipt_number", BigInteger),
    Column("flagged", Boolean, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("settled_at", TS),
    Column("seq", BigInteger, nullable=False),
    Column("data_json", Text, nullable=False),
    CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
    Index(None, "created_at"),
    Index(None, "terminal_id", "created_at"),
    Index(None, "ref"),
    Index(None, "card_no"),
    Index(None, "card_last4"),
    Index(None, "meter"),
    Index(None, "account"),
    Index(None, "flagged", "terminal_id"),
)

events = Table(
    "events", metadata,
    Column("terminal_id", Integer, ForeignKey("terminals.id"), primary_key=True),
    Column("event_id", BigInteger, primary_key=True, autoincrement=False),
    Column("ref", String(40), nullable=False),
    Column("at", TS, nullable=False),
    Column("from_state", String(32)),
    Column("to_state", String(32), nullable=False),
    Column("note", Text),
    Column("error", Text),
    Column("operator", String(64)),
    Column("received_at", TS, nullable=False),
    Index(None, "terminal_id", "ref"),
)

z_reports = Table(
    "z_reports", metadata,
    Column("terminal_id", Integer, ForeignKey("terminals.id"), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("created_at", TS, nullable=False),
    Column("payload_json", Text, nullable=False),
)

particeep_outbox = Table(
    "particeep_outbox", metadata,
    Column("terminal_id", Integer, ForeignKey("terminals.id"), primary_key=True),
    Column("ref", String(40), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("particeep_id", String(64)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", TS, nullable=False),
    Column("lease_until", TS),
    Column("last_error", Text),
    Column("created_at", TS, nullable=False),
    Column("confirmed_at", TS),
    CheckConstraint("status IN ('pending', 'sent', 'confirmed', 'failed')", name="status"),
    Index(None, "status", "next_at"),
)

webhook_seen = Table(
    "webhook_seen", metadata,
    Column("key", String(64), primary_key=True),
    Column("event", String(100), nullable=False),
    Column("entity_id", String(64)),
    Column("received_at", TS, nullable=False),
    Column("outcome", String(200), nullable=False),
)

# The counter's own tables (issue 13), uploaded like transactions (issue 12): a basket
# sale with its lines (in data_json) and tender parts, the shifts (drawer sessions) and
# the cash moves. Keyed on (terminal, the terminal's id); a sale or shift row is replaced
# only by an upload at least as new (``seq``), as transactions are.
sales = Table(
    "sales", metadata,
    Column("terminal_id", Integer, ForeignKey("terminals.id"), primary_key=True),
    Column("sale_id", String(40), primary_key=True),
    Column("shift_id", BigInteger),
    Column("state", String(16), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subtotal_minor", BigInteger, nullable=False),
    Column("discount_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("receipt_number", BigInteger),
    Column("created_at", TS, nullable=False),
    Column("completed_at", TS),
    Column("seq", BigInteger, nullable=False),
    Column("data_json", Text, nullable=False),
    CheckConstraint("total_minor >= 0", name="total_not_negative"),
    Index(None, "completed_at"),
    Index(None, "terminal_id", "shift_id"),
)

sale_tenders = Table(
    "sale_tenders", metadata,
    Column("terminal_id", Integer, ForeignKey("terminals.id"), primary_key=True),
    Column("tender_id", BigInteger, primary_key=True, autoincrement=False),
    Column("sale_id", String(40), nullable=False),
    Column("shift_id", BigInteger),
    Column("tender", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("tendered_minor", BigInteger, nullable=False),
    Column("change_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("txn_ref", String(40)),
    Column("operator", String(64), nullable=False),
    Column("at", TS, nullable=False),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    Index(None, "at"),
    Index(None, "terminal_id", "shift_id"),
    Index(None, "terminal_id", "sale_id"),
    Index(None, "terminal_id", "txn_ref"),
)

shifts = Table(
    "shifts", metadata,
    Column("terminal_id", Integer, ForeignKey("terminals.id"), primary_key=True),
    Column("shift_id", BigInteger, primary_key=True, autoincrement=False),
    Column("operator", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("float_minor", BigInteger, nullable=False),
    Column("opened_at", TS, nullable=False),
    Column("closed_at", TS),
    Column("closed_by", String(64)),
    Column("counted_minor", BigInteger),
    Column("expected_minor", BigInteger),
    Column("report_json", Text),
    Column("seq", BigInteger, nullable=False),
    CheckConstraint("float_minor >= 0", name="float_not_negative"),
    Index(None, "opened_at"),
    Index(None, "terminal_id", "closed_at"),
)

cash_moves = Table(
    "cash_moves", metadata,
    Column("terminal_id", Integer, ForeignKey("terminals.id"), primary_key=True),
    Column("move_id", BigInteger, primary_key=True, autoincrement=False),
    Column("shift_id", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", Text, nullable=False),
    Column("operator", String(64), nullable=False),
    Column("ref", String(40)),
    Column("at", TS, nullable=False),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    CheckConstraint("kind IN ('in', 'out', 'refund', 'collected')", name="kind"),
    Index(None, "at"),
    Index(None, "terminal_id", "shift_id"),
)
