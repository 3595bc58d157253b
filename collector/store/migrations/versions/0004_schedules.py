"""Job slots of scheduled jobs (deadlines) and the keys that flap right now.

Revision ID: 0004_schedules
Revises: 0003_sla
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_schedules'
down_revision = '0003_sla'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_slots',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('customer', sa.String(length=128), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('expectation', sa.String(length=255), nullable=False),
    sa.Column('slot_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_complete_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), server_default='waiting', nullable=False),
    sa.Column('run_id', sa.String(length=255), server_default='', nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('evaluated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_check_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_slots')),
    sa.UniqueConstraint('customer', 'host', 'expectation', 'slot_at',
                        name=op.f('uq_job_slots_customer_host_expectation_slot_at'))
    )
    op.create_index(op.f('ix_job_slots_next_check_at'), 'job_slots', ['next_check_at'],
                    unique=False)
    op.create_table('flapping',
    sa.Column('dedup_key', sa.String(length=1024), nullable=False),
    sa.Column('customer', sa.String(length=128), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('check_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('dedup_key', name=op.f('pk_flapping'))
    )
    op.create_index(op.f('ix_flapping_check_at'), 'flapping', ['check_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_flapping_check_at'), table_name='flapping')
    op.drop_table('flapping')
    op.drop_index(op.f('ix_job_slots_next_check_at'), table_name='job_slots')
    op.drop_table('job_slots')
