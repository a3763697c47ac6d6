"""audit_events: no REPLACE on SQLite

``INSERT OR REPLACE`` (and ``REPLACE``) deletes the row it replaces without firing DELETE
triggers, so the append-only triggers of 0001 let an audit event be overwritten in place.
The hash chain would still show it, but the table should refuse it outright, as the visits
table does since 0006.  On PostgreSQL ``INSERT ... ON CONFLICT DO UPDATE`` fires the UPDATE
trigger of 0001 and is already refused.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events "
                   "WHEN EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq) "
                   "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_replace")
