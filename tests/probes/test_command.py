"""probes/command.py: monitoring-plugins programs run for real, including Debian's plugins."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from probes.base import ProbeContext
from probes.clock import SystemClock
from probes.command import CommandConfig, CommandProbe, CommandSshForm
from probes.registry import ProbeConfig
from probes.result import Result, Status
from probes.sshform import CommandOutput

PLUGINS = Path("/usr/lib/nagios/plugins")
DOC = Path(__file__).resolve().parents[2] / "docs" / "probes" / "command.md"


def plugin(name: str) -> str:
    path = PLUGINS / name
    if not path.exists():
        # packaging/dev/setup installs monitoring-plugins-basic (packaging/dev/apt-packages.txt).
        pytest.fail(f"{path} is missing: run packaging/dev/setup as root")
    return str(path)


def config(argv: list[str], **keys: Any) -> CommandConfig:
    return CommandConfig(name="check", type="command", argv=argv, timeout_s=20, **keys)


def run(argv: list[str], tmp_path: Path, **keys: Any) -> tuple[Result, list[str]]:
    probe = CommandProbe(config(argv, **keys), ProbeContext(SystemClock(), tmp_path))
    output = probe.run()
    [result] = output.items
    assert isinstance(result, Result)
    assert result.check == "command:check"
    return result, list(output.notes)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ Debian's plugins


def test_check_disk_ok_reports_used_bytes_of_the_mount(tmp_path: Path) -> None:
    result, notes = run([plugin("check_disk"), "-w", "1%", "-c", "0%", "-p", str(tmp_path)],
                        tmp_path)
    assert result.status is Status.OK, result.summary
    assert result.summary.startswith("DISK OK")
    assert notes == []
    [(mount, used_bytes)] = result.metrics.items()
    assert mount.startswith("/")
    assert used_bytes > 0


@pytest.mark.parametrize(("warn", "crit", "status"), [("100%", "0%", Status.WARN),
                                                      ("100%", "100%", Status.CRIT)])
def test_check_disk_thresholds_give_warn_and_crit(
    tmp_path: Path, warn: str, crit: str, status: Status
) -> None:
    result, _ = run([plugin("check_disk"), "-w", warn, "-c", crit, "-p", str(tmp_path)], tmp_path)
    assert result.status is status
    assert result.summary.startswith(f"DISK {'WARNING' if status is Status.WARN else 'CRITICAL'}")


def test_check_procs_counts_processes_and_warns_above_its_threshold(tmp_path: Path) -> None:
    result, _ = run([plugin("check_procs"), "-w", "0", "-c", "1000000"], tmp_path)
    assert result.status is Status.WARN
    assert result.metrics["procs"] >= 1


def test_check_procs_is_critical_when_the_process_is_missing(tmp_path: Path) -> None:
    result, _ = run([plugin("check_procs"), "-c", "1:", "-a", "daybreak-no-such-arg"], tmp_path)
    assert result.status is Status.CRIT
    assert result.metrics == {"procs": 0}


def test_check_procs_finds_a_process_we_started(tmp_path: Path) -> None:
    marker = f"daybreak-test-{os.getpid()}"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        result, _ = run([plugin("check_procs"), "-c", "1:1", "-a", marker], tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert result.status is Status.OK, result.summary
    assert result.metrics == {"procs": 1}


def test_check_load_gives_the_three_averages(tmp_path: Path) -> None:
    result, _ = run([plugin("check_load"), "-w", "1000,1000,1000", "-c", "2000,2000,2000"],
                    tmp_path)
    assert result.status is Status.OK
    assert set(result.metrics) == {"load1", "load5", "load15"}


def test_a_plugin_called_wrongly_is_unknown_with_its_own_words(tmp_path: Path) -> None:
    result, _ = run([plugin("check_load"), "-w", "-1,-1,-1", "-c", "2,2,2"], tmp_path)
    assert result.status is Status.UNKNOWN
    assert "threshold" in result.summary


def test_check_tcp_answers_ok_with_the_response_time_in_seconds(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result, _ = run([plugin("check_tcp"), "-H", "127.0.0.1", "-p", str(port)], tmp_path)
    assert result.status is Status.OK, result.summary
    assert 0 <= result.metrics["time"] < 10


def test_check_tcp_on_a_closed_port_is_critical(tmp_path: Path) -> None:
    result, _ = run([plugin("check_tcp"), "-H", "127.0.0.1", "-p", str(free_port()), "-t", "5"],
                    tmp_path)
    assert result.status is Status.CRIT
    assert "refused" in result.summary


# ------------------------------------------------------------------ any program


def test_exit_codes_map_to_statuses_and_others_are_unknown(tmp_path: Path) -> None:
    statuses = {}
    for code in (0, 1, 2, 3, 4, 255):
        result, _ = run(["sh", "-c", f"echo 'SAID {code} | v=1'; exit {code}"], tmp_path)
        statuses[code] = result.status
        if code > 3:
            assert f"exit code {code}" in result.summary
    assert statuses == {0: Status.OK, 1: Status.WARN, 2: Status.CRIT, 3: Status.UNKNOWN,
                        4: Status.UNKNOWN, 255: Status.UNKNOWN}


def test_a_failing_program_keeps_its_summary_long_text_and_stderr(tmp_path: Path) -> None:
    script = "echo 'BACKUP CRITICAL - 2 of 5 failed | failed=2;0;1'; echo 'db1 failed'; " \
             "echo 'disk full' >&2; exit 2"
    result, _ = run(["sh", "-c", script], tmp_path)
    assert result.status is Status.CRIT
    assert result.summary == "BACKUP CRITICAL - 2 of 5 failed"
    assert result.metrics == {"failed": 2}
    assert "db1 failed" in result.detail
    assert "disk full" in result.detail


def test_a_program_killed_by_a_signal_is_unknown_and_says_which(tmp_path: Path) -> None:
    result, _ = run(["sh", "-c", "echo started; kill -KILL $$"], tmp_path)
    assert result.status is Status.UNKNOWN
    assert "killed by SIGKILL" in result.summary


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    # A zombie is dead; it only waits for a parent that may not reap (PID 1 in a container).
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_hanging_program_is_killed_with_its_children_after_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pid_file}; echo 'still going'; sleep 300"
    result, _ = run(["sh", "-c", script], tmp_path, command_timeout_s=1)
    assert result.status is Status.UNKNOWN
    assert result.summary == "sh timed out after 1s (last said: still going)"
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), f"child {child} of the timed-out program still runs"


def test_megabytes_of_output_are_capped_and_the_program_is_not_blocked(tmp_path: Path) -> None:
    script = (
        "import sys; sys.stdout.write('BIG OK | size=5MB\\n' + 'x' * 20_000_000); "
        "sys.stderr.write('e' * 5_000_000)"
    )
    result, _ = run([sys.executable, "-c", script], tmp_path, max_output_bytes=4096,
                    command_timeout_s=15)
    assert result.status is Status.OK
    assert result.summary == "BIG OK"
    assert result.metrics == {"size": 5 * 1024**2}
    assert "[output cut at 4096 bytes]" in result.detail
    assert len(result.detail.encode()) <= 16 * 1024


def test_a_missing_program_is_unknown_with_the_reason(tmp_path: Path) -> None:
    result, _ = run([str(tmp_path / "check_nothing")], tmp_path)
    assert result.status is Status.UNKNOWN
    assert result.summary == f"cannot run {tmp_path / 'check_nothing'}: No such file or directory"


def test_a_program_that_is_not_executable_is_unknown_with_the_reason(tmp_path: Path) -> None:
    script = tmp_path / "check_plain"
    script.write_text("#!/bin/sh\necho OK\n")
    script.chmod(0o644)
    result, _ = run([str(script)], tmp_path)
    assert result.status is Status.UNKNOWN
    assert result.summary == f"cannot run {script}: Permission denied"


def test_garbage_perfdata_is_skipped_with_a_note_never_a_crash(tmp_path: Path) -> None:
    result, notes = run(["sh", "-c", "echo \"OK | good=1 bad=x1 'open=2 ===\""], tmp_path)
    assert result.status is Status.OK
    assert result.metrics == {"good": 1}
    assert len(notes) == 3
    assert all(note in result.detail for note in notes)


def test_a_silent_program_gets_a_summary_that_says_so(tmp_path: Path) -> None:
    result, _ = run(["true"], tmp_path)
    assert result.status is Status.OK
    assert result.summary == "true printed nothing"


def test_no_shell_is_involved_so_metacharacters_are_plain_arguments(tmp_path: Path) -> None:
    result, _ = run(["echo", "OK; rm -rf / $(id) | x=1"], tmp_path)
    assert result.summary == "OK; rm -rf / $(id)"
    assert result.metrics == {"x": 1}


def test_environment_additions_working_dir_and_the_c_locale(tmp_path: Path) -> None:
    script = 'echo "OK $GREETING $(pwd) $LC_ALL"'
    result, _ = run(["sh", "-c", script], tmp_path, env={"GREETING": "hello"},
                    workdir=str(tmp_path))
    assert result.summary == f"OK hello {tmp_path} C"


def test_a_relative_program_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    entry = {"name": "c", "type": "command", "argv": ["bin/check_x", "-v"], "workdir": "run"}
    parsed = CommandConfig.model_validate(entry, context={"config_path": str(tmp_path / "a.yaml")})
    assert parsed.argv == [str(tmp_path / "bin" / "check_x"), "-v"]
    assert parsed.workdir == str(tmp_path / "run")
    bare = CommandConfig.model_validate({**entry, "argv": ["check_x"]},
                                        context={"config_path": str(tmp_path / "a.yaml")})
    assert bare.argv == ["check_x"]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"argv": []}, "at least 1 item"),
        ({"argv": [" "]}, "argv[0] must name a program"),
        ({"argv": "check_disk -w 10"}, "valid list"),
        ({"argv": ["x"], "command_timeout_s": 30, "timeout_s": 20}, "must be below"),
        ({"argv": ["x"], "env": {"A=B": "c"}}, "bad environment variable name"),
        ({"argv": ["x"], "shell": True}, "Extra inputs are not permitted"),
    ],
)
def test_bad_configs_are_refused_with_a_reason(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        CommandConfig.model_validate({"name": "c", "type": "command", **keys})


def test_the_default_command_timeout_stays_below_the_probe_timeout() -> None:
    assert config(["x"]).effective_command_timeout_s == 10
    short = CommandConfig(name="c", type="command", argv=["x"], interval_s=5)
    assert short.effective_command_timeout_s == 4


# ------------------------------------------------------------------ SSH form


def test_the_ssh_form_runs_the_same_argv_and_parses_to_the_same_result(tmp_path: Path) -> None:
    cfg = config([plugin("check_procs"), "-c", "1:", "-a", "daybreak-no-such-arg"],
                 env={"X": "a b"}, workdir=str(tmp_path))
    form = CommandSshForm(cfg)
    [line] = form.commands()
    assert line == (f"env -C {tmp_path} LC_ALL=C 'X=a b' {plugin('check_procs')} -c 1: -a "
                    "daybreak-no-such-arg")
    # What the SSH server does with it: the user's shell runs the line.
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=False)
    observed_at = SystemClock().now()
    [remote] = form.parse({line: CommandOutput(line, done.returncode, done.stdout, done.stderr)},
                          observed_at)
    local = CommandProbe(cfg, ProbeContext(SystemClock(), tmp_path)).run().items[0]
    assert isinstance(remote, Result)
    assert isinstance(local, Result)
    assert (remote.status, remote.summary, remote.metrics) == (
        local.status, local.summary, local.metrics)


def test_the_ssh_form_reports_a_program_missing_on_the_remote_host(tmp_path: Path) -> None:
    form = CommandSshForm(config(["/opt/nothing/check_x"]))
    [line] = form.commands()
    done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=False)
    [result] = form.parse({line: CommandOutput(line, done.returncode, done.stdout, done.stderr)},
                          SystemClock().now())
    assert isinstance(result, Result)
    assert result.status is Status.UNKNOWN
    assert result.summary.startswith("cannot run /opt/nothing/check_x:")
    assert "No such file or directory" in result.summary


def test_the_ssh_form_without_output_is_unknown() -> None:
    [result] = CommandSshForm(config(["x"])).parse({}, SystemClock().now())
    assert isinstance(result, Result)
    assert result.status is Status.UNKNOWN


# ------------------------------------------------------------------ docs


def test_every_example_in_the_docs_is_a_valid_probe_entry() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks
    adapter: TypeAdapter[Any] = TypeAdapter(ProbeConfig)
    for block in blocks:
        for entry in yaml.safe_load(block)["probes"]:
            assert isinstance(adapter.validate_python(entry), CommandConfig)
