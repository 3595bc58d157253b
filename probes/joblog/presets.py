"""Named presets: the log formats users meet, so that watching them needs no regex.

Each preset is the set of patterns a `jobs:` entry would otherwise spell out; docs/probes/joblog.md
shows an example log for each. Patterns are line regexes with the named groups of patterns.py.
"""

from __future__ import annotations

from dataclasses import dataclass

# ISO 8601 as `date -Is`, `date -u +%FT%TZ` or Python's isoformat() write it.
_ISO_TS = r"(?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
_SHELL_JOB = r"(?P<job>[A-Za-z0-9_.@/-]+)"
_SHELL_RUN = r"(?:\s+run=(?P<run_id>\S+))?"


@dataclass(frozen=True, slots=True)
class Preset:
    start: tuple[str, ...]
    success: tuple[str, ...]
    failure: tuple[str, ...]
    ts_format: str
    # Lines under a failure that belong to its record; None: the default (indented lines,
    # tracebacks).
    continuation: str | None = None
    excerpt_before: int = 5
    excerpt_after: int = 5


PRESETS: dict[str, Preset] = {
    # syslog / cron: `Feb 19 03:49:01 host CROND[899752]: (root) CMD (run-parts /etc/cron.hourly)`
    # (cronie writes CROND, Vixie and Debian cron CRON, older ones crond). Each CMD line is the
    # start of one run of that command; cron logs no end, so runs stay RUNNING (wrap the
    # command with `daybreak-agent run --job` to learn how it ended). Job name: the command.
    "cron": Preset(
        start=(
            r"(?P<ts>[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d) \S+ (?i:crond?)\[(?P<run_id>\d+)\]: "
            r"\([^)]*\) CMD \((?P<job>.*)\)\s*$",
        ),
        success=(),
        failure=(),
        ts_format="%b %d %H:%M:%S",
        excerpt_before=0,
        excerpt_after=0,
    ),
    # Airflow 2 task log (one file per task attempt):
    #   [2022-06-04 00:00:01,906] {taskinstance.py:1330} INFO - Starting attempt 1 of 1
    #   [..] {taskinstance.py:3311} ERROR - Task failed with exception
    #   Traceback (most recent call last): ...
    #   [..] INFO - Marking task as FAILED. dag_id=D, task_id=T, run_id=R, ...
    # Job name: "<dag_id>.<task_id>"; the traceback before the FAILED line is in the excerpt.
    "airflow": Preset(
        start=(r"^\[(?P<ts>[\d-]+ [\d:]+,\d+)\] \{[^}]*\} INFO - Starting attempt \d+",),
        success=(
            r"^\[(?P<ts>[\d-]+ [\d:]+,\d+)\] \{[^}]*\} INFO - Marking task as SUCCESS\. "
            r"dag_id=(?P<job_dag>[^,]+), task_id=(?P<job_task>[^,]+), run_id=(?P<run_id>[^,]+)",
        ),
        failure=(
            r"^\[(?P<ts>[\d-]+ [\d:]+,\d+)\] \{[^}]*\} INFO - Marking task as FAILED\. "
            r"dag_id=(?P<job_dag>[^,]+), task_id=(?P<job_task>[^,]+), run_id=(?P<run_id>[^,]+)",
        ),
        ts_format="%Y-%m-%d %H:%M:%S,%f",
        # Every line that does not start a new `[timestamp]` record belongs to the one above.
        continuation=r"^(?!\[\d{4}-\d\d-\d\d )",
        excerpt_before=40,
        excerpt_after=2,
    ),
    # The generic shell-script log, as a script writes it with `echo "$(date -Is) START load"`:
    #   2024-05-01T02:00:00+00:00 START nightly_load run=42
    #   2024-05-01T02:00:04+00:00 ERROR nightly_load cannot reach db01
    #   2024-05-01T02:00:05+00:00 END nightly_load run=42 exit=3
    # The timestamp is optional; `run=` is optional; `END <job>` without `exit=` or with
    # `exit=0` is a success, `exit=<non-zero>` or an `ERROR <job>` line a failure.
    "shell": Preset(
        start=(rf"^(?:{_ISO_TS}\s+)?START\s+{_SHELL_JOB}{_SHELL_RUN}",),
        success=(rf"^(?:{_ISO_TS}\s+)?END\s+{_SHELL_JOB}{_SHELL_RUN}(?:\s+exit=0)?\s*$",),
        failure=(
            rf"^(?:{_ISO_TS}\s+)?END\s+{_SHELL_JOB}{_SHELL_RUN}\s+exit=(?P<exit_code>-?[1-9]\d*)",
            rf"^(?:{_ISO_TS}\s+)?ERROR\s+{_SHELL_JOB}\b",
        ),
        ts_format="iso8601",
    ),
}
