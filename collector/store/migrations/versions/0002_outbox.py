"""The outbox of notifications to sinks, and the remote ticket id per ticket sink.

Revision ID: 0002_outbox
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002_outbox'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('customer', sa.String(length=128), nullable=False),
    sa.Column('sink', sa.String(length=64), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('incident_id', 'sink', 'sequence', name=op.f('uq_outbox_incident_id_sink_sequence'))
    )
    op.create_index(op.f('ix_outbox_state_next_attempt_at'), 'outbox', ['state', 'next_attempt_at'], unique=False)

    op.create_table('sink_tickets',
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('sink', sa.String(length=64), nullable=False),
    sa.Column('remote_id', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('incident_id', 'sink', name=op.f('pk_sink_tickets'))
    )


def downgrade() -> None:
    op.drop_table('sink_tickets')
    op.drop_index(op.f('ix_outbox_state_next_attempt_at'), table_name='outbox')
    op.drop_table('outbox')
