"""Service probe: real processes, a real TCP listener, HTTP and TLS servers on 127.0.0.1, and
systemd units judged from recorded `systemctl show` outputs (no systemd runs here)."""

from __future__ import annotations

import http.server
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydantic
import pytest
from pydantic import ValidationError

from probes.base import ProbeContext
from probes.clock import ManualClock
from probes.registry import ProbeConfig, build_probe
from probes.result import Result, Status
from probes.service import (
    PS_COMMAND,
    SS_COMMAND,
    ServiceConfig,
    ServiceProbe,
    ServiceSshForm,
    systemctl_show_command,
)
from probes.sshform import CommandOutput

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
MATERIAL = ROOT / ".." / "shared" / "material" / "cmd_output"
FIXTURES = ROOT / "tests" / "fixtures" / "service"


def material(name: str) -> str:
    path = MATERIAL / name
    if not path.exists():
        pytest.skip(f"../shared/material is not here: {path} is absent")
    return path.read_text()


def config(*checks: Mapping[str, object]) -> ServiceConfig:
    return ServiceConfig.model_validate({"type": "service", "name": "svc", "checks": list(checks)})


def run(tmp_path: Path, cfg: ServiceConfig, systemd_run_dir: Path | None = None) -> list[Result]:
    ctx = ProbeContext(clock=ManualClock(NOW), state_dir=tmp_path / "state")
    probe = ServiceProbe(cfg, ctx, systemd_run_dir=systemd_run_dir or tmp_path / "no-systemd")
    items = probe.run().items
    assert all(isinstance(i, Result) for i in items)
    return [i for i in items if isinstance(i, Result)]


def by_key(results: list[Result]) -> dict[str, Result]:
    return {r.check: r for r in results}


# --- configuration -----------------------------------------------------------------------------


def test_a_process_check_needs_a_name_or_a_command_pattern() -> None:
    with pytest.raises(ValidationError, match="needs name or command_regex"):
        config({"kind": "process"})


def test_a_bad_command_pattern_and_inverted_bounds_are_refused() -> None:
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        config({"kind": "process", "command_regex": "java ("})
    with pytest.raises(ValidationError, match="max_count"):
        config({"kind": "process", "name": "x", "min_count": 3, "max_count": 1})


def test_an_unknown_check_kind_and_a_stray_key_are_refused() -> None:
    with pytest.raises(ValidationError, match="kind"):
        config({"kind": "smtp", "host": "x"})
    with pytest.raises(ValidationError, match="prot"):
        config({"kind": "tcp", "host": "db01", "port": 5432, "prot": 1})


def test_urls_ports_and_unit_names_are_validated_without_touching_the_network() -> None:
    with pytest.raises(ValidationError, match="http:// or https://"):
        config({"kind": "http", "url": "ftp://files.example/"})
    with pytest.raises(ValidationError, match="port"):
        config({"kind": "tcp", "host": "db01", "port": 70000})
    with pytest.raises(ValidationError, match="unit"):
        config({"kind": "systemd_unit", "unit": "nginx; rm -rf /"})
    with pytest.raises(ValidationError, match="crit_days"):
        config({"kind": "tls", "host": "x", "warn_days": 5, "crit_days": 10})


def test_two_checks_with_one_key_are_refused_until_one_has_a_label() -> None:
    with pytest.raises(ValidationError, match="same key 'tcp:db01:5432'"):
        config(
            {"kind": "tcp", "host": "db01", "port": 5432},
            {"kind": "tcp", "host": "db01", "port": 5432},
        )
    cfg = config(
        {"kind": "tcp", "host": "db01", "port": 5432},
        {"kind": "tcp", "host": "db01", "port": 5432, "label": "db01-again"},
    )
    assert [c.key for c in cfg.checks] == ["tcp:db01:5432", "tcp:db01-again"]


def test_a_unit_without_a_suffix_is_a_service() -> None:
    cfg = config(
        {"kind": "systemd_unit", "unit": "nginx"}, {"kind": "systemd_unit", "unit": "backup.timer"}
    )
    assert [c.key for c in cfg.checks] == ["service:nginx.service", "service:backup.timer"]


