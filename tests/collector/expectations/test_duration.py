"""job_duration: a run against the median of its recent successful runs, read from job_runs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.expectations.base import Outcome
from collector.expectations.duration import JobDurationExpectation, judge_run
from collector.store.schema import job_runs, metadata
from probes.result import JobOutcome, JobRun

START = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)


def duration(**keys: object) -> JobDurationExpectation:
    return JobDurationExpectation.model_validate(
        {"kind": "job_duration", "name": "export-duration", "job": "export*", **keys})


def a_run(minutes: float, run_id: str = "now", outcome: JobOutcome = JobOutcome.SUCCEEDED,
          day: int = 30) -> JobRun:
    started = START + timedelta(days=day)
    return JobRun(probe="wrapper", job="export", run_id=run_id, outcome=outcome,
                  observed_at=started + timedelta(minutes=minutes), started_at=started,
                  finished_at=started + timedelta(minutes=minutes))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'runs.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def store(db: sa.Engine, runs: list[JobRun], host: str = "db1") -> None:
    with db.begin() as conn:
        conn.execute(job_runs.insert(), [{
            "customer": "acme", "host": host, "job": r.job, "run_id": r.run_id,
            "probe": r.probe, "agent_id": "a", "outcome": r.outcome.value,
            "started_at": r.started_at, "finished_at": r.finished_at,
            "duration_s": r.duration_s, "observed_at": r.observed_at} for r in runs])


def history(minutes: Sequence[float]) -> list[JobRun]:
    return [a_run(m, f"r{i}", day=i) for i, m in enumerate(minutes)]


def test_a_run_over_twice_the_median_of_the_last_runs_is_a_problem(db: sa.Engine) -> None:
    store(db, history([10, 11, 9, 10, 12, 10, 300]))  # one old hung run does not move a median
    with db.connect() as conn:
        verdict = judge_run(conn, "acme", duration(), "db1", a_run(25))
    assert verdict is not None
    assert verdict.outcome is Outcome.PROBLEM
    assert verdict.title == "job export on db1 took 25m 00s, 2.5x its usual 10m 00s"


def test_a_run_in_its_usual_range_recovers(db: sa.Engine) -> None:
    store(db, history([10, 11, 9, 10, 12]))
    with db.connect() as conn:
        verdict = judge_run(conn, "acme", duration(), "db1", a_run(14))
    assert verdict is not None
    assert verdict.outcome is Outcome.RECOVERED


def test_too_short_is_a_problem_only_with_min_factor(db: sa.Engine) -> None:
    store(db, history([10, 11, 9, 10, 12]))
    with db.connect() as conn:
        plain = judge_run(conn, "acme", duration(), "db1", a_run(1))
        strict = judge_run(conn, "acme", duration(min_factor=0.25), "db1", a_run(1))
    assert plain is not None
    assert plain.outcome is Outcome.RECOVERED
    assert strict is not None
    assert strict.outcome is Outcome.PROBLEM
    assert "shorter than" in strict.observed


def test_without_enough_history_there_is_no_opinion(db: sa.Engine) -> None:
    store(db, history([10, 11, 9]))
    with db.connect() as conn:
        assert judge_run(conn, "acme", duration(), "db1", a_run(60)) is None


def test_only_successful_runs_of_the_same_host_make_the_history(db: sa.Engine) -> None:
    store(db, [a_run(1, f"f{i}", JobOutcome.FAILED, day=i) for i in range(5)])
    store(db, [a_run(100, f"o{i}", day=i) for i in range(5)], host="db2")
    with db.connect() as conn:
        assert judge_run(conn, "acme", duration(), "db1", a_run(60)) is None


def test_the_window_takes_the_most_recent_runs(db: sa.Engine) -> None:
    store(db, history([100] * 10 + [10] * 5))
    with db.connect() as conn:
        verdict = judge_run(conn, "acme", duration(window=5), "db1", a_run(25))
    assert verdict is not None
    assert verdict.outcome is Outcome.PROBLEM
