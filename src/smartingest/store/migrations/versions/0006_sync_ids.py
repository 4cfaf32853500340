"""Runs belong to a sync's stable id, not to its name: a renamed sync keeps its history. Runs recorded
before have the sync's name as its id (a sync's id defaults to its name).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("sync_id", sa.String(128)))
    op.execute("UPDATE sync_runs SET sync_id = sync_name")
    with op.batch_alter_table("sync_runs") as batch:
        batch.alter_column("sync_id", existing_type=sa.String(128), nullable=False)
        batch.create_index("ix_sync_runs_sync_id", ["sync_id"])


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_index("ix_sync_runs_sync_id")
        batch.drop_column("sync_id")
