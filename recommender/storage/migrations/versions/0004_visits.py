"""visits: each session or review of an episode, append-only; reviews and plan-change codes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('visits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('episode_id', sa.Integer(), nullable=False),
    sa.Column('visit_date', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('pain_score', sa.Integer(), nullable=False),
    sa.Column('discomfort', sa.Integer(), nullable=True),
    sa.Column('massage_intensity', sa.String(length=20), nullable=False),
    sa.Column('training_given', sa.Boolean(), nullable=False),
    sa.Column('exercise_days', sa.Integer(), nullable=True),
    sa.Column('adverse_event', sa.Boolean(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('contraindications', sa.JSON(), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('correction_reason', sa.Text(), nullable=False),
    sa.Column('recorded_by', sa.String(length=80), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['episode_id'], ['episodes.id'], ),
    sa.ForeignKeyConstraint(['supersedes_id'], ['visits.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_visits_episode_id', 'visits', ['episode_id'])
    with op.batch_alter_table('recommendations') as batch:
        batch.add_column(sa.Column('visit_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('decisions') as batch:
        batch.add_column(sa.Column('change_code', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('prediction', sa.JSON(), nullable=True))
    # append-only, like the audit trail: a correction is a new row
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER visits_no_{verb.lower()} BEFORE {verb} ON visits "
                       f"BEGIN SELECT RAISE(ABORT, 'visits are append-only'); END")
    else:
        op.execute("CREATE FUNCTION visits_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'visits are append-only'; END $$")
        op.execute("CREATE TRIGGER visits_no_change BEFORE UPDATE OR DELETE ON visits "
                   "FOR EACH ROW EXECUTE FUNCTION visits_append_only()")
        op.execute("CREATE TRIGGER visits_no_truncate BEFORE TRUNCATE ON visits "
                   "FOR EACH STATEMENT EXECUTE FUNCTION visits_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS visits_no_update")
        op.execute("DROP TRIGGER IF EXISTS visits_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS visits_no_change ON visits")
        op.execute("DROP TRIGGER IF EXISTS visits_no_truncate ON visits")
        op.execute("DROP FUNCTION IF EXISTS visits_append_only()")
    with op.batch_alter_table('decisions') as batch:
        batch.drop_column('prediction')
        batch.drop_column('change_code')
    with op.batch_alter_table('recommendations') as batch:
        batch.drop_column('visit_id')
    op.drop_index('ix_visits_episode_id', table_name='visits')
    op.drop_table('visits')
