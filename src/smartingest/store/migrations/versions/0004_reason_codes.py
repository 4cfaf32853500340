"""Row outcomes carry a reason code beside the reason text, so they can be grouped.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run_rows") as batch:
        batch.add_column(sa.Column("reason_code", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("run_rows") as batch:
        batch.drop_column("reason_code")
