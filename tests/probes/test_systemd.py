"""The systemd job source: recorded `systemctl show` outputs through the pure parser, the local
run against stand-in systemctl/journalctl programs (this machine has no running systemd), the
real systemctl failing here, and the SSH form."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pydantic
import pytest

from probes.base import ProbeContext
from probes.clock import ManualClock
from probes.parsers.systemctl import parse_show
from probes.registry import ProbeConfig, build_probe
from probes.result import JobOutcome, JobRun, Result, Status
from probes.sshform import CommandOutput
from probes.systemd import (
    NOT_RUNNING,
    MonotonicReference,
    SystemdConfig,
    SystemdProbe,
    SystemdSshForm,
    parse_timestamp,
    parse_units,
    show_command,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "systemd"
MATERIAL = REPO / ".." / "shared" / "material" / "cmd_output"
NOW = datetime(2024, 6, 12, 4, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


def config(*units: object, **keys: object) -> SystemdConfig:
    return SystemdConfig.model_validate(
        {"name": "timers", "type": "systemd", "units": list(units), **keys}
    )


def at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# -- configuration -------------------------------------------------------------------------------


def test_a_timer_watches_the_service_of_its_name_and_the_job_is_named_after_the_unit() -> None:
    cfg = config(
        "backup.timer",
        {"unit": "etl-load.timer", "job": "nightly_load", "service": "etl-load@full.service"},
        "report.service",
    )
    backup, etl, report = cfg.units
    assert (backup.job_name, backup.service_name) == ("backup.timer", "backup.service")
    assert (etl.job_name, etl.service_name) == ("nightly_load", "etl-load@full.service")
    assert (report.job_name, report.service_name) == ("report.service", "report.service")
    assert show_command(cfg)[-6:] == [
        "--",
        "backup.timer",
        "backup.service",
        "etl-load.timer",
        "etl-load@full.service",
        "report.service",
    ]


@pytest.mark.parametrize(
    ("units", "keys", "message"),
    [
        (["backup"], {}, "String should match pattern"),
        (["rm -rf /.service"], {}, "String should match pattern"),
        (["a.timer", "a.service"], {}, "a.service is watched twice"),
        ([], {}, "at least 1 item"),
        (["a.timer"], {"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        (["a.timer"], {"journal_lines": -1}, "greater than or equal to 0"),
    ],
)
def test_a_bad_configuration_is_refused_with_a_clear_message(
    units: list[str], keys: dict[str, object], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=re.escape(message)):
        config(*units, **keys)


def test_every_example_in_the_documentation_is_a_valid_probe_entry() -> None:
    import yaml

    doc = (REPO / "docs" / "probes" / "systemd.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    assert blocks
    adapter: pydantic.TypeAdapter[ProbeConfig] = pydantic.TypeAdapter(ProbeConfig)
    for block in blocks:
        for entry in yaml.safe_load(block):
            assert isinstance(adapter.validate_python(entry), SystemdConfig)


# -- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("@1718157600", None, "2024-06-12T02:00:00+00:00"),
        ("Tue 2019-11-19 23:55:50 EST", NEW_YORK, "2019-11-20T04:55:50+00:00"),
        ("Tue 2020-02-25 10:39:46 GMT", None, "2020-02-25T10:39:46+00:00"),
        ("Wed 2024-06-12 02:00:00.250000 UTC", None, "2024-06-12T02:00:00.250000+00:00"),
        ("Wed 2024-06-12 05:00:00 +03", None, "2024-06-12T02:00:00+00:00"),
        # Europe/Riga falls back from 04:00 EEST to 03:00 EET on 2021-10-31: 03:30 happens twice,
        # and the abbreviation says which.
        ("Sun 2021-10-31 03:30:00 EEST", ZoneInfo("Europe/Riga"), "2021-10-31T00:30:00+00:00"),
        ("Sun 2021-10-31 03:30:00 EET", ZoneInfo("Europe/Riga"), "2021-10-31T01:30:00+00:00"),
    ],
)
def test_timestamps_are_read_with_their_zone(
    text: str, zone: ZoneInfo | None, expected: str
) -> None:
    parsed = parse_timestamp(text, zone)
    assert parsed is not None
    assert parsed.isoformat() == expected


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("", None),
        ("n/a", None),
        ("Tue 2019-11-19 23:55:50 EST", None),  # EST, without knowing the zone: refuse to guess
        ("Tue 2019-11-19 23:55:50 CET", NEW_YORK),  # not an abbreviation of that zone
        ("yesterday", None),
    ],
)
def test_a_timestamp_that_cannot_be_read_safely_is_unknown(
    text: str, zone: ZoneInfo | None
) -> None:
    assert parse_timestamp(text, zone) is None


# -- the pure parser on recorded outputs ---------------------------------------------------------


def test_a_oneshot_that_exited_0_is_a_succeeded_run_with_its_times() -> None:
    [run] = parse_units(fixture("backup-succeeded.show"), config("backup.timer"), None).runs
    assert run.outcome is JobOutcome.SUCCEEDED
    assert (run.job, run.service, run.exit_code) == ("backup.timer", "backup.service", 0)
    assert run.run_id == "8e7d1a2b3c4d4e5f8a9b0c1d2e3f4a5b"
    assert (run.started_at, run.finished_at) == (at(1718157600), at(1718157723))


def test_a_run_that_exited_3_is_failed_with_exit_status_3() -> None:
    report = parse_units(fixture("report-failed-exit3.show"), config("report.timer"), None)
    [run] = report.runs
    assert (run.outcome, run.exit_code, run.result) == (JobOutcome.FAILED, 3, "exit-code")
    assert run.finished_at == at(1718161214)
    assert report.problems == []


def test_a_oneshot_still_activating_is_running_and_the_previous_exit_is_not_its_end() -> None:
    cfg = config(
        {"unit": "etl-load.timer", "job": "nightly_load", "service": "etl-load@full.service"}
    )
    [run] = parse_units(fixture("etl-running.show"), cfg, None).runs
    assert (run.job, run.outcome) == ("nightly_load", JobOutcome.RUNNING)
    assert (run.started_at, run.finished_at, run.exit_code) == (at(1718155800), None, None)


def test_a_run_killed_by_a_signal_is_failed_with_128_plus_the_signal() -> None:
    [run] = parse_units(fixture("cleanup-killed.show"), config("cleanup.timer"), None).runs
    assert (run.outcome, run.exit_code, run.result) == (JobOutcome.FAILED, 137, "signal")


def test_old_systemd_without_invocation_ids_and_unix_times_still_gives_the_run() -> None:
    cfg = config("nightly.service")
    [run] = parse_units(fixture("legacy-centos7.show"), cfg, NEW_YORK).runs
    # No InvocationID before systemd 232: the start's monotonic time names the run.
    assert (run.run_id, run.outcome, run.exit_code) == ("9433000", JobOutcome.FAILED, 1)
    assert run.started_at == datetime(2019, 11, 20, 4, 55, 49, tzinfo=UTC)
    assert run.finished_at == datetime(2019, 11, 20, 4, 56, 12, tzinfo=UTC)
    # The local run converts the monotonic values instead: exact, and no zone needed.
    boot = datetime(2019, 11, 20, 4, 55, 40, tzinfo=UTC)
    reference = MonotonicReference(wall=boot.replace(hour=5), monotonic_s=3600.0)
    [exact] = parse_units(fixture("legacy-centos7.show"), cfg, None, reference).runs
    assert exact.started_at == datetime(2019, 11, 20, 4, 55, 49, 433000, tzinfo=UTC)
    # Without a zone or a reference, the EST times stay unknown rather than wrong.
    [unzoned] = parse_units(fixture("legacy-centos7.show"), cfg, None).runs
    assert (unzoned.started_at, unzoned.finished_at) == (None, None)


def test_a_service_that_has_not_run_since_boot_gives_no_run() -> None:
    show = (
        "Type=oneshot\nResult=success\nExecMainStartTimestampMonotonic=0\n"
        "ExecMainExitTimestampMonotonic=0\nId=x.service\nLoadState=loaded\n"
        "ActiveState=inactive\nInvocationID=\n"
    )
    assert parse_units(show, config("x.service"), None).runs == []


def test_exit_statuses_listed_in_success_exit_status_count_as_success() -> None:
    show = fixture("report-failed-exit3.show").replace("Result=exit-code", "Result=success")
    show = show.replace(
        "SuccessExitStatus=\nId=report.service", "SuccessExitStatus=3 SIGUSR1\nId=report.service"
    )
    [run] = parse_units(show, config("report.timer"), None).runs
    assert (run.outcome, run.exit_code) == (JobOutcome.SUCCEEDED, 3)


def test_a_missing_timer_or_one_that_starts_another_service_is_a_problem_to_fix() -> None:
    missing = (
        "Id=gone.timer\nLoadState=not-found\nActiveState=inactive\n\n"
        "Id=gone.service\nLoadState=not-found\nActiveState=inactive\n"
    )
    report = parse_units(missing, config("gone.timer"), None)
    assert report.problems == ["gone.timer is not loaded (not-found)"]
    assert report.runs == []
    cfg = config({"unit": "etl-load.timer", "service": "etl-load.service"})
    shown = fixture("etl-running.show").replace("Id=etl-load@full.service", "Id=etl-load.service")
    problems = parse_units(shown, cfg, None).problems
    assert problems == [
        "etl-load.timer starts etl-load@full.service, not etl-load.service: "
        "set service: etl-load@full.service"
    ]


@pytest.mark.material
def test_the_materials_systemctl_show_files_give_no_made_up_runs_and_their_times_read() -> None:
    folder = MATERIAL / "insights_core"
    if not folder.is_dir():
        pytest.skip(f"../shared/material is not here: {MATERIAL}")
    files = sorted(folder.glob("systemctl-show-*.out"))
    assert len(files) == 3
    for path in files:
        text = path.read_text()
        blocks = parse_show(text)
        names = [b.get("Id") or b.get("Names", "").split(" ")[0] for b in blocks]
        services = [n for n in names if n.endswith(".service")]
        if len(services) != len(names):
            continue  # targets: not job units
        report = parse_units(text, config(*services), NEW_YORK)
        # Long-running daemons with no ExecMain* or InvocationID properties: no run to report.
        assert report.runs == [], path.name
    target = parse_show(
        (folder / "systemctl-show-network.target_SYSTEMCTL_SHOW_TARGET.out").read_text()
    )[0]
    assert parse_timestamp(target["ActiveEnterTimestamp"], None) == datetime(
        2020, 2, 25, 10, 39, 46, tzinfo=UTC
    )
    tuned = parse_show(
        (folder / "systemctl-show-all-services_SYSTEMCTL_SHOW_ALL_EXAMPLES.out").read_text()
    )[-1]
    assert parse_timestamp(tuned["ActiveEnterTimestamp"], NEW_YORK) == datetime(
        2019, 11, 20, 4, 55, 53, tzinfo=UTC
    )


# -- the local run -------------------------------------------------------------------------------


def install_stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """systemctl and journalctl programs that answer from files, as a host would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answers = tmp_path / "answers"
    answers.mkdir()
    (bin_dir / "systemctl").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {answers}/systemctl.calls\n'
        f'if [ -e {answers}/old ] && echo "$*" | grep -q -- --timestamp=unix; then\n'
        "  echo \"systemctl: unrecognized option '--timestamp=unix'\" >&2; exit 1\nfi\n"
        f"cat {answers}/show\n"
    )
    (bin_dir / "journalctl").write_text(
        f'#!/bin/sh\necho "$*" >> {answers}/journalctl.calls\ncat {answers}/journal\n'
    )
    for program in bin_dir.iterdir():
        program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return answers


