"""Sync runs and row outcomes.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    counts = [
        sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
        for name in (
            "queried",
            "invalid",
            "unchanged",
            "added",
            "changed",
            "removed",
            "synced",
            "rejected",
            "retried_next_run",
            "deferred",
            "skipped",
        )
    ]
    op.create_table(
        "sync_runs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("sync_name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("full_resync", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("host", sa.String(255)),
        sa.Column("mapping_fingerprint", sa.String(64)),
        sa.Column("timings", sa.JSON),
        *counts,
    )
    op.create_index("ix_sync_runs_sync_name", "sync_runs", ["sync_name"])
    op.create_index("ix_sync_runs_status", "sync_runs", ["status"])
    op.create_table(
        "run_rows",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", _ID, sa.ForeignKey("sync_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("primary_key", sa.Text),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_run_rows_run_status", "run_rows", ["run_id", "status"])


def downgrade() -> None:
    op.drop_table("run_rows")
    op.drop_table("sync_runs")
