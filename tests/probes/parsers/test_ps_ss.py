"""ps and ss parsing on written outputs and on the real outputs in ../shared/material/."""

# ruff: noqa: S104 - wildcard addresses here are parsed from ss output, never bound

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from probes.parsers.ps import PsFailed, parse_ps, process_row
from probes.parsers.ss import (
    ListeningSocket,
    SsFailed,
    listens_for,
    parse_listening_tcp,
    split_address,
)

MATERIAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "material" / "cmd_output"


def material(name: str) -> str:
    path = MATERIAL / name
    if not path.exists():
        pytest.skip(f"../shared/material is not here: {path} is absent")
    return path.read_text()


def test_a_command_line_gives_the_executable_name_and_brackets_mark_a_kernel_thread() -> None:
    assert process_row(1, "/usr/sbin/sshd -D").name == "sshd"
    assert process_row(2, "nginx: worker process").name == "nginx"
    thread = process_row(3, "[kworker/0:1-events]")
    assert (thread.name, thread.kernel_thread) == ("kworker/0:1-events", True)
    assert process_row(4, "[NFSv4").name == "NFSv4"


def test_ps_rows_keep_spaces_in_the_command_line_and_skip_thread_rows() -> None:
    text = (
        "USER PID %CPU %MEM VSZ RSS TTY STAT START TIME COMMAND\n"
        "root 1 0.0 0.1 1000 500 ? Ss Jan10 6:52 /sbin/init splash --x\n"
        "root - 0.0 - - - - Ss 05:22 0:00 -\n"
        "app 7 0.0 0.1 1000 500 ? Ss 10:25 0:00 python3 -m http.server 80\n"
    )
    rows = parse_ps(text)
    assert [(r.pid, r.args) for r in rows] == [
        (1, "/sbin/init splash --x"),
        (7, "python3 -m http.server 80"),
    ]


def test_ps_without_a_header_has_failed() -> None:
    with pytest.raises(PsFailed, match="No such file"):
        parse_ps("ps: /proc: No such file or directory\n")
    with pytest.raises(PsFailed, match="no output"):
        parse_ps("")


@pytest.mark.parametrize(
    ("name", "rows", "first_name"),
    [
        ("insights_core/ps-auxww_LATE_HEADER.out", 5, "systemd"),
        ("insights_core/ps-auxww_PsAuxww_TEST.out", 7, "systemd"),
        ("insights_core/ps-auxcww_PsAuxcww_TEST.out", 13, "init"),
        ("insights_core/ps-auxwwwm_PS_AUXWWWM.out", 6, "smartd"),
        ("insights_core/ps-ef_PsEf_TEST.out", 9, "systemd"),
        ("insights_core/ps-eo-pid-ppid-nlwp-args_PS_EO_CMD_NORMAL.out", 11, "systemd"),
        ("insights_core/ps-eo-pid-ppid-nlwp-args_PsEoCmd_TEST_DOC.out", 4, "systemd"),
        ("jc/centos-7.7_ps-axu.out", 109, "systemd"),
        ("jc/centos-7.7_ps-ef.out", 109, "systemd"),
        ("jc/ubuntu-18.04_ps-ef.out", 172, "init"),
    ],
)
def test_material_ps_outputs_give_every_process_row(name: str, rows: int, first_name: str) -> None:
    parsed = parse_ps(material(name))
    assert len(parsed) == rows
    assert parsed[0].pid == 1 or name.endswith(("AUXWWWM.out", "PsAuxcww_TEST.out"))
    assert parsed[0].name == first_name


def test_material_ps_eo_output_reads_seven_digit_pids_and_the_cut_kernel_thread() -> None:
    rows = parse_ps(material("insights_core/ps-eo-pid-ppid-nlwp-args_PS_EO_CMD_NORMAL.out"))
    by_pid = {r.pid: r for r in rows}
    assert by_pid[1221279].name == "java"
    assert by_pid[3106].kernel_thread
    assert by_pid[3106].name == "NFSv4"


def test_material_late_header_output_skips_the_screen_size_warning() -> None:
    rows = parse_ps(material("insights_core/ps-auxww_LATE_HEADER.out"))
    assert [r.kernel_thread for r in rows] == [False, True, True, True, True]


def test_material_ps_bad_output_is_a_failure_with_its_message() -> None:
    with pytest.raises(PsFailed) as failure:
        parse_ps(material("insights_core/ps_BAD.out"))
    assert str(failure.value) == "/bin/ps: command or file not found"