def probe_in(tmp_path: Path, cfg: SystemdConfig) -> SystemdProbe:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    probe = build_probe(cfg, ProbeContext(clock=ManualClock(NOW), state_dir=state))
    assert isinstance(probe, SystemdProbe)
    return probe


def job_runs(items: object) -> list[JobRun]:
    return [i for i in items if isinstance(i, JobRun)]  # type: ignore[attr-defined]


def test_each_run_is_emitted_once_per_outcome_even_across_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = install_stand_ins(tmp_path, monkeypatch)
    cfg = config("report.timer")
    show = fixture("report-failed-exit3.show")
    running = show.replace("ActiveState=failed", "ActiveState=activating").replace(
        "ExecMainExitTimestampMonotonic=183614250000", "ExecMainExitTimestampMonotonic=0"
    )
    (answers / "show").write_text(running)
    (answers / "journal").write_text(fixture("report-failed-exit3.journal"))
    probe = probe_in(tmp_path, cfg)

    first = probe.run()
    [started] = job_runs(first.items)
    assert started.outcome is JobOutcome.RUNNING
    assert started.source == "systemd:report.service"
    assert first.commit is not None
    first.commit()
    assert job_runs(probe.run().items) == []

    (answers / "show").write_text(show)
    ended = probe.run()
    [failed] = job_runs(ended.items)
    assert (failed.outcome, failed.exit_code, failed.run_id) == (
        JobOutcome.FAILED,
        3,
        "f3c2b1a0e9d84c7b8a695847362514a0",
    )
    assert failed.excerpt.endswith("Failed to start report.service - Nightly sales report.")
    assert 'relation "sales_2024_06" does not exist' in failed.excerpt
    journal_call = (answers / "journalctl.calls").read_text()
    assert journal_call == (
        "_SYSTEMD_INVOCATION_ID=f3c2b1a0e9d84c7b8a695847362514a0 -n 40 --no-pager -o short-iso\n"
    )
    # Not committed (the agent crashed before spooling): emitted again.
    assert len(job_runs(probe.run().items)) == 1
    last = probe.run()
    assert last.commit is not None
    last.commit()

    restarted = probe_in(tmp_path, cfg)
    output = restarted.run()
    assert job_runs(output.items) == []
    [summary] = [i for i in output.items if isinstance(i, Result)]
    assert (summary.check, summary.status) == ("systemd:timers", Status.OK)


