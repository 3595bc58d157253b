"""A collector core on a ManualClock for the timer tests: a real migrated SQLite file, the
StoreWriter, real Ingest and IncidentEngine, and the due-time loop stepped by hand.

`restart()` closes everything and builds it again on the same file, as a collector restart does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from collector.auth import sha256_hex
from collector.customers import CustomerSet, load_customer_text
from collector.incidents.engine import IncidentEngine
from collector.ingest import IncomingItem, Ingest
from collector.store.agents import (
    AgentCredential,
    StreamOpened,
    record_streams_opened,
    register_credentials,
)
from collector.store.engine import open_store
from collector.store.schema import agents, incidents, job_slots, outbox
from collector.store.writer import StoreWriter
from collector.timers import DueTimers
from probes.clock import ManualClock
from probes.result import Item, JobOutcome, JobRun, Result, Status

HEARTBEAT_INTERVAL = timedelta(seconds=15)


def utc(text: str) -> datetime:
    """`2025-03-30 01:15` as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Night:
    def __init__(self, tmp_path: Path, customer_yaml: str, start: datetime,
                 agents: Sequence[tuple[str, str]]) -> None:
        (tmp_path / "hook.secret").write_text("s3cret-for-tests\n", encoding="utf-8")
        self.customer = load_customer_text(customer_yaml, tmp_path / "acme.yaml")
        self.clock = ManualClock(start)
        self.url = f"sqlite:///{tmp_path / 'daybreak.db'}"
        self._agents = list(agents)
        self._seq: dict[str, int] = {}
        # Agents that send a heartbeat every 15 s: each step of run_until refreshes them.
        self.alive: set[str] = {agent_id for agent_id, _ in agents}
        # Agents whose checks report OK at every step while they are alive: host, check keys.
        self.reporting: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._start()
        self.writer.submit(lambda conn: register_credentials(conn, [
            AgentCredential(agent_id, "acme", sha256_hex(agent_id)) for agent_id, _ in agents
        ])).result()
        for agent_id, host in agents:
            self._connect(agent_id, host)

    def _connect(self, agent_id: str, host: str) -> None:
        at = self.clock.now()
        self.writer.submit(lambda conn: record_streams_opened(
            conn, [StreamOpened(agent_id, host, "test", at)])).result()

    def _start(self) -> None:
        self.db = open_store(self.url)
        self.writer = StoreWriter(self.db)
        self.engine = IncidentEngine(CustomerSet({"acme": self.customer}), self.clock)
        self.ingest = Ingest(self.writer, self.clock, self.engine)
        self.timers = DueTimers(self.writer, self.engine, self.clock,
                                heartbeat_interval=HEARTBEAT_INTERVAL)

    def restart(self) -> None:
        self.writer.close()
        self.db.dispose()
        self._start()

    def close(self) -> None:
        self.writer.close()
        self.db.dispose()

    # ---- time -----------------------------------------------------------------------------

    def tick(self) -> datetime | None:
        now = self.clock.now()
        alive = sorted(self.alive)
        self.writer.submit(lambda conn: conn.execute(
            agents.update().where(agents.c.agent_id.in_(alive)).values(last_seen_at=now))
        ).result()
        for agent_id in alive:
            if agent_id in self.reporting:
                host, checks = self.reporting[agent_id]
                self.send(agent_id, host, *(self.result(c, Status.OK) for c in checks))
        return self.writer.submit(lambda conn: self.timers.run_due(conn, now)).result()

    def run_until(self, until: datetime) -> None:
        """Let the loop run as it would: wake at each due time up to `until`, then at until."""
        while True:
            next_due = self.tick()
            if next_due is None or next_due > until:
                break
            self._move_to(max(next_due, self.clock.now()))
            if self.clock.now() >= until:
                break
        self._move_to(until)
        self.tick()

    def _move_to(self, moment: datetime) -> None:
        seconds = (moment - self.clock.now()).total_seconds()
        if seconds > 0:
            self.clock.advance(seconds)

    # ---- what agents send -----------------------------------------------------------------

    def send(self, agent_id: str, host: str, *items: Item) -> None:
        incoming = []
        for item in items:
            self._seq[agent_id] = self._seq.get(agent_id, 0) + 1
            incoming.append(IncomingItem(self._seq[agent_id], "acme", host, item))
        asyncio.run(self.ingest.commit_batch(agent_id, "acme", host, incoming))
        # Evaluation runs after the commit in the writer thread: wait for it to be done.
        self.writer.submit(lambda _conn: None).result()

    def heartbeat(self, agent_id: str) -> None:
        now = self.clock.now()
        self.writer.submit(lambda conn: conn.execute(
            agents.update().where(agents.c.agent_id == agent_id).values(last_seen_at=now))
        ).result()

    def run(self, job: str, run_id: str, outcome: JobOutcome, started: datetime,
            finished: datetime | None = None, exit_code: int | None = None) -> JobRun:
        return JobRun(probe="wrapper", job=job, run_id=run_id, outcome=outcome,
                      observed_at=finished or started, started_at=started,
                      finished_at=finished, exit_code=exit_code,
                      excerpt="ERROR: target unreachable\n" if outcome is JobOutcome.FAILED
                      else "", source=f"wrapper:{job}")

    def result(self, check: str, status: Status, at: datetime | None = None) -> Result:
        return Result(probe="p", check=check, status=status, summary=f"{check} {status.name}",
                      observed_at=at or self.clock.now())

    # ---- what the store says --------------------------------------------------------------

    def incidents(self, *where: Any) -> list[sa.Row[Any]]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.select(incidents).where(*where)
                                     .order_by(incidents.c.id)).all())

    def slots(self, *where: Any) -> list[sa.Row[Any]]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.select(job_slots).where(*where)
                                     .order_by(job_slots.c.slot_at, job_slots.c.id)).all())

    def outbox(self, *where: Any) -> list[sa.Row[Any]]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.select(outbox).where(*where)
                                     .order_by(outbox.c.id)).all())

    def events(self, kind: str) -> list[sa.Row[Any]]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT * FROM incident_events WHERE kind = :k ORDER BY id"), {"k": kind}).all())
