"""visits: one correction per record (a correction chain cannot fork), and no REPLACE on SQLite

A visit record is corrected at most once: a unique index on ``supersedes_id`` makes the
database refuse a second record superseding the same visit, even from two concurrent
corrections.  On SQLite, ``INSERT OR REPLACE`` deletes the row it replaces without firing
DELETE triggers, so a BEFORE INSERT trigger refuses an insert onto an existing id.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('uq_visits_supersedes_id', 'visits', ['supersedes_id'], unique=True)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TRIGGER visits_no_replace BEFORE INSERT ON visits "
                   "WHEN EXISTS (SELECT 1 FROM visits WHERE id = NEW.id) "
                   "BEGIN SELECT RAISE(ABORT, 'visits are append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS visits_no_replace")
    op.drop_index('uq_visits_supersedes_id', table_name='visits')