def test_systemd_before_248_is_asked_again_without_unix_timestamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = install_stand_ins(tmp_path, monkeypatch)
    (answers / "old").touch()
    (answers / "show").write_text(fixture("legacy-centos7.show"))
    (answers / "journal").write_text("-- No entries --\n")
    probe = probe_in(
        tmp_path, config("nightly.service", timezone="America/New_York", journal_lines=5)
    )
    [run] = job_runs(probe.run().items)
    assert (run.outcome, run.exit_code, run.excerpt) == (JobOutcome.FAILED, 1, "-- No entries --")
    calls = (answers / "systemctl.calls").read_text().splitlines()
    assert len(calls) == 2
    assert "--timestamp=unix" in calls[0]
    assert "--timestamp=unix" not in calls[1]
    assert "--unit nightly.service --since=@" in (answers / "journalctl.calls").read_text()


def test_without_a_running_systemd_the_run_is_unknown_not_a_crash(tmp_path: Path) -> None:
    if Path("/run/systemd/system").exists():
        pytest.skip("systemd runs on this host")
    # The real systemctl when installed ("System has not been booted with systemd"), else none.
    probe = probe_in(tmp_path, config("backup.timer"))
    [result] = probe.run().items
    assert isinstance(result, Result)
    assert (result.status, result.summary) == (Status.UNKNOWN, NOT_RUNNING)
    assert result.detail


