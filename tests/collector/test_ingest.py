"""Ingest on a real SQLite store: dedup, customer binding, check state, job runs, evaluation."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from structlog.testing import capture_logs

from collector.ingest import IncomingItem, Ingest, StreamFailedError
from collector.store.driver_rows import time_to_db
from collector.store.schema import UTC_TIME, agents, audit_log, check_state, job_runs, results
from collector.store.writer import StoreWriter
from probes.clock import ManualClock
from probes.result import Item, JobOutcome, JobRun, Result, Status
from tests.collector.test_coalesce import hold_writer

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _result(seq: int, status: Status, minute: int, *, check: str = "disk:/data",
            customer: str = "acme") -> IncomingItem:
    return IncomingItem(seq, customer, "web1", Result(
        probe="disks", check=check, status=status, summary=f"{status.name} at {minute}",
        observed_at=T0 + timedelta(minutes=minute), metrics={"used_percent": 50.0 + minute}))


def _run(seq: int, outcome: JobOutcome, **times: datetime | int | str | None) -> IncomingItem:
    return IncomingItem(seq, "acme", "web1", JobRun(
        probe="etl-log", job="nightly-load", run_id="2026-03-02", outcome=outcome,
        observed_at=T0, **times))  # type: ignore[arg-type]


def _status_row(store: sa.Engine, check: str = "disk:/data") -> tuple[str, datetime]:
    with store.connect() as conn:
        return tuple(conn.execute(sa.select(check_state.c.status, check_state.c.status_since)
                            .where(check_state.c.check_key == check)).one())


def test_status_since_moves_only_when_the_status_changes(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    ingest = Ingest(writer, clock)

    async def scenario() -> None:
        await ingest.commit_batch("web1", "acme", "web1", [_result(1, Status.OK, 0)])
        await ingest.commit_batch("web1", "acme", "web1", [_result(2, Status.OK, 1)])
        assert _status_row(store) == ("OK", T0.replace(tzinfo=None))
        # Within one batch: WARN at 2, CRIT at 3, CRIT at 4: CRIT since minute 3.
        await ingest.commit_batch("web1", "acme", "web1", [
            _result(3, Status.WARN, 2), _result(4, Status.CRIT, 3), _result(5, Status.CRIT, 4)])
        assert _status_row(store) == ("CRIT", (T0 + timedelta(minutes=3)).replace(tzinfo=None))
        await ingest.commit_batch("web1", "acme", "web1", [_result(6, Status.CRIT, 5)])
        assert _status_row(store) == ("CRIT", (T0 + timedelta(minutes=3)).replace(tzinfo=None))
        # CRIT stored; the batch goes OK then back to CRIT: the CRIT run restarts at minute 7.
        await ingest.commit_batch("web1", "acme", "web1", [
            _result(7, Status.OK, 6), _result(8, Status.CRIT, 7)])
        assert _status_row(store) == ("CRIT", (T0 + timedelta(minutes=7)).replace(tzinfo=None))

    asyncio.run(scenario())
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(results)).scalar() == 8


def test_a_replay_is_skipped_and_the_acked_seq_never_goes_back(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    ingest = Ingest(writer, clock)

    async def scenario() -> list[int]:
        first = await ingest.commit_batch("web1", "acme", "web1",
                                          [_result(s, Status.OK, s) for s in (1, 2, 3)])
        replay = await ingest.commit_batch("web1", "acme", "web1",
                                           [_result(s, Status.OK, s) for s in (2, 3)])
        return [first, replay]

    assert asyncio.run(scenario()) == [3, 3]
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(results)).scalar() == 3


def test_items_for_another_customer_are_refused_logged_and_audited_but_acked(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    ingest = Ingest(writer, clock)
    with capture_logs() as logs:
        acked = asyncio.run(ingest.commit_batch("web1", "acme", "web1", [
            _result(1, Status.CRIT, 0, customer="globex"),
            _result(2, Status.CRIT, 1, customer="globex")]))
    assert acked == 2
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "ingest.refused_customer"]
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(results)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(check_state)).scalar() == 0
        action = conn.execute(sa.select(audit_log.c.action)).scalar_one()
        stored_acked = conn.execute(
            sa.select(agents.c.acked_seq).where(agents.c.agent_id == "web1")).scalar_one()
    assert action == "ingest.refused_customer"
    assert stored_acked == 2


def test_a_later_event_of_the_same_run_completes_its_row(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    ingest = Ingest(writer, clock)
    started, finished = T0, T0 + timedelta(minutes=42)

    async def scenario() -> None:
        await ingest.commit_batch("web1", "acme", "web1",
                                  [_run(1, JobOutcome.RUNNING, started_at=started)])
        await ingest.commit_batch("web1", "acme", "web1", [_run(
            2, JobOutcome.FAILED, finished_at=finished, exit_code=3, excerpt="ORA-00942")])
        # A late "started" line of the same run does not reopen it.
        await ingest.commit_batch("web1", "acme", "web1",
                                  [_run(3, JobOutcome.RUNNING, started_at=started)])

    asyncio.run(scenario())
    with store.connect() as conn:
        rows = conn.execute(sa.select(job_runs)).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.outcome, row.exit_code, row.duration_s, row.excerpt) == (
        "failed", 3, 42 * 60.0, "ORA-00942")


class _RecordingEvaluator:
    def __init__(self, store: sa.Engine, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, str, int, int]] = []
        self._fail = fail
        self._store = store
        self.invalidated = 0

    def on_items(self, conn: sa.Connection, agent_id: str, customer: str, host: str,
                 items: Sequence[Item]) -> None:
        # What the evaluator sees is committed: another connection reads it.
        with self._store.connect() as reader:
            committed = reader.execute(sa.select(sa.func.count()).select_from(results)).scalar()
        self.calls.append((agent_id, customer, host, len(items), int(committed or 0)))
        conn.execute(audit_log.insert().values(at=T0, actor="evaluator", action="evaluated"))
        if self._fail:
            raise RuntimeError("expectation blew up")

    def invalidate(self) -> None:
        self.invalidated += 1


def test_items_are_evaluated_after_their_commit(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    evaluator = _RecordingEvaluator(store)
    ingest = Ingest(writer, clock, evaluator)
    asyncio.run(ingest.commit_batch("web1", "acme", "web1",
                                    [_result(1, Status.OK, 0), _result(2, Status.WARN, 1)]))
    writer.submit(lambda conn: None).result()  # the evaluation ran before this job
    assert evaluator.calls == [("web1", "acme", "web1", 2, 2)]


def test_a_failing_evaluation_neither_loses_nor_unacks_the_batch(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    evaluator = _RecordingEvaluator(store, fail=True)
    ingest = Ingest(writer, clock, evaluator)
    with capture_logs() as logs:
        acked = asyncio.run(ingest.commit_batch("web1", "acme", "web1",
                                                [_result(1, Status.CRIT, 0)]))
        writer.submit(lambda conn: None).result()
    assert acked == 1
    assert "ingest.evaluation_failed" in [e["event"] for e in logs]
    assert evaluator.invalidated == 1
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(results)).scalar() == 1
        # The failed evaluation's own writes were rolled back.
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar() == 0


def test_batches_of_many_streams_are_all_committed_when_they_queue_up(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    ingest = Ingest(writer, clock)

    async def scenario() -> list[int]:
        return list(await asyncio.gather(*(
            ingest.commit_batch("web1" if n % 2 else "db1", "acme" if n % 2 else "globex",
                                f"host{n}", [_result(s, Status.OK, s, check=f"c{n}",
                                                     customer="acme" if n % 2 else "globex")
                                             for s in range(10 * n + 1, 10 * n + 11)])
            for n in range(8))))

    acks = asyncio.run(scenario())
    assert sorted(acks) == sorted(10 * n + 10 for n in range(8))
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(results)).scalar() == 80


def test_result_times_are_stored_in_the_same_text_form_as_every_other_time_column(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    # The results insert bypasses SQLAlchemy's per-row processing; its time strings must still
    # be the dialect's own form, or string comparisons in range queries (retention, history)
    # would compare two formats.
    ingest = Ingest(writer, clock)
    asyncio.run(ingest.commit_batch("web1", "acme", "web1", [_result(1, Status.OK, 0)]))
    with store.connect() as conn:
        stored = conn.execute(sa.text("SELECT observed_at, received_at FROM results")).one()
        conn.execute(sa.text("CREATE TEMP TABLE probe_times (at DATETIME)"))
        probe_times = sa.table("probe_times", sa.column("at", results.c.observed_at.type))
        conn.execute(probe_times.insert().values(at=T0))
        conn.execute(probe_times.insert().values(at=clock.now()))
        written_by_sqlalchemy = conn.execute(sa.text("SELECT at FROM probe_times")).scalars()
        assert tuple(stored) == tuple(written_by_sqlalchemy)


def test_batches_queued_together_are_stored_by_one_job_and_each_gets_its_own_ack(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    ingest = Ingest(writer, clock)
    release = hold_writer(writer)

    async def scenario() -> list[int]:
        web1 = ingest.stream("web1", "acme", "web1")
        db1 = ingest.stream("db1", "globex", "db1")
        commits = [
            asyncio.ensure_future(web1.commit([_result(1, Status.OK, 0),
                                               _result(2, Status.OK, 1)])),
            asyncio.ensure_future(db1.commit([_result(5, Status.OK, 0, check="disk:/db",
                                                      customer="globex")])),
            asyncio.ensure_future(web1.commit([_result(3, Status.WARN, 2)])),
        ]
        await asyncio.sleep(0.05)
        release.set()
        return list(await asyncio.gather(*commits))

    assert asyncio.run(scenario()) == [2, 5, 3]
    with store.connect() as conn:
        acked = dict(conn.execute(sa.select(agents.c.agent_id, agents.c.acked_seq)).all())
        assert acked == {"web1": 3, "db1": 5}
        assert conn.execute(sa.select(sa.func.count()).select_from(results)).scalar() == 4
    assert _status_row(store) == ("WARN", (T0 + timedelta(minutes=2)).replace(tzinfo=None))


def test_after_a_failed_batch_the_streams_later_batches_are_refused_and_others_commit(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    # A job run without a run id breaks a NOT NULL column: the store refuses that batch. The
    # stream's next batch was already queued in the same job; committing it would move
    # web1's acked_seq past the failed batch, and the agent would delete it from its spool.
    bad = IncomingItem(1, "acme", "web1", JobRun(
        probe="etl-log", job="nightly-load", run_id=None,  # type: ignore[arg-type]
        outcome=JobOutcome.FAILED, observed_at=T0))
    ingest = Ingest(writer, clock)
    release = hold_writer(writer)

    async def scenario() -> list[int | BaseException]:
        web1 = ingest.stream("web1", "acme", "web1")
        db1 = ingest.stream("db1", "globex", "db1")
        commits = [
            asyncio.ensure_future(web1.commit([bad])),
            asyncio.ensure_future(web1.commit([_result(2, Status.OK, 1)])),
            asyncio.ensure_future(db1.commit([_result(7, Status.OK, 0, customer="globex")])),
        ]
        await asyncio.sleep(0.05)
        release.set()
        return list(await asyncio.gather(*commits, return_exceptions=True))

    with capture_logs():
        outcomes = asyncio.run(scenario())
    assert isinstance(outcomes[0], sa.exc.IntegrityError)
    assert isinstance(outcomes[1], StreamFailedError)
    assert outcomes[2] == 7
    with store.connect() as conn:
        acked = dict(conn.execute(sa.select(agents.c.agent_id, agents.c.acked_seq)).all())
        assert acked == {"web1": 0, "db1": 7}
        assert conn.execute(sa.select(results.c.agent_id)).scalars().all() == ["db1"]

    # The agent reconnects (a new stream) and resends: the good batch commits now.
    assert asyncio.run(ingest.stream("web1", "acme", "web1").commit(
        [_result(2, Status.OK, 1)])) == 2


def test_a_batch_of_any_size_is_stored_whole_in_statements_of_many_rows(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    # 301 = 128 + 128 + 32 + 8 + 4 + 1 rows: every statement size the driver path uses.
    ingest = Ingest(writer, clock)
    items = [_result(seq, Status.OK, seq % 60, check=f"disk:/d{seq % 7}")
             for seq in range(1, 302)]
    assert asyncio.run(ingest.commit_batch("web1", "acme", "web1", items)) == 301
    with store.connect() as conn:
        stored = conn.execute(sa.select(results.c.seq, results.c.check_key)
                              .order_by(results.c.seq)).all()
        states = conn.execute(sa.select(sa.func.count()).select_from(check_state)).scalar()
    assert [(row.seq, row.check_key) for row in stored] == [
        (seq, f"disk:/d{seq % 7}") for seq in range(1, 302)]
    assert states == 7


# Hypothesis takes naive bounds, and puts the time zones on itself.
@given(moment=st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31),  # noqa: DTZ001
                           timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-5))])))
def test_the_driver_time_text_is_the_dialects_own(moment: datetime) -> None:
    sqlite_dialect = sqlite.dialect()
    dialect_text = UTC_TIME.dialect_impl(sqlite_dialect).bind_processor(sqlite_dialect)
    assert dialect_text is not None
    with sa.create_engine("sqlite://").connect() as conn:
        assert time_to_db(conn)(moment) == dialect_text(moment)


def test_metrics_are_stored_as_json_that_reads_back_as_sent_non_finite_values_included(
    store: sa.Engine, writer: StoreWriter, clock: ManualClock
) -> None:
    metrics = {"used_percent": 41.5, "free_bytes": 1.5e16, "tiny": 1e-7, "ünits": -0.0,
               "ratio": math.nan, "limit": math.inf, "null_count": 3.0}
    item = IncomingItem(1, "acme", "web1", Result(
        probe="disks", check="disk:/data", status=Status.OK, summary="ok", observed_at=T0,
        metrics=metrics))
    ingest = Ingest(writer, clock)
    asyncio.run(ingest.commit_batch("web1", "acme", "web1", [item]))
    with store.connect() as conn:
        stored = conn.execute(sa.select(results.c.metrics_json)).scalar_one()
        state = conn.execute(sa.select(check_state.c.metrics_json)).scalar_one()
    assert stored == state
    read_back = json.loads(stored)
    assert math.isnan(read_back.pop("ratio"))
    assert read_back == {k: v for k, v in metrics.items() if k != "ratio"}
    # Finite metrics only: the compact form, no spaces.
    plain = IncomingItem(2, "acme", "web1", Result(
        probe="disks", check="disk:/logs", status=Status.OK, summary="ok", observed_at=T0,
        metrics={"used_percent": 41.5, "free_bytes": 2.0}))
    asyncio.run(ingest.commit_batch("web1", "acme", "web1", [plain]))
    with store.connect() as conn:
        assert conn.execute(sa.select(results.c.metrics_json).where(
            results.c.seq == 2)).scalar_one() == '{"used_percent":41.5,"free_bytes":2.0}'
