"""History of each agent's dropped-results counter (the morning report's "what was dropped").

Revision ID: 0005_agent_dropped
Revises: 0004_schedules
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_agent_dropped'
down_revision = '0004_schedules'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agent_dropped',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('agent_id', sa.String(length=128), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('results_dropped', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_dropped')),
    )
    op.create_index(op.f('ix_agent_dropped_agent_id_at'), 'agent_dropped', ['agent_id', 'at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_agent_dropped_agent_id_at'), table_name='agent_dropped')
    op.drop_table('agent_dropped')