def test_ss_addresses_of_every_shape_split_into_address_port_and_interface() -> None:
    assert split_address("0.0.0.0:22") == ("0.0.0.0", 22, "")
    assert split_address("*:80") == ("*", 80, "")
    assert split_address("[::]:22") == ("::", 22, "")
    assert split_address(":::111") == ("::", 111, "")
    assert split_address("[::1]:25") == ("::1", 25, "")
    assert split_address("0.0.0.0%virbr0:67") == ("0.0.0.0", 67, "virbr0")
    assert split_address("127.0.0.53%lo:53") == ("127.0.0.53", 53, "lo")
    assert split_address("[fe80::1%eth0]:546") == ("fe80::1", 546, "eth0")
    assert split_address("*") is None


def test_ss_ltn_gives_only_tcp_listeners() -> None:
    text = (
        "State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        "LISTEN 0      128    0.0.0.0:22          0.0.0.0:*\n"
        "ESTAB  0      0      10.0.0.1:22         10.0.0.2:50000\n"
        "LISTEN 0      128    [::]:443            [::]:*\n"
    )
    assert parse_listening_tcp(text) == [
        ListeningSocket("0.0.0.0", 22),
        ListeningSocket("::", 443),
    ]


def test_ss_without_a_header_has_failed() -> None:
    with pytest.raises(SsFailed, match="Cannot open netlink"):
        parse_listening_tcp("Cannot open netlink socket: Protocol not supported\n")


def test_a_listener_matches_wildcards_loopback_and_exact_addresses() -> None:
    sockets = [ListeningSocket("127.0.0.1", 5432), ListeningSocket("10.0.0.5", 80)]
    assert listens_for(sockets, "localhost", 5432)
    assert listens_for(sockets, "127.0.0.1", 5432)
    assert not listens_for(sockets, "10.0.0.5", 5432)
    assert listens_for(sockets, "10.0.0.5", 80)
    assert not listens_for(sockets, "localhost", 80)
    # A name the collector cannot resolve for the host: any listener on the port counts.
    assert listens_for(sockets, "web01", 80)
    assert listens_for([ListeningSocket("::", 22)], "10.9.9.9", 22)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("insights_core/ss-tulpn_SS_TULPN_2.out", {("*", 80), ("0.0.0.0", 22), ("::", 22)}),
        (
            "insights_core/ss-tulpn_Ss_TULPN.out",
            {("*", 22), ("127.0.0.1", 25), ("10.72.32.206", 5900)},
        ),
        ("insights_core/ss-tupna_SS_TUPNA_2.out", {("*", 80), ("127.0.0.1", 631)}),
        ("insights_core/ss-tupna_SS_TUPNA_DOCS.out", {("*", 111)}),
        ("insights_core/ss-tupna_Ss_TUPNA.out", {("*", 22), ("::", 111), ("::1", 25)}),
        ("jc/ubuntu-18.04_ss-sudo-tulpen.out", {("0.0.0.0", 22), ("127.0.0.53", 53)}),
    ],
)
def test_material_ss_outputs_give_their_tcp_listeners(
    name: str, expected: set[tuple[str, int]]
) -> None:
    sockets = parse_listening_tcp(material(name))
    found = {(s.address, s.port) for s in sockets}
    assert expected <= found
    # UNCONN udp rows, such as dhcp's 0.0.0.0%virbr0:67, are never listeners.
    assert ("0.0.0.0", 67) not in found


def test_material_interface_scoped_tcp_listener_keeps_its_interface() -> None:
    sockets = parse_listening_tcp(material("jc/ubuntu-18.04_ss-sudo-tulpen.out"))
    assert ListeningSocket("127.0.0.53", 53, "lo") in sockets


def test_material_ss_a_without_n_names_ports_by_service() -> None:
    sockets = parse_listening_tcp(material("jc/centos-7.7_ss-sudo-a.out"))
    try:
        ssh, smtp = socket.getservbyname("ssh", "tcp"), socket.getservbyname("smtp", "tcp")
    except OSError:
        pytest.skip("this host has no /etc/services to name ports")
    assert {(s.address, s.port) for s in sockets} == {
        ("127.0.0.1", smtp),
        ("*", ssh),
        ("::1", smtp),
        ("::", ssh),
    }
