"""The presets on written fixtures, and on the real logs in ../shared/material/logs/."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from probes.base import ProbeContext
from probes.clock import ManualClock
from probes.joblog.probe import JoblogConfig, JoblogProbe
from probes.result import JobOutcome, JobRun, Result, Status

NOW = datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
# The material folder sits next to the clone: /work/shared/material beside /work/main.
MATERIAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "material" / "logs"


def run_preset(tmp_path: Path, paths: list[str], preset: str) -> list[JobRun | Result]:
    config = JoblogConfig.model_validate({
        "name": "p", "type": "joblog", "paths": paths,
        "jobs": [{"name": preset, "preset": preset}],
    })
    probe = JoblogProbe(config, ProbeContext(ManualClock(NOW), tmp_path / "state"))
    return list(probe.run().items)


def job_runs(items: list[JobRun | Result]) -> list[JobRun]:
    return [i for i in items if isinstance(i, JobRun)]


def test_cron_preset_makes_each_cmd_line_a_start(tmp_path: Path) -> None:
    log = tmp_path / "cron"
    log.write_text(
        "Feb 19 03:49:01 web1 CROND[899752]: (root) CMD (run-parts /etc/cron.hourly)\n"
        "Feb 19 03:49:01 web1 crond(pam_unix)[2915]: session closed for user root\n"
        "Apr  3 02:00:01 web1 CRON[12]: (backup) CMD (/usr/local/bin/backup.sh --full)\n"
    )
    runs = job_runs(run_preset(tmp_path, [str(log)], "cron"))
    assert [(r.job, r.run_id, r.outcome) for r in runs] == [
        ("run-parts /etc/cron.hourly", "899752", JobOutcome.RUNNING),
        ("/usr/local/bin/backup.sh --full", "12", JobOutcome.RUNNING),
    ]
    # Syslog has no year: the one that does not put the line in the future.
    assert runs[0].started_at == datetime(2024, 2, 19, 3, 49, 1, tzinfo=UTC)
    assert runs[1].started_at == datetime(2024, 4, 3, 2, 0, 1, tzinfo=UTC)


def test_airflow_preset_finds_a_failed_task_with_its_traceback(tmp_path: Path) -> None:
    log = tmp_path / "attempt=1.log"
    log.write_text(
        "[2024-05-01 02:00:00,100] {taskinstance.py:1330} INFO - Starting attempt 1 of 2\n"
        "[2024-05-01 02:00:03,000] {taskinstance.py:3311} ERROR - Task failed with exception\n"
        "Traceback (most recent call last):\n"
        '  File "/opt/dags/load.py", line 9, in run\n'
        "ValueError: bad row 17\n"
        "[2024-05-01 02:00:03,500] {taskinstance.py:1225} INFO - Marking task as FAILED. "
        "dag_id=sales, task_id=load, run_id=scheduled__2024-04-30, execution_date=x\n"
    )
    start, failed = job_runs(run_preset(tmp_path, [str(log)], "airflow"))
    assert start.outcome is JobOutcome.RUNNING
    assert (failed.job, failed.run_id, failed.outcome) == (
        "sales.load", "scheduled__2024-04-30", JobOutcome.FAILED)
    assert failed.duration_s == 3.4
    assert "ValueError: bad row 17" in failed.excerpt
    assert "Task failed with exception" in failed.excerpt


def test_airflow_preset_finds_a_successful_task(tmp_path: Path) -> None:
    log = tmp_path / "attempt=1.log"
    log.write_text(
        "[2024-05-01 02:00:00,000] {taskinstance.py:1330} INFO - Starting attempt 1 of 1\n"
        "[2024-05-01 02:01:00,000] {taskinstance.py:1400} INFO - Marking task as SUCCESS. "
        "dag_id=sales, task_id=load, run_id=manual__1, execution_date=x\n"
    )
    _, done = job_runs(run_preset(tmp_path, [str(log)], "airflow"))
    assert (done.job, done.outcome, done.duration_s) == ("sales.load", JobOutcome.SUCCEEDED, 60.0)


def test_shell_preset_start_end_and_error(tmp_path: Path) -> None:
    log = tmp_path / "jobs.log"
    log.write_text(
        "2024-05-01T02:00:00+02:00 START nightly_load run=42\n"
        "2024-05-01T02:00:05+02:00 END nightly_load run=42 exit=0\n"
        "START cleanup\n"
        "ERROR cleanup no space left\n"
    )
    runs = job_runs(run_preset(tmp_path, [str(log)], "shell"))
    assert [(r.job, r.outcome) for r in runs] == [
        ("nightly_load", JobOutcome.RUNNING),
        ("nightly_load", JobOutcome.SUCCEEDED),
        ("cleanup", JobOutcome.RUNNING),
        ("cleanup", JobOutcome.FAILED),
    ]
    assert runs[1].finished_at == datetime(2024, 5, 1, 0, 0, 5, tzinfo=UTC)


# --------------------------------------------------------------------------- real logs

def material(name: str) -> Path:
    path = MATERIAL / name
    if not MATERIAL.is_dir():
        pytest.skip(f"{MATERIAL} is absent: the shared test material is not next to the clone")
    return path


@pytest.mark.material
def test_thunderbird_crond_lines_are_cron_starts(tmp_path: Path) -> None:
    log = material("loghub_Thunderbird_2k.log")
    runs = job_runs(run_preset(tmp_path, [str(log)], "cron"))
    # The README counts 62 crond lines: pam_unix session lines plus the CMD lines.
    expected = sum(1 for line in log.read_text(errors="replace").splitlines()
                   if "crond[" in line and ") CMD (" in line)
    assert expected > 0
    assert len(runs) == expected
    assert all(r.outcome is JobOutcome.RUNNING for r in runs)
    assert "run-parts /etc/cron.hourly" in {r.job for r in runs}


@pytest.mark.material
def test_insights_cron_log_gives_four_starts(tmp_path: Path) -> None:
    runs = job_runs(run_preset(tmp_path, [str(material("insights_core_cron_log_CRON_LOG.log"))],
                               "cron"))
    assert [r.run_id for r in runs] == ["899752", "899751", "899753", "908273"]
    assert runs[3].job == "run-parts /etc/cron.hourly"


@pytest.mark.material
def test_airflow_failed_log_gives_a_failed_run_with_the_traceback(tmp_path: Path) -> None:
    log = material("airflow/airflow_ui_test_task_log_failed_traceback_v2.log")
    failed = [r for r in job_runs(run_preset(tmp_path, [str(log)], "airflow"))
              if r.outcome is JobOutcome.FAILED]
    assert len(failed) == 1
    assert failed[0].job == "reproduce_log_error_dag.reproduce_log_error_python_task2"
    assert failed[0].run_id == "manual__2024-11-30T02:18:22.203608+00:00"
    assert "AirflowException: Process returned non-zero exit status 1." in failed[0].excerpt
    assert "Traceback (most recent call last):" in failed[0].excerpt


@pytest.mark.material
def test_airflow_success_log_has_a_start_and_no_failure(tmp_path: Path) -> None:
    log = material("airflow/airflow_ui_test_task_log_success_v1.log")
    runs = job_runs(run_preset(tmp_path, [str(log)], "airflow"))
    assert [r.outcome for r in runs] == [JobOutcome.RUNNING]


@pytest.mark.material
@pytest.mark.parametrize("preset", ["cron", "airflow", "shell"])
def test_every_material_log_is_read_whole_without_a_crash(tmp_path: Path, preset: str) -> None:
    root = material("")
    files = [p for p in root.rglob("*") if p.is_file()]
    items = run_preset(tmp_path, [str(root / "**" / "*")], preset)
    (result,) = [i for i in items if isinstance(i, Result)]
    assert result.status is Status.OK
    assert result.metrics["files"] == len(files)
    assert result.metrics["bytes_read"] == sum(p.stat().st_size for p in files)