def test_a_journal_that_cannot_be_read_says_so_in_the_excerpt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = install_stand_ins(tmp_path, monkeypatch)
    (answers / "show").write_text(fixture("cleanup-killed.show"))
    (tmp_path / "bin" / "journalctl").write_text(
        "#!/bin/sh\necho 'No journal files were opened due to insufficient permissions.' >&2\n"
        "exit 1\n"
    )
    [run] = job_runs(probe_in(tmp_path, config("cleanup.timer")).run().items)
    assert run.exit_code == 137
    assert run.excerpt == (
        "journal not readable: No journal files were opened due to insufficient permissions."
    )


# -- the SSH form --------------------------------------------------------------------------------


def test_the_ssh_form_reads_the_same_runs_and_falls_back_to_wall_times() -> None:
    cfg = config("report.timer", "nightly.service", timezone="America/New_York")
    form = SystemdSshForm(cfg)
    unix_command, wall_command = form.commands()
    both = fixture("report-failed-exit3.show") + "\n" + fixture("legacy-centos7.show")
    outputs = {
        unix_command: CommandOutput(unix_command, 1, "", "unrecognized option '--timestamp=unix'"),
        wall_command: CommandOutput(wall_command, 0, both),
    }
    summary, report, nightly = form.parse(outputs, NOW)
    assert isinstance(summary, Result)
    assert summary.status is Status.OK
    assert isinstance(report, JobRun)
    assert isinstance(nightly, JobRun)
    assert (report.exit_code, report.started_at) == (3, at(1718161200))
    assert report.excerpt == (
        "see: journalctl _SYSTEMD_INVOCATION_ID=f3c2b1a0e9d84c7b8a695847362514a0 -n 40 "
        "--no-pager -o short-iso"
    )
    assert nightly.started_at == datetime(2019, 11, 20, 4, 55, 49, tzinfo=UTC)


def test_the_ssh_form_says_unknown_when_systemctl_fails_on_the_host() -> None:
    form = SystemdSshForm(config("backup.timer"))
    failing = "System has not been booted with systemd as init system (PID 1). Can't operate."
    outputs = {c: CommandOutput(c, 1, "", failing) for c in form.commands()}
    [result] = form.parse(outputs, NOW)
    assert isinstance(result, Result)
    assert (result.status, result.summary, result.detail) == (Status.UNKNOWN, NOT_RUNNING, failing)
