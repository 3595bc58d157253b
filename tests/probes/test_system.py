"""System probe: a written procfs tree, this host's /proc, reboots across runs, the SSH form."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pydantic
import pytest
import yaml
from pydantic import ValidationError

from probes.base import ProbeContext
from probes.clock import ManualClock
from probes.registry import ProbeConfig, build_probe
from probes.result import Result, Status
from probes.sshform import CommandOutput
from probes.system import (
    FREE_COMMAND,
    NPROC_COMMAND,
    PROCFS_COMMAND,
    STAT_COMMAND,
    UPTIME_COMMAND,
    BootRecord,
    SystemConfig,
    SystemProbe,
    SystemSshForm,
    rebooted,
)

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "system"
MATERIAL = ROOT / ".." / "shared" / "material" / "cmd_output"


def system_config(**overrides: object) -> SystemConfig:
    return SystemConfig.model_validate({"type": "system", "name": "sys", **overrides})


def copy_of_proc(tmp_path: Path) -> Path:
    procfs = tmp_path / "proc"
    shutil.copytree(FIXTURES / "proc", procfs)
    return procfs


class Host:
    """A probe on a written procfs tree, with a clock the test moves."""

    def __init__(self, tmp_path: Path, **overrides: object) -> None:
        self.procfs = copy_of_proc(tmp_path)
        self.clock = ManualClock(NOW)
        self.ctx = ProbeContext(clock=self.clock, state_dir=tmp_path / "state")
        self.config = system_config(**overrides)
        self.probe = self.new_probe()

    def new_probe(self) -> SystemProbe:
        return SystemProbe(self.config, self.ctx, procfs=self.procfs, first_cpu_sample_wait_s=0)

    def run(self, commit: bool = True) -> dict[str, Result]:
        output = self.probe.run()
        if commit and output.commit is not None:
            output.commit()
        return {i.check: i for i in output.items if isinstance(i, Result)}

    def later(self, seconds: float, uptime_s: float, cpu_line: str | None = None) -> None:
        self.clock.advance(seconds)
        (self.procfs / "uptime").write_text(f"{uptime_s:.2f} 1.00\n")
        if cpu_line is not None:
            stat = (self.procfs / "stat").read_text().splitlines()
            stat[0] = cpu_line
            (self.procfs / "stat").write_text("\n".join(stat) + "\n")


def test_thresholds_below_their_warning_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"memory_crit \(80.0\) must be at least"):
        system_config(memory_warn_percent=90, memory_crit_percent=80)
    with pytest.raises(ValidationError, match="load_per_core_crit"):
        system_config(load_per_core_warn=3, load_per_core_crit=1)
    with pytest.raises(ValidationError, match="load_window_min"):
        system_config(load_window_min=10)


def test_a_written_procfs_gives_memory_swap_load_and_uptime_against_thresholds(
    tmp_path: Path,
) -> None:
    results = Host(tmp_path).run()
    checks = ["cpu", "memory", "swap", "load", "uptime", "reboot"]
    assert list(results) == [f"system:{check}" for check in checks]
    # The two first samples are the same file: no CPU figure yet, and no alarm for it.
    assert results["system:cpu"].status is Status.OK
    assert "not measured yet" in results["system:cpu"].summary
    memory = results["system:memory"]
    assert memory.status is Status.WARN  # 90 % used, the default warning
    assert memory.metrics["memory_used_percent"] == 90.0
    assert results["system:swap"].metrics["swap_used_percent"] == 25.0
    assert results["system:swap"].status is Status.OK
    load = results["system:load"]
    assert load.metrics["load_per_core"] == 1.6  # 6.40 over 4 cores, 5-minute average
    assert load.status is Status.OK
    assert results["system:uptime"].metrics["uptime_s"] == 86400.5
    assert results["system:uptime"].summary.startswith("up 1 d 0 h 0 min")
    assert results["system:reboot"].status is Status.OK
    assert results["system:reboot"].summary.startswith("first run here")


def test_the_judged_load_window_and_per_core_thresholds_apply(tmp_path: Path) -> None:
    results = Host(
        tmp_path, load_window_min=1, load_per_core_warn=0.5, load_per_core_crit=0.7
    ).run()
    assert results["system:load"].metrics["load_per_core"] == 0.8
    assert results["system:load"].status is Status.CRIT


def test_cpu_use_is_the_busy_share_between_two_runs(tmp_path: Path) -> None:
    host = Host(tmp_path, cpu_warn_percent=50, cpu_crit_percent=80)
    host.run()
    # 2000 more ticks, 1200 of them busy: 60 %.
    host.later(60, 86460.5, "cpu  2000 0 700 8600 700 0 0 0 0 0")
    cpu = host.run()["system:cpu"]
    assert cpu.metrics["cpu_percent"] == 60.0
    assert cpu.status is Status.WARN
    assert cpu.summary == "CPU 60.0% busy over 4 cores"


def test_a_reboot_is_a_warning_once_and_then_ok(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.run()
    host.later(60, 86460.5)
    assert host.run()["system:reboot"].status is Status.OK
    host.later(300, 120.0)  # uptime went down: the host booted two minutes ago
    reboot = host.run()["system:reboot"]
    assert reboot.status is Status.WARN
    assert reboot.summary.startswith("host rebooted at about 2026-11-24T03:04")
    assert reboot.metrics["rebooted"] == 1.0
    host.later(60, 180.0)
    assert host.run()["system:reboot"].status is Status.OK


def test_a_reboot_is_noticed_across_an_agent_restart_even_when_uptime_grew(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.later(0, 100.0)
    host.run()
    # The agent was down for a day; the host rebooted meanwhile and has been up for an hour,
    # longer than the 100 s of the previous run.
    host.later(86400, 3600.0)
    host.probe = host.new_probe()
    assert host.run()["system:reboot"].status is Status.WARN


def test_a_reboot_is_reported_again_when_its_results_were_never_spooled(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.run()
    host.later(300, 60.0)
    assert host.run(commit=False)["system:reboot"].status is Status.WARN
    host.probe = host.new_probe()  # the agent crashed before spooling
    assert host.run()["system:reboot"].status is Status.WARN


def test_boot_time_wobble_within_the_tolerance_is_the_same_boot() -> None:
    before = BootRecord(observed_at=NOW, uptime_s=1000.0)
    assert not rebooted(before, BootRecord(NOW.replace(minute=1), 1059.0))
    assert rebooted(before, BootRecord(NOW.replace(minute=10), 30.0))


def test_a_missing_procfs_is_unknown_not_a_crash(tmp_path: Path) -> None:
    ctx = ProbeContext(clock=ManualClock(NOW), state_dir=tmp_path / "state")
    probe = SystemProbe(
        system_config(), ctx, procfs=tmp_path / "nowhere", first_cpu_sample_wait_s=0
    )
    [result] = probe.run().items
    assert isinstance(result, Result)
    assert result.status is Status.UNKNOWN
    assert "cannot read" in result.summary


def test_this_hosts_own_proc_gives_every_result(tmp_path: Path) -> None:
    ctx = ProbeContext(clock=ManualClock(NOW), state_dir=tmp_path / "state")
    probe = SystemProbe(system_config(), ctx, first_cpu_sample_wait_s=0.05)
    results = {i.check: i for i in probe.run().items if isinstance(i, Result)}
    assert set(results) >= {"system:memory", "system:load", "system:uptime", "system:reboot"}
    assert results["system:memory"].metrics["memory_total_bytes"] > 0
    assert Status.UNKNOWN not in {r.status for r in results.values()}


def out(
    command: str, stdout: str, exit_status: int = 0, stderr: str = ""
) -> dict[str, CommandOutput]:
    return {command: CommandOutput(command, exit_status, stdout, stderr)}


def test_the_ssh_form_reads_two_stat_samples_and_the_catted_proc_files() -> None:
    form = SystemSshForm(system_config())
    assert list(form.commands()) == [STAT_COMMAND, "sleep 1", PROCFS_COMMAND]
    catted = "".join(
        (FIXTURES / "proc" / n).read_text() for n in ("loadavg", "uptime", "meminfo", "stat")
    )
    earlier = "cpu  500 0 250 7000 250 0 0 0 0 0\ncpu0 1 0 0 0\n"
    outputs = out(STAT_COMMAND, earlier) | out(PROCFS_COMMAND, catted)
    results = {i.check: i for i in form.parse(outputs, NOW) if isinstance(i, Result)}
    # 2000 ticks passed, 750 of them busy.
    assert results["system:cpu"].metrics["cpu_percent"] == 37.5
    assert results["system:memory"].metrics["memory_used_percent"] == 90.0
    assert results["system:load"].metrics["cpu_count"] == 4
    assert "system:reboot" not in results


def test_the_ssh_form_without_proc_files_is_unknown() -> None:
    form = SystemSshForm(system_config())
    outputs = out(PROCFS_COMMAND, "", 1, "cat: /proc/loadavg: No such file or directory\n")
    [result] = form.parse(outputs, NOW)
    assert isinstance(result, Result)
    assert result.status is Status.UNKNOWN
    assert "No such file" in result.summary


def test_the_ssh_form_from_uptime_free_and_nproc_on_written_outputs() -> None:
    form = SystemSshForm(system_config(ssh_source="uptime_free"))
    assert list(form.commands()) == [UPTIME_COMMAND, FREE_COMMAND, NPROC_COMMAND]
    outputs = (
        out(
            UPTIME_COMMAND, " 09:01:02 up 3 days,  2:00,  1 user,  load average: 8.00, 6.00, 4.00\n"
        )
        | out(FREE_COMMAND, (FIXTURES / "free-procps-3.2.out").read_text())
        | out(NPROC_COMMAND, "2\n")
    )
    results = {i.check: i for i in form.parse(outputs, NOW) if isinstance(i, Result)}
    assert results["system:load"].metrics["load_per_core"] == 3.0
    assert results["system:load"].status is Status.WARN
    assert results["system:memory"].metrics["memory_used_percent"] == 60.0
    assert results["system:uptime"].metrics["uptime_s"] == 3 * 86400 + 7200
    assert "not measured" in results["system:cpu"].summary


def test_the_ssh_form_on_the_material_centos_uptime_and_free() -> None:
    uptime, free = (
        MATERIAL / "jc" / "centos-7.7_uptime.out",
        MATERIAL / "jc" / "centos-7.7_free.out",
    )
    if not uptime.exists():
        pytest.skip(f"../shared/material is not here: {uptime} is absent")
    form = SystemSshForm(system_config(ssh_source="uptime_free"))
    outputs = (
        out(UPTIME_COMMAND, uptime.read_text())
        | out(FREE_COMMAND, free.read_text())
        | out(NPROC_COMMAND, "2\n")
    )
    results = {i.check: i for i in form.parse(outputs, NOW) if isinstance(i, Result)}
    assert results["system:memory"].metrics["memory_used_percent"] == 12.22
    assert results["system:swap"].metrics["swap_used_percent"] == 0.0
    assert results["system:load"].metrics["load5"] == 0.01
    assert results["system:uptime"].metrics["uptime_s"] == 57780.0
    assert {r.status for r in results.values()} == {Status.OK}


def test_every_example_in_the_system_doc_is_a_valid_probe_entry(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "probes" / "system.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    assert len(blocks) == 2
    adapter: pydantic.TypeAdapter[ProbeConfig] = pydantic.TypeAdapter(ProbeConfig)
    for block in blocks:
        for entry in yaml.safe_load(block):
            config = adapter.validate_python(entry)
            assert isinstance(config, SystemConfig)
            ctx = ProbeContext(clock=ManualClock(NOW), state_dir=tmp_path)
            assert build_probe(config, ctx).name == config.name
