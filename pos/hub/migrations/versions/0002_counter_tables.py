"""The counter's tables: basket sales with their tender parts, shifts, cash moves (issue 12).

Generated from pos.hub.schema, then frozen.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cash_moves",
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("move_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("shift_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=True),
        sa.Column("at", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "kind IN ('in', 'out', 'refund', 'collected')", name=op.f("ck_cash_moves_kind")
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_cash_moves_amount_positive")),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_cash_moves_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("terminal_id", "move_id", name=op.f("pk_cash_moves")),
    )
    with op.batch_alter_table("cash_moves", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cash_moves_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_cash_moves_terminal_id_shift_id"),
            ["terminal_id", "shift_id"],
            unique=False,
        )

    op.create_table(
        "sale_tenders",
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("tender_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("sale_id", sa.String(length=40), nullable=False),
        sa.Column("shift_id", sa.BigInteger(), nullable=True),
        sa.Column("tender", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("tendered_minor", sa.BigInteger(), nullable=False),
        sa.Column("change_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("txn_ref", sa.String(length=40), nullable=True),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("at", sa.String(length=32), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_sale_tenders_amount_positive")),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_sale_tenders_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("terminal_id", "tender_id", name=op.f("pk_sale_tenders")),
    )
    with op.batch_alter_table("sale_tenders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sale_tenders_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sale_tenders_terminal_id_sale_id"),
            ["terminal_id", "sale_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_sale_tenders_terminal_id_shift_id"),
            ["terminal_id", "shift_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_sale_tenders_terminal_id_txn_ref"),
            ["terminal_id", "txn_ref"],
            unique=False,
        )

    op.create_table(
        "sales",
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("sale_id", sa.String(length=40), nullable=False),
        sa.Column("shift_id", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal_minor", sa.BigInteger(), nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("receipt_number", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("completed_at", sa.String(length=32), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.CheckConstraint("total_minor >= 0", name=op.f("ck_sales_total_not_negative")),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_sales_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("terminal_id", "sale_id", name=op.f("pk_sales")),
    )
    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sales_completed_at"), ["completed_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sales_terminal_id_shift_id"), ["terminal_id", "shift_id"], unique=False
        )

    op.create_table(
        "shifts",
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("shift_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("float_minor", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", sa.String(length=32), nullable=False),
        sa.Column("closed_at", sa.String(length=32), nullable=True),
        sa.Column("closed_by", sa.String(length=64), nullable=True),
        sa.Column("counted_minor", sa.BigInteger(), nullable=True),
        sa.Column("expected_minor", sa.BigInteger(), nullable=True),
        sa.Column("report_json", sa.Text(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("float_minor >= 0", name=op.f("ck_shifts_float_not_negative")),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_shifts_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("terminal_id", "shift_id", name=op.f("pk_shifts")),
    )
    with op.batch_alter_table("shifts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shifts_opened_at"), ["opened_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_shifts_terminal_id_closed_at"),
            ["terminal_id", "closed_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("shifts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shifts_terminal_id_closed_at"))
        batch_op.drop_index(batch_op.f("ix_shifts_opened_at"))

    op.drop_table("shifts")
    with op.batch_alter_table("sales", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sales_terminal_id_shift_id"))
        batch_op.drop_index(batch_op.f("ix_sales_completed_at"))

    op.drop_table("sales")
    with op.batch_alter_table("sale_tenders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sale_tenders_terminal_id_txn_ref"))
        batch_op.drop_index(batch_op.f("ix_sale_tenders_terminal_id_shift_id"))
        batch_op.drop_index(batch_op.f("ix_sale_tenders_terminal_id_sale_id"))
        batch_op.drop_index(batch_op.f("ix_sale_tenders_at"))

    op.drop_table("sale_tenders")
    with op.batch_alter_table("cash_moves", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cash_moves_terminal_id_shift_id"))
        batch_op.drop_index(batch_op.f("ix_cash_moves_at"))

    op.drop_table("cash_moves")
