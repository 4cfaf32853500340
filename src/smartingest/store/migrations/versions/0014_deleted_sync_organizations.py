"""The organization a deleted production sync counts against (the quota is per organization).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deleted_syncs") as batch:
        batch.add_column(sa.Column("organization", sa.String(128), nullable=False, server_default="default"))


def downgrade() -> None:
    with op.batch_alter_table("deleted_syncs") as batch:
        batch.drop_column("organization")
