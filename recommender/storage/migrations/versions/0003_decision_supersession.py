"""decisions: a changed plan supersedes the previous one; episodes: history apart from care

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('decisions') as batch:
        batch.add_column(sa.Column('supersedes_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('change_reason', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('episodes') as batch:
        batch.add_column(sa.Column('is_history', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    # imported training rows arrived with their outcome: they are history, not patients in care
    op.execute("UPDATE episodes SET is_history = (source LIKE 'import:%' AND id IN "
               "(SELECT episode_id FROM followups))")


def downgrade() -> None:
    with op.batch_alter_table('episodes') as batch:
        batch.drop_column('is_history')
    with op.batch_alter_table('decisions') as batch:
        batch.drop_column('change_reason')
        batch.drop_column('supersedes_id')
