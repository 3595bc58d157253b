"""The joblog probe end to end on real files: config, job runs, excerpts, commit and restart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from probes.base import ProbeContext
from probes.clock import ManualClock
from probes.configfile import ConfigError, load_text
from probes.joblog.probe import JoblogConfig, JoblogProbe
from probes.result import JobOutcome, JobRun, Result, Status

START = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


def make_probe(tmp_path: Path, **overrides: object) -> JoblogProbe:
    fields: dict[str, object] = {
        "name": "night",
        "type": "joblog",
        "paths": [str(tmp_path / "logs" / "*.log")],
        "jobs": [{"name": "load", "preset": "shell"}],
    }
    fields.update(overrides)
    config = JoblogConfig.model_validate(fields)
    ctx = ProbeContext(clock=ManualClock(START), state_dir=tmp_path / "state")
    return JoblogProbe(config, ctx)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


def runs_of(items: object) -> list[JobRun]:
    return [i for i in items if isinstance(i, JobRun)]  # type: ignore[attr-defined]


def result_of(items: object) -> Result:
    (result,) = [i for i in items if isinstance(i, Result)]  # type: ignore[attr-defined]
    return result


def test_a_job_that_logs_an_error_is_a_failed_run_with_its_excerpt(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "load.log"
    write(log, "2024-05-01T02:00:00+00:00 START nightly_load run=42\n"
               "2024-05-01T02:00:01+00:00 INFO loading 1200 rows\n"
               "2024-05-01T02:00:04+00:00 ERROR nightly_load cannot reach db01\n"
               "Traceback (most recent call last):\n"
               '  File "load.py", line 3, in <module>\n'
               "ConnectionError: db01\n"
               "2024-05-01T02:00:05+00:00 END nightly_load run=42 exit=3\n")
    output = make_probe(tmp_path).run()
    runs = runs_of(output.items)
    assert [(r.job, r.run_id, r.outcome) for r in runs] == [
        ("nightly_load", "42", JobOutcome.RUNNING),
        ("nightly_load", "42", JobOutcome.FAILED),
        ("nightly_load", "42", JobOutcome.FAILED),
    ]
    error = runs[1]
    assert "INFO loading 1200 rows" in error.excerpt
    assert "ConnectionError: db01" in error.excerpt
    assert error.started_at == datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
    assert error.duration_s == 4.0
    offset = log.read_bytes().index(b"2024-05-01T02:00:04")
    assert error.source == f"{log}:{offset}"
    assert runs[2].exit_code == 3
    result = result_of(output.items)
    assert result.check == "joblog:night"
    assert result.status is Status.OK
    assert result.metrics["lines_read"] == 7
    assert result.metrics["files"] == 1


def test_a_success_closes_the_run_with_its_duration(tmp_path: Path) -> None:
    write(tmp_path / "logs" / "a.log", "2024-05-01T02:00:00Z START load\n")
    probe = make_probe(tmp_path)
    output = probe.run()
    assert output.commit is not None
    output.commit()
    write(tmp_path / "logs" / "a.log", "2024-05-01T02:10:00Z END load exit=0\n")
    (done,) = runs_of(probe.run().items)
    assert done.outcome is JobOutcome.SUCCEEDED
    assert done.duration_s == 600.0


def test_several_jobs_in_one_file_and_one_job_across_files(tmp_path: Path) -> None:
    write(tmp_path / "logs" / "a.log", "START load\nSTART export\nEND export exit=0\n")
    write(tmp_path / "logs" / "b.log", "END load exit=1\n")
    runs = runs_of(make_probe(tmp_path).run().items)
    outcomes = {(r.job, r.outcome) for r in runs}
    assert ("export", JobOutcome.SUCCEEDED) in outcomes
    (load_end,) = [r for r in runs if r.job == "load" and r.outcome is JobOutcome.FAILED]
    assert load_end.started_at is not None  # the start was in the other file
    assert load_end.exit_code == 1


def test_nothing_is_lost_or_repeated_across_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "a.log"
    write(log, "START load\nERROR load first\n")
    first = make_probe(tmp_path).run()
    assert first.commit is not None
    first.commit()
    write(log, "ERROR load second\n")
    again = make_probe(tmp_path).run()  # a new process, same state dir
    failures = [r for r in runs_of(again.items) if r.outcome is JobOutcome.FAILED]
    assert [f.excerpt.splitlines()[-1] for f in failures] == ["ERROR load second"]
    # The excerpt's "before" lines come from the previous process's run.
    assert "START load" in failures[0].excerpt


def test_an_uncommitted_run_is_read_again_by_the_next_process(tmp_path: Path) -> None:
    write(tmp_path / "logs" / "a.log", "ERROR load boom\n")
    assert len(runs_of(make_probe(tmp_path).run().items)) == 1  # crashed before commit
    assert len(runs_of(make_probe(tmp_path).run().items)) == 1


def test_a_file_that_cannot_be_read_makes_the_result_warn(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "gone.log").symlink_to(tmp_path / "nowhere")
    result = result_of(make_probe(tmp_path).run().items)
    assert result.status is Status.WARN
    assert "gone.log" in result.detail


def test_custom_patterns_with_named_groups(tmp_path: Path) -> None:
    write(tmp_path / "logs" / "x.log",
          "01/05/2024 02:00:00 export #17 begins\n"
          "01/05/2024 02:30:00 export #17 FATAL disk full\n")
    probe = make_probe(tmp_path, jobs=[{
        "name": "export",
        "start": r"^(?P<ts>\S+ \S+) export #(?P<run_id>\d+) begins",
        "failure": [r"^(?P<ts>\S+ \S+) export #(?P<run_id>\d+) FATAL"],
        "ts_format": "%d/%m/%Y %H:%M:%S",
        "timezone": "Europe/Paris",
    }])
    _start, failed = runs_of(probe.run().items)
    assert failed.run_id == "17"
    assert failed.started_at == datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    assert failed.duration_s == 1800.0


def test_a_bad_regex_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    text = (
        "name: night\ntype: joblog\npaths: [/var/log/x.log]\n"
        "jobs:\n  - name: load\n    failure: ['ERROR (']\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_text(JoblogConfig, text, "agent.yaml")
    assert "agent.yaml:6: jobs[0].failure" in str(caught.value)
    assert "bad regular expression" in str(caught.value)


def test_an_unknown_group_or_a_job_without_patterns_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown group 'who'"):
        JoblogConfig.model_validate({"name": "n", "type": "joblog", "paths": ["x"],
                                     "jobs": [{"name": "j", "start": "(?P<who>x)"}]})
    with pytest.raises(ValueError, match="give a preset"):
        JoblogConfig.model_validate({"name": "n", "type": "joblog", "paths": ["x"],
                                     "jobs": [{"name": "j"}]})


def test_garbage_lines_do_not_stop_matching(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "a.log"
    log.parent.mkdir()
    log.write_bytes(b"\xff\xfe\x00binary\x00\n" + b"z" * 3_000_000 + b"\nERROR load \xff after\n")
    probe = make_probe(tmp_path, max_line_bytes=4096)
    (failed,) = runs_of(probe.run().items)
    assert failed.outcome is JobOutcome.FAILED
    assert "ERROR load \ufffd after" in failed.excerpt
    assert len(failed.excerpt.encode()) <= 16 * 1024