def test_only_https_and_tls_checks_need_pythons_ssl() -> None:
    assert not config({"kind": "http", "url": "http://127.0.0.1/"}).needs_ssl
    assert config({"kind": "http", "url": "https://127.0.0.1/"}).needs_ssl
    assert config({"kind": "tls", "host": "127.0.0.1"}).needs_ssl
    assert not config({"kind": "tcp", "host": "127.0.0.1", "port": 1}).needs_ssl


def test_the_agent_keeps_ssl_loadable_only_when_a_configured_probe_needs_it() -> None:
    # In a fresh interpreter, as the daemon starts: block ssl, import asyncio, then lift the
    # block for a TLS check exactly as agent/cli.py's serve() does.
    script = """
import sys
from agent import cli
cli._leave_out_python_tls()
import asyncio
from probes.service import ServiceConfig
plain = ServiceConfig.model_validate({"type": "service", "name": "p",
    "checks": [{"kind": "http", "url": "http://127.0.0.1/"}]})
tls = ServiceConfig.model_validate({"type": "service", "name": "t",
    "checks": [{"kind": "tls", "host": "127.0.0.1"}]})
try:
    import ssl
    print("blocked: no")
except ImportError:
    print("blocked: yes")
if any(p.needs_ssl for p in [plain]):
    cli._let_in_python_tls()
print("plain needs ssl:", plain.needs_ssl)
if any(p.needs_ssl for p in [plain, tls]):
    cli._let_in_python_tls()
import ssl
print("loaded:", ssl.OPENSSL_VERSION.split()[0])
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert "blocked: yes" in out
    assert "plain needs ssl: False" in out
    assert "loaded: OpenSSL" in out


# --- process -----------------------------------------------------------------------------------


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    marker = f"daybreak-test-sleeper-{time.monotonic_ns()}"
    script = "import time; time.sleep(60)"
    started = [subprocess.Popen([sys.executable, "-c", script, marker]) for _ in range(2)]
    try:
        yield started
    finally:
        for process in started:
            process.kill()
            process.wait()


def test_processes_started_by_the_test_are_counted_within_bounds(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    marker = sleepers[0].args[-1]  # type: ignore[index]
    cfg = config(
        {
            "kind": "process",
            "command_regex": re.escape(str(marker)),
            "min_count": 2,
            "max_count": 2,
            "label": "two",
        },
        {
            "kind": "process",
            "command_regex": re.escape(str(marker)),
            "min_count": 3,
            "label": "three",
        },
        {
            "kind": "process",
            "command_regex": re.escape(str(marker)),
            "max_count": 1,
            "min_count": 0,
            "label": "one",
        },
    )
    results = by_key(run(tmp_path, cfg))
    assert results["process:two"].status is Status.OK
    assert results["process:two"].metrics["count"] == 2
    assert str(sleepers[0].pid) in results["process:two"].summary
    assert results["process:three"].status is Status.CRIT
    assert "expected at least 3" in results["process:three"].summary
    assert results["process:one"].status is Status.CRIT
    assert "expected at most 1" in results["process:one"].summary


def test_a_process_that_is_not_running_is_critical(tmp_path: Path) -> None:
    [result] = run(tmp_path, config({"kind": "process", "name": "no-such-daemon-here"}))
    assert result.check == "process:no-such-daemon-here"
    assert result.status is Status.CRIT
    assert result.summary.startswith("0 no-such-daemon-here processes running")


def test_a_process_is_found_by_its_executable_name(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    name = Path(sys.executable).name
    [result] = run(tmp_path, config({"kind": "process", "name": name, "min_count": 2}))
    # The sleepers, at least; the test's own interpreter is left out as the agent is.
    assert result.status is Status.OK
    assert result.metrics["count"] >= 2


# --- process over SSH --------------------------------------------------------------------------


def ssh_parse(cfg: ServiceConfig, outputs: dict[str, CommandOutput]) -> dict[str, Result]:
    items = ServiceSshForm(cfg).parse(outputs, NOW)
    return {i.check: i for i in items if isinstance(i, Result)}


def ps(stdout: str, exit_status: int = 0, stderr: str = "") -> dict[str, CommandOutput]:
    return {PS_COMMAND: CommandOutput(PS_COMMAND, exit_status, stdout, stderr)}


def test_the_ssh_form_counts_processes_in_a_written_ps_output() -> None:
    cfg = config(
        {"kind": "process", "name": "nginx", "min_count": 2},
        {"kind": "process", "command_regex": r"-jar /opt/billing\.jar", "label": "billing"},
        {"kind": "process", "name": "kthreadd", "min_count": 0, "max_count": 0},
    )
    assert ServiceSshForm(cfg).commands() == [PS_COMMAND]
    text = (FIXTURES / "ps-eo.out").read_text()
    results = ssh_parse(cfg, ps(text))
    assert results["process:nginx"].status is Status.OK
    assert results["process:nginx"].metrics["count"] == 3
    assert results["process:billing"].status is Status.OK
    # Kernel threads never count, even by their name.
    assert results["process:kthreadd"].status is Status.OK


def test_a_failing_ps_is_unknown_not_zero_processes() -> None:
    cfg = config({"kind": "process", "name": "sshd"})
    [result] = ssh_parse(cfg, ps("", exit_status=127, stderr="sh: ps: not found\n")).values()
    assert result.status is Status.UNKNOWN
    assert result.summary == "ps failed: sh: ps: not found"
    [result] = ssh_parse(cfg, {}).values()
    assert result.status is Status.UNKNOWN


def test_insights_ps_bad_output_is_unknown_ps_failed() -> None:
    cfg = config({"kind": "process", "name": "sshd"})
    [result] = ssh_parse(cfg, ps(material("insights_core/ps_BAD.out"))).values()
    assert result.status is Status.UNKNOWN
    assert result.summary == "ps failed: /bin/ps: command or file not found"


def test_insights_ps_with_a_warning_before_the_header_is_read() -> None:
    cfg = config(
        {"kind": "process", "name": "systemd"},
        {"kind": "process", "name": "kthreadd", "min_count": 0, "max_count": 0},
    )
    results = ssh_parse(cfg, ps(material("insights_core/ps-auxww_LATE_HEADER.out")))
    assert results["process:systemd"].status is Status.OK
    assert results["process:systemd"].metrics["count"] == 1
    assert results["process:kthreadd"].metrics["count"] == 0


def test_insights_ps_eo_output_finds_java_twice_and_the_cut_kernel_thread_never() -> None:
    cfg = config(
        {"kind": "process", "name": "java", "min_count": 2, "max_count": 2},
        {"kind": "process", "command_regex": "NFSv4", "min_count": 0, "max_count": 0},
    )
    text = material("insights_core/ps-eo-pid-ppid-nlwp-args_PS_EO_CMD_NORMAL.out")
    results = ssh_parse(cfg, ps(text))
    assert results["process:java"].status is Status.OK
    assert results["process:NFSv4"].status is Status.OK


# --- systemd units -----------------------------------------------------------------------------


UNIT_CHECKS = (
    {"kind": "systemd_unit", "unit": "nginx"},
    {"kind": "systemd_unit", "unit": "backup.service"},
    {"kind": "systemd_unit", "unit": "report.service", "when_inactive": "OK"},
    {"kind": "systemd_unit", "unit": "gone.service"},
    {"kind": "systemd_unit", "unit": "slow.service"},
)


def show(
    stdout: str, units: list[str], exit_status: int = 0, stderr: str = ""
) -> dict[str, CommandOutput]:
    command = systemctl_show_command(units)
    return {command: CommandOutput(command, exit_status, stdout, stderr)}


def test_unit_states_from_a_recorded_systemctl_show_give_their_statuses() -> None:
    cfg = config(*UNIT_CHECKS)
    units = ["nginx.service", "backup.service", "report.service", "gone.service", "slow.service"]
    assert ServiceSshForm(cfg).commands() == [systemctl_show_command(units)]
    text = (FIXTURES / "systemctl-show-five-units.out").read_text()
    results = ssh_parse(cfg, show(text, units))
    assert results["service:nginx.service"].status is Status.OK
    assert results["service:nginx.service"].summary == "nginx.service is active (running)"
    assert results["service:nginx.service"].metrics == {
        "active": 1.0,
        "restarts": 0.0,
        "exec_main_status": 0.0,
    }
    assert results["service:backup.service"].status is Status.CRIT
    assert (
        results["service:backup.service"].summary
        == "backup.service is failed (failed), result exit-code"
    )
    assert results["service:backup.service"].metrics["exec_main_status"] == 2
    assert results["service:report.service"].status is Status.OK
    assert "inactive (dead)" in results["service:report.service"].summary
    assert results["service:gone.service"].status is Status.CRIT
    assert "not installed" in results["service:gone.service"].summary
    assert results["service:slow.service"].status is Status.WARN
    assert "activating (start-pre)" in results["service:slow.service"].summary


def test_a_failed_unit_can_be_configured_to_warn() -> None:
    cfg = config({"kind": "systemd_unit", "unit": "backup", "when_failed": "WARN"})
    text = (
        "Id=backup.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\nResult=timeout\n"
    )
    [result] = ssh_parse(cfg, show(text, ["backup.service"])).values()
    assert result.status is Status.WARN
    assert "result timeout" in result.summary


def test_a_host_without_systemd_gives_unknown_over_ssh() -> None:
    cfg = config({"kind": "systemd_unit", "unit": "nginx"})
    stderr = (
        "System has not been booted with systemd as init system (PID 1). Can't operate.\n"
        "Failed to connect to bus: Host is down\n"
    )
    [result] = ssh_parse(cfg, show("", ["nginx.service"], exit_status=1, stderr=stderr)).values()
    assert result.status is Status.UNKNOWN
    assert result.summary == "systemd is not running here"


def test_a_short_systemctl_answer_is_unknown_for_every_unit() -> None:
    cfg = config({"kind": "systemd_unit", "unit": "a"}, {"kind": "systemd_unit", "unit": "b"})
    results = ssh_parse(cfg, show("Id=a.service\nActiveState=active\n", ["a.service", "b.service"]))
    assert {r.status for r in results.values()} == {Status.UNKNOWN}
    assert "gave 1 units for 2 asked" in results["service:a.service"].summary


def test_the_local_run_on_a_host_without_systemd_says_so_rather_than_crashing(
    tmp_path: Path,
) -> None:
    [result] = run(tmp_path, config({"kind": "systemd_unit", "unit": "nginx"}))
    assert result.status is Status.UNKNOWN
    assert result.summary == "systemd is not running here"


def test_insights_recorded_units_are_judged_by_their_states() -> None:
    cfg = config(
        {"kind": "systemd_unit", "unit": "postfix"},
        {"kind": "systemd_unit", "unit": "postgresql"},
        {"kind": "systemd_unit", "unit": "tuned"},
    )
    text = material("insights_core/systemctl-show-all-services_SYSTEMCTL_SHOW_ALL_EXAMPLES.out")
    units = ["postfix.service", "postgresql.service", "tuned.service"]
    results = ssh_parse(cfg, show(text, units))
    # Only tuned's block carries its ActiveState; the trimmed ones cannot be judged.
    assert results["service:tuned.service"].status is Status.OK
    assert results["service:postfix.service"].status is Status.UNKNOWN
    assert "no ActiveState" in results["service:postfix.service"].summary


def test_insights_cpu_accounting_units_without_active_state_are_unknown_not_ok() -> None:
    cfg = config(*({"kind": "systemd_unit", "unit": f"test{i}"} for i in (1, 2, 3)))
    text = material("insights_core/systemctl-show-all-services_CPUACCOUNTING_INFO3.out")
    results = ssh_parse(cfg, show(text, [f"test{i}.service" for i in (1, 2, 3)]))
    assert {r.status for r in results.values()} == {Status.UNKNOWN}


# --- tcp ---------------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def test_a_listening_port_is_ok_and_a_closed_one_critical(tmp_path: Path, listener: int) -> None:
    closed = closed_port()
    cfg = config(
        {"kind": "tcp", "host": "127.0.0.1", "port": listener, "timeout_s": 2},
        {"kind": "tcp", "host": "127.0.0.1", "port": closed, "timeout_s": 2},
    )
    results = by_key(run(tmp_path, cfg))
    up = results[f"tcp:127.0.0.1:{listener}"]
    assert up.status is Status.OK
    assert "accepts connections" in up.summary
    assert "connect_ms" in up.metrics
    down = results[f"tcp:127.0.0.1:{closed}"]
    assert down.status is Status.CRIT
    assert "refused" in down.summary


def ss(stdout: str, exit_status: int = 0) -> dict[str, CommandOutput]:
    return {SS_COMMAND: CommandOutput(SS_COMMAND, exit_status, stdout)}


def test_the_ssh_form_reads_listening_ports_from_ss() -> None:
    cfg = config(
        {"kind": "tcp", "host": "localhost", "port": 5432},
        {"kind": "tcp", "host": "127.0.0.1", "port": 22},
        {"kind": "tcp", "host": "10.0.0.5", "port": 8080},
        {"kind": "tcp", "host": "10.0.0.5", "port": 9090},
        {"kind": "tcp", "host": "127.0.0.1", "port": 3306},
    )
    assert ServiceSshForm(cfg).commands() == [SS_COMMAND]
    results = ssh_parse(cfg, ss((FIXTURES / "ss-ltn.out").read_text()))
    statuses = {key: r.status for key, r in results.items()}
    assert statuses == {
        "tcp:localhost:5432": Status.OK,
        "tcp:127.0.0.1:22": Status.OK,
        "tcp:10.0.0.5:8080": Status.OK,
        "tcp:10.0.0.5:9090": Status.CRIT,
        "tcp:127.0.0.1:3306": Status.CRIT,
    }


def test_a_failing_ss_is_unknown() -> None:
    cfg = config({"kind": "tcp", "host": "localhost", "port": 22})
    [result] = ssh_parse(
        cfg, {SS_COMMAND: CommandOutput(SS_COMMAND, 127, "", "sh: ss: not found")}
    ).values()
    assert result.status is Status.UNKNOWN
    assert result.summary == "ss failed: sh: ss: not found"


def test_insights_ss_output_with_star_and_bracketed_listeners_is_read() -> None:
    cfg = config(
        {"kind": "tcp", "host": "localhost", "port": 80},
        {"kind": "tcp", "host": "::1", "port": 22},
        {"kind": "tcp", "host": "localhost", "port": 631},
        {"kind": "tcp", "host": "localhost", "port": 67},
    )
    results = ssh_parse(cfg, ss(material("insights_core/ss-tulpn_SS_TULPN_2.out")))
    assert results["tcp:localhost:80"].status is Status.OK  # *:80
    assert results["tcp:::1:22"].status is Status.OK  # [::]:22
    assert results["tcp:localhost:631"].status is Status.OK  # 127.0.0.1:631
    # 0.0.0.0%virbr0:67 is UDP (dhcp): not a TCP listener.
    assert results["tcp:localhost:67"].status is Status.CRIT


# --- http --------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            body, status = b'{"status": "ok", "db": "up"}', 200
        elif self.path == "/moved":
            body, status = b"", 301
        else:
            body, status = b"no such page", 404
        self.send_response(status)
        if status == 301:
            self.send_header("Location", "/health")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_an_http_endpoint_is_judged_by_status_and_body(
    tmp_path: Path, http_server: http.server.ThreadingHTTPServer
) -> None:
    base = f"http://127.0.0.1:{http_server.server_address[1]}"
    cfg = config(
        {
            "kind": "http",
            "url": f"{base}/health",
            "body_regex": '"status": "ok"',
            "label": "health",
        },
        {"kind": "http", "url": f"{base}/health", "body_regex": '"db": "down"', "label": "db"},
        {"kind": "http", "url": f"{base}/missing", "label": "missing"},
        {"kind": "http", "url": f"{base}/moved", "expected_status": [301, 302], "label": "moved"},
        {
            "kind": "http",
            "url": f"http://127.0.0.1:{closed_port()}/",
            "timeout_s": 2,
            "label": "closed",
        },
    )
    results = by_key(run(tmp_path, cfg))
    assert results["http:health"].status is Status.OK
    assert results["http:health"].metrics["status_code"] == 200
    assert results["http:health"].summary.startswith(f"GET {base}/health answered 200 in")
    assert results["http:db"].status is Status.CRIT
    assert "does not match" in results["http:db"].summary
    assert results["http:missing"].status is Status.CRIT
    assert "answered 404" in results["http:missing"].summary
    assert "expected 200" in results["http:missing"].summary
    assert results["http:moved"].status is Status.OK
    assert results["http:closed"].status is Status.CRIT
    assert "failed" in results["http:closed"].summary


def test_an_http_endpoint_that_never_answers_is_critical_after_its_timeout(
    tmp_path: Path, listener: int
) -> None:
    # The listener accepts (in the kernel's backlog) but never answers.
    cfg = config({"kind": "http", "url": f"http://127.0.0.1:{listener}/", "timeout_s": 0.3})
    [result] = run(tmp_path, cfg)
    assert result.status is Status.CRIT
    assert "no answer within 0.3 s" in result.summary


def test_the_ssh_form_says_http_and_tls_checks_run_from_the_agent() -> None:
    cfg = config({"kind": "http", "url": "http://app/"}, {"kind": "tls", "host": "app"})
    assert ServiceSshForm(cfg).commands() == []
    results = ssh_parse(cfg, {})
    assert {r.status for r in results.values()} == {Status.UNKNOWN}
    assert "run from the agent" in results["tls:app:443"].summary


# --- tls ---------------------------------------------------------------------------------------


def self_signed(tmp_path: Path, not_before: datetime, not_after: datetime) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server_for(tmp_path: Path) -> Iterator[object]:
    servers: list[tuple[socket.socket, threading.Thread]] = []

    def start(days_left: float) -> int:
        cert, key = self_signed(tmp_path, NOW - timedelta(days=30), NOW + timedelta(days=days_left))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.settimeout(0.2)

        def serve() -> None:
            while server.fileno() != -1:
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                try:
                    with context.wrap_socket(conn, server_side=True):
                        pass
                except OSError:
                    conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        servers.append((server, thread))
        port: int = server.getsockname()[1]
        return port

    yield start
    for server, thread in servers:
        server.close()
        thread.join(timeout=5)


def test_certificate_expiry_is_judged_against_warn_and_crit_days(
    tmp_path: Path, tls_server_for: object
) -> None:
    start = tls_server_for
    assert callable(start)
    ports = {days: start(days) for days in (90, 20, 3, -2)}
    cfg = config(
        *(
            {"kind": "tls", "host": "127.0.0.1", "port": port, "timeout_s": 5}
            for port in ports.values()
        )
    )
    results = by_key(run(tmp_path, cfg))
    status = {days: results[f"tls:127.0.0.1:{port}"] for days, port in ports.items()}
    assert status[90].status is Status.OK
    assert status[90].metrics["days_left"] == pytest.approx(90, abs=0.01)
    assert "expires in 90 days" in status[90].summary
    assert status[20].status is Status.WARN
    assert status[3].status is Status.CRIT
    assert status[-2].status is Status.CRIT
    assert "expired 2 days ago" in status[-2].summary


def test_a_port_without_tls_is_critical(
    tmp_path: Path, http_server: http.server.ThreadingHTTPServer
) -> None:
    port = http_server.server_address[1]
    [result] = run(
        tmp_path, config({"kind": "tls", "host": "127.0.0.1", "port": port, "timeout_s": 3})
    )
    assert result.status is Status.CRIT
    assert result.summary.startswith(f"TLS to 127.0.0.1:{port} failed")


# --- docs --------------------------------------------------------------------------------------


def test_every_example_in_the_service_doc_is_a_valid_probe_entry(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "probes" / "service.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    assert blocks
    import yaml

    adapter: pydantic.TypeAdapter[ProbeConfig] = pydantic.TypeAdapter(ProbeConfig)
    for block in blocks:
        for entry in yaml.safe_load(block):
            probe_config = adapter.validate_python(entry)
            assert isinstance(probe_config, ServiceConfig)
            ctx = ProbeContext(clock=ManualClock(NOW), state_dir=tmp_path)
            assert build_probe(probe_config, ctx).name == probe_config.name
