"""When the host saw an incident's first occurrence (incidents.first_observed_at).

Revision ID: 0006_first_observed
Revises: 0005_agent_dropped
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_first_observed'
down_revision = '0005_agent_dropped'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch copy of the table on SQLite would have to carry the partial
    # unique index on open dedup keys over by reflection.
    op.add_column('incidents', sa.Column('first_observed_at', sa.DateTime(timezone=True),
                                         nullable=True))
    # Incidents opened before: the best known is when the collector opened them.
    op.execute("UPDATE incidents SET first_observed_at = opened_at")


def downgrade() -> None:
    op.drop_column('incidents', 'first_observed_at')
