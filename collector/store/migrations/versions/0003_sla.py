"""The customer's contract on each incident (priority, respond-by, resolve-by, acknowledgement,
escalation, recovered) and the problems maintenance windows suppressed.

Revision ID: 0003_sla
Revises: 0002_outbox
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003_sla'
down_revision = '0002_outbox'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('incidents') as batch:
        batch.add_column(sa.Column('priority', sa.String(length=32), server_default='',
                                   nullable=False))
        batch.add_column(sa.Column('respond_by', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('resolve_by', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('acknowledged_by', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('escalation_level', sa.Integer(), server_default='0',
                                   nullable=False))
        batch.add_column(sa.Column('recovered_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_incidents_state_respond_by'), 'incidents', ['state', 'respond_by'],
                    unique=False)

    op.create_table('suppressed_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('customer', sa.String(length=128), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('expectation', sa.String(length=255), nullable=False),
    sa.Column('subject', sa.String(length=512), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('title', sa.Text(), server_default='', nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_reason', sa.Text(), server_default='', nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppressed_events'))
    )
    op.create_index(op.f('ix_suppressed_events_customer_at'), 'suppressed_events',
                    ['customer', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_suppressed_events_customer_at'), table_name='suppressed_events')
    op.drop_table('suppressed_events')
    op.drop_index(op.f('ix_incidents_state_respond_by'), table_name='incidents')
    with op.batch_alter_table('incidents') as batch:
        for column in ('recovered_at', 'escalation_level', 'escalated_at', 'acknowledged_by',
                       'acknowledged_at', 'resolve_by', 'respond_by', 'priority'):
            batch.drop_column(column)
