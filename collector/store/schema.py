"""The store's one schema, as SQLAlchemy Core tables: the same on SQLite and PostgreSQL.

Alembic migrations in `collector/store/migrations/versions/` create and change these tables;
a test checks that the migrated database matches this module. Times are stored as aware UTC
datetimes (`DateTime(timezone=True)`); SQLite keeps them as ISO strings.

What is kept for how long:
- results: the history, pruned after `store.results_retention_days` (default 14).
- check_state, job_runs, incidents, incident_events, audit_log, suppressed_events: kept.
- outbox, sink_tickets: kept; a delivered row is the record of what was sent where.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UTC_TIME = sa.DateTime(timezone=True)

# Agents that have ever connected, and the credential that binds each to one customer.
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("agent_id", sa.String(128), primary_key=True),
    sa.Column("customer", sa.String(128), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False, server_default=""),
    sa.Column("version", sa.String(64), nullable=False, server_default=""),
    sa.Column("connected", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("connected_since", UTC_TIME),
    sa.Column("last_seen_at", UTC_TIME),
    # Highest seq committed for this agent: the ack, and the dedup line for replays.
    sa.Column("acked_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("spool_depth", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("results_dropped", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rss_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cpu_percent", sa.Float, nullable=False, server_default="0"),
    sa.Column("uptime_s", sa.Float, nullable=False, server_default="0"),
)

results = sa.Table(
    "results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("agent_id", sa.String(128), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("customer", sa.String(128), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("probe", sa.String(128), nullable=False),
    sa.Column("check_key", sa.String(512), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("metrics_json", sa.Text, nullable=False, server_default="{}"),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("observed_at", UTC_TIME, nullable=False),
    sa.Column("received_at", UTC_TIME, nullable=False),
    sa.Index(None, "received_at"),
    sa.Index(None, "customer", "host", "check_key", "observed_at"),
)

# The latest result per check: what "is it OK now?" reads, without scanning history.
check_state = sa.Table(
    "check_state",
    metadata,
    sa.Column("customer", sa.String(128), primary_key=True),
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("check_key", sa.String(512), primary_key=True),
    sa.Column("probe", sa.String(128), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("metrics_json", sa.Text, nullable=False, server_default="{}"),
    sa.Column("observed_at", UTC_TIME, nullable=False),
    # When the check entered its current status.
    sa.Column("status_since", UTC_TIME, nullable=False),
    sa.Column("agent_id", sa.String(128), nullable=False),
)

# One row per run of a job on a host; a run's later events (finished) update its row.
job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer", sa.String(128), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("job", sa.String(255), nullable=False),
    sa.Column("run_id", sa.String(255), nullable=False),
    sa.Column("probe", sa.String(128), nullable=False),
    sa.Column("agent_id", sa.String(128), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("started_at", UTC_TIME),
    sa.Column("finished_at", UTC_TIME),
    sa.Column("exit_code", sa.Integer),
    sa.Column("duration_s", sa.Float),
    sa.Column("excerpt", sa.Text, nullable=False, server_default=""),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("observed_at", UTC_TIME, nullable=False),
    sa.UniqueConstraint("customer", "host", "job", "run_id"),
    sa.Index(None, "customer", "job", "started_at"),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # customer/host/expectation[/subject]: one open incident per key, enforced below.
    sa.Column("dedup_key", sa.String(1024), nullable=False),
    sa.Column("customer", sa.String(128), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("expectation", sa.String(255), nullable=False),
    sa.Column("subject", sa.String(512), nullable=False),  # the check key or job name
    sa.Column("state", sa.String(16), nullable=False),  # open | acknowledged | resolved
    sa.Column("severity", sa.String(16), nullable=False),  # warning | critical
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("expected", sa.Text, nullable=False, server_default=""),
    sa.Column("observed", sa.Text, nullable=False, server_default=""),
    sa.Column("evidence", sa.Text, nullable=False, server_default=""),
    sa.Column("evidence_source", sa.Text, nullable=False, server_default=""),
    sa.Column("assignment_group", sa.String(64), nullable=False, server_default="service_desk"),
    sa.Column("runbook", sa.Text, nullable=False, server_default=""),
    sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
    # What the latest occurrence was (a job's run id): a second report of the same failed run,
    # e.g. its ERROR line and then its exit code, refreshes the incident but is not counted.
    sa.Column("last_occurrence", sa.String(255), nullable=False, server_default=""),
    sa.Column("opened_at", UTC_TIME, nullable=False),
    sa.Column("last_seen_at", UTC_TIME, nullable=False),
    # When the host saw the first occurrence (the probe's own time): hours before opened_at
    # when its results waited in the agent's spool through an outage.
    sa.Column("first_observed_at", UTC_TIME),
    sa.Column("resolved_at", UTC_TIME),
    sa.Column("resolution", sa.Text, nullable=False, server_default=""),
    # The customer's contract (collector/incidents/service_hours.py): its level (P1..), and
    # the due times counted in its service hours, in UTC.
    sa.Column("priority", sa.String(32), nullable=False, server_default=""),
    sa.Column("respond_by", UTC_TIME),
    sa.Column("resolve_by", UTC_TIME),
    sa.Column("acknowledged_at", UTC_TIME),
    sa.Column("acknowledged_by", sa.String(128)),
    # Escalation: when it last escalated, and how far down the customer's escalation list.
    sa.Column("escalated_at", UTC_TIME),
    sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
    # `recovery: mark_recovered`: the problem went away, the incident waits for the desk.
    sa.Column("recovered_at", UTC_TIME),
    sa.Index(None, "customer", "state"),
    sa.Index(None, "customer", "host", "opened_at"),
    # The escalation timer polls unacknowledged incidents by respond-by, earliest first.
    sa.Index(None, "state", "respond_by"),
    # Keeps incidents single even with several writers (DESIGN.md: several collectors).
    sa.Index(
        "uq_incidents_open_dedup_key",
        "dedup_key",
        unique=True,
        sqlite_where=sa.text("state != 'resolved'"),
        postgresql_where=sa.text("state != 'resolved'"),
    ),
)

# What happened to each incident, in order: opened, occurred, severity, acknowledged, resolved.
incident_events = sa.Table(
    "incident_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("at", UTC_TIME, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False, server_default="daybreak"),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Index(None, "incident_id", "at"),
)

# Problems that opened no incident because a maintenance window covered them: the record
# that maintenance hid something, and what.
suppressed_events = sa.Table(
    "suppressed_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer", sa.String(128), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("expectation", sa.String(255), nullable=False),
    sa.Column("subject", sa.String(512), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("title", sa.Text, nullable=False, server_default=""),
    sa.Column("at", UTC_TIME, nullable=False),  # when the problem was observed
    sa.Column("window_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("window_end", UTC_TIME, nullable=False),
    sa.Index(None, "customer", "at"),
)

# Who did what, when: refused agents, acknowledgements, resolutions, remote commands.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTC_TIME, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(512), nullable=False, server_default=""),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Index(None, "at"),
)

# Notifications to the customer's sinks, written in the same transaction as the incident change
# they announce (collector/outbox.py) and delivered later, with retries (collector/sinks/).
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("customer", sa.String(128), nullable=False),
    sa.Column("sink", sa.String(64), nullable=False),  # the sink's name in the customer file
    sa.Column("event", sa.String(16), nullable=False),  # opened | updated | resolved | escalated
    sa.Column("sequence", sa.Integer, nullable=False),  # per incident: 1, 2, 3 ...
    sa.Column("idempotency_key", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON: the incident as it was then
    sa.Column("state", sa.String(16), nullable=False),  # pending | delivered | dead
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTC_TIME, nullable=False),
    sa.Column("next_attempt_at", UTC_TIME, nullable=False),
    sa.Column("delivered_at", UTC_TIME),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    # One row per event per sink; also what "is an earlier one still pending?" reads.
    sa.UniqueConstraint("incident_id", "sink", "sequence"),
    # The delivery loop polls due rows earliest first.
    sa.Index(None, "state", "next_attempt_at"),
)

# The id a ticketing system gave the ticket of an incident, per ticket sink.
sink_tickets = sa.Table(
    "sink_tickets",
    metadata,
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("sink", sa.String(64), primary_key=True),
    sa.Column("remote_id", sa.String(255), nullable=False),
    sa.Column("created_at", UTC_TIME, nullable=False),
)

# One row per scheduled run of a job (`job_schedule` expectations, collector/expectations/
# deadline.py): a slot, materialised ahead, matched to the run that starts in its window.
# `next_check_at` is when the due-time loop (collector/timers.py) must look at it next (the due
# start, then the due completion, or a maintenance window's end); NULL once it is settled.
job_slots = sa.Table(
    "job_slots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer", sa.String(128), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("expectation", sa.String(255), nullable=False),
    sa.Column("slot_at", UTC_TIME, nullable=False),
    sa.Column("due_start_at", UTC_TIME, nullable=False),
    sa.Column("due_complete_at", UTC_TIME, nullable=False),
    # waiting | started | succeeded | failed | missed | late
    sa.Column("state", sa.String(16), nullable=False, server_default="waiting"),
    sa.Column("run_id", sa.String(255), nullable=False, server_default=""),
    sa.Column("started_at", UTC_TIME),
    sa.Column("finished_at", UTC_TIME),
    sa.Column("evaluated_at", UTC_TIME),
    sa.Column("next_check_at", UTC_TIME),
    sa.UniqueConstraint("customer", "host", "expectation", "slot_at"),
    # The due-time loop polls the earliest due slot first.
    sa.Index(None, "next_check_at"),
)

# Checks (dedup keys) that flap right now (collector/incidents/flapping.py): while a row is
# here their changes are not notified; at `check_at` the loop sees whether the flapping ended.
flapping = sa.Table(
    "flapping",
    metadata,
    sa.Column("dedup_key", sa.String(1024), primary_key=True),
    sa.Column("customer", sa.String(128), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("since", UTC_TIME, nullable=False),
    sa.Column("check_at", UTC_TIME, nullable=False),
    sa.Index(None, "check_at"),
)


# Each change of an agent's dropped-results counter, so "what was dropped over the night" is a
# difference between two rows (the agents row keeps only the latest figure). A row is written
# only when the counter moves, so a healthy agent adds none.
agent_dropped = sa.Table(
    "agent_dropped",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("agent_id", sa.String(128), nullable=False),
    sa.Column("at", UTC_TIME, nullable=False),
    sa.Column("results_dropped", sa.BigInteger, nullable=False),
    sa.Index(None, "agent_id", "at"),
)
