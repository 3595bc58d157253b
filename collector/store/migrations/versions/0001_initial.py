"""Initial schema: every table of collector/store/schema.py.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agents',
    sa.Column('agent_id', sa.String(length=128), nullable=False),
    sa.Column('customer', sa.String(length=128), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), server_default='', nullable=False),
    sa.Column('version', sa.String(length=64), server_default='', nullable=False),
    sa.Column('connected', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('connected_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acked_seq', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('spool_depth', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('results_dropped', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('rss_bytes', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cpu_percent', sa.Float(), server_default='0', nullable=False),
    sa.Column('uptime_s', sa.Float(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('agent_id', name=op.f('pk_agents'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=512), server_default='', nullable=False),
    sa.Column('detail', sa.Text(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index(op.f('ix_audit_log_at'), 'audit_log', ['at'], unique=False)

    op.create_table('check_state',
    sa.Column('customer', sa.String(length=128), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('check_key', sa.String(length=512), nullable=False),
    sa.Column('probe', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('summary', sa.Text(), server_default='', nullable=False),
    sa.Column('metrics_json', sa.Text(), server_default='{}', nullable=False),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('agent_id', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('customer', 'host', 'check_key', name=op.f('pk_check_state'))
    )
    op.create_table('incidents',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dedup_key', sa.String(length=1024), nullable=False),
    sa.Column('customer', sa.String(length=128), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('expectation', sa.String(length=255), nullable=False),
    sa.Column('subject', sa.String(length=512), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('summary', sa.Text(), server_default='', nullable=False),
    sa.Column('expected', sa.Text(), server_default='', nullable=False),
    sa.Column('observed', sa.Text(), server_default='', nullable=False),
    sa.Column('evidence', sa.Text(), server_default='', nullable=False),
    sa.Column('evidence_source', sa.Text(), server_default='', nullable=False),
    sa.Column('assignment_group', sa.String(length=64), server_default='service_desk', nullable=False),
    sa.Column('runbook', sa.Text(), server_default='', nullable=False),
    sa.Column('occurrences', sa.Integer(), server_default='1', nullable=False),
    sa.Column('last_occurrence', sa.String(length=255), server_default='', nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.Text(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents'))
    )
    op.create_index(op.f('ix_incidents_customer_host_opened_at'), 'incidents', ['customer', 'host', 'opened_at'], unique=False)
    op.create_index(op.f('ix_incidents_customer_state'), 'incidents', ['customer', 'state'], unique=False)
    op.create_index('uq_incidents_open_dedup_key', 'incidents', ['dedup_key'], unique=True, sqlite_where=sa.text("state != 'resolved'"), postgresql_where=sa.text("state != 'resolved'"))

    op.create_table('job_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('customer', sa.String(length=128), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('job', sa.String(length=255), nullable=False),
    sa.Column('run_id', sa.String(length=255), nullable=False),
    sa.Column('probe', sa.String(length=128), nullable=False),
    sa.Column('agent_id', sa.String(length=128), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('excerpt', sa.Text(), server_default='', nullable=False),
    sa.Column('source', sa.Text(), server_default='', nullable=False),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs')),
    sa.UniqueConstraint('customer', 'host', 'job', 'run_id', name=op.f('uq_job_runs_customer_host_job_run_id'))
    )
    op.create_index(op.f('ix_job_runs_customer_job_started_at'), 'job_runs', ['customer', 'job', 'started_at'], unique=False)

    op.create_table('results',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('agent_id', sa.String(length=128), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('customer', sa.String(length=128), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('probe', sa.String(length=128), nullable=False),
    sa.Column('check_key', sa.String(length=512), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('metrics_json', sa.Text(), server_default='{}', nullable=False),
    sa.Column('summary', sa.Text(), server_default='', nullable=False),
    sa.Column('detail', sa.Text(), server_default='', nullable=False),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_results'))
    )
    op.create_index(op.f('ix_results_customer_host_check_key_observed_at'), 'results', ['customer', 'host', 'check_key', 'observed_at'], unique=False)
    op.create_index(op.f('ix_results_received_at'), 'results', ['received_at'], unique=False)

    op.create_table('incident_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=128), server_default='daybreak', nullable=False),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_events'))
    )
    op.create_index(op.f('ix_incident_events_incident_id_at'), 'incident_events', ['incident_id', 'at'], unique=False)



def downgrade() -> None:
    op.drop_index(op.f('ix_incident_events_incident_id_at'), table_name='incident_events')

    op.drop_table('incident_events')
    op.drop_index(op.f('ix_results_received_at'), table_name='results')
    op.drop_index(op.f('ix_results_customer_host_check_key_observed_at'), table_name='results')

    op.drop_table('results')
    op.drop_index(op.f('ix_job_runs_customer_job_started_at'), table_name='job_runs')

    op.drop_table('job_runs')
    op.drop_index('uq_incidents_open_dedup_key', table_name='incidents', sqlite_where=sa.text("state != 'resolved'"), postgresql_where=sa.text("state != 'resolved'"))
    op.drop_index(op.f('ix_incidents_customer_state'), table_name='incidents')
    op.drop_index(op.f('ix_incidents_customer_host_opened_at'), table_name='incidents')

    op.drop_table('incidents')
    op.drop_table('check_state')
    op.drop_index(op.f('ix_audit_log_at'), table_name='audit_log')

    op.drop_table('audit_log')
    op.drop_table('agents')
