"""/proc files, `uptime`, `free` and certificate dates, on fixtures and the real material."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from probes.parsers.free import parse_free
from probes.parsers.procfs import (
    CpuTimes,
    cpu_busy_percent,
    parse_concatenated,
    parse_loadavg,
    parse_meminfo,
    parse_stat,
    parse_uptime_seconds,
)
from probes.parsers.uptime import parse_uptime_line
from probes.parsers.x509 import parse_validity

ROOT = Path(__file__).resolve().parents[3]
MATERIAL = ROOT / ".." / "shared" / "material" / "cmd_output"
FIXTURES = ROOT / "tests" / "fixtures" / "system"
KIB = 1024


def material(name: str) -> str:
    path = MATERIAL / name
    if not path.exists():
        pytest.skip(f"../shared/material is not here: {path} is absent")
    return path.read_text()


def proc(name: str) -> str:
    return (FIXTURES / "proc" / name).read_text()


def test_loadavg_and_uptime_files_give_their_numbers() -> None:
    load = parse_loadavg(proc("loadavg"))
    assert (load.one, load.five, load.fifteen) == (3.2, 6.4, 1.6)
    assert parse_uptime_seconds(proc("uptime")) == 86400.5


def test_bad_proc_values_are_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="could not parse load 'x y z'"):
        parse_loadavg("x y z")
    with pytest.raises(ValueError, match="could not parse uptime"):
        parse_uptime_seconds("")


def test_meminfo_gives_memory_and_swap_in_bytes() -> None:
    memory = parse_meminfo(proc("meminfo"))
    assert memory.total_bytes == 8_000_000 * KIB
    assert memory.available_bytes == 800_000 * KIB
    assert memory.used_percent == pytest.approx(90.0)
    assert memory.swap_used_percent == pytest.approx(25.0)


def test_an_old_kernel_without_mem_available_counts_free_buffers_and_cache() -> None:
    memory = parse_meminfo((FIXTURES / "meminfo-2.6").read_text())
    assert memory.available_bytes == 400_000 * KIB
    assert memory.swap_used_percent is None


def test_stat_gives_busy_and_total_ticks_and_the_number_of_cpus() -> None:
    cpu = parse_stat(proc("stat"))
    assert cpu == CpuTimes(busy=1500, total=10000, cpu_count=4)
    with pytest.raises(ValueError, match="no cpu line"):
        parse_stat("intr 1 2 3\n")


def test_cpu_percent_needs_time_to_pass_and_counters_to_grow() -> None:
    earlier = CpuTimes(busy=1000, total=10000, cpu_count=2)
    assert cpu_busy_percent(earlier, CpuTimes(1500, 11000, 2)) == pytest.approx(50.0)
    assert cpu_busy_percent(earlier, earlier) is None
    assert cpu_busy_percent(earlier, CpuTimes(10, 100, 2)) is None  # rebooted in between


def test_the_four_files_catted_together_are_told_apart() -> None:
    text = "".join(proc(name) for name in ("loadavg", "uptime", "meminfo", "stat"))
    snapshot = parse_concatenated(text)
    assert snapshot.load.five == 6.4
    assert snapshot.uptime_s == 86400.5
    assert snapshot.memory.total_bytes == 8_000_000 * KIB
    assert snapshot.cpu.cpu_count == 4
    with pytest.raises(ValueError, match="loadavg"):
        parse_concatenated(proc("meminfo") + proc("stat"))


def test_this_hosts_own_proc_files_parse() -> None:
    text = "".join(
        Path("/proc", name).read_text() for name in ("loadavg", "uptime", "meminfo", "stat")
    )
    snapshot = parse_concatenated(text)
    assert snapshot.memory.total_bytes > 0
    assert snapshot.cpu.cpu_count >= 1


@pytest.mark.parametrize(
    ("line", "uptime_s", "users"),
    [
        (" 10:25:20 up 16:03,  2 users,  load average: 0.00, 0.01, 0.05", 16 * 3600 + 3 * 60, 2),
        (
            "09:01:02 up 12 days,  3:04,  1 user,  load average: 1.10, 0.90, 0.80",
            12 * 86400 + 3 * 3600 + 4 * 60,
            1,
        ),
        ("09:01:02 up 1 day, 5 min,  0 users,  load average: 0.10, 0.20, 0.30", 86400 + 300, 0),
        ("09:01:02 up 23 min,  load average: 0.00, 0.00, 0.00", 23 * 60, None),
        ("09:01:02 up 2 days, 1 hour,  3 users,  load averages: 1.5 1.2 1.0", 2 * 86400 + 3600, 3),
    ],
)
def test_uptime_lines_of_every_shape_parse(line: str, uptime_s: float, users: int | None) -> None:
    parsed = parse_uptime_line(line)
    assert parsed.uptime_s == uptime_s
    assert parsed.users == users


def test_an_uptime_error_is_refused() -> None:
    with pytest.raises(ValueError, match="could not parse uptime output"):
        parse_uptime_line("uptime: /proc must be mounted\n")


def test_material_centos_uptime_is_sixteen_hours_and_the_load_is_read() -> None:
    parsed = parse_uptime_line(material("jc/centos-7.7_uptime.out"))
    assert parsed.uptime_s == 16 * 3600 + 3 * 60
    assert parsed.users == 2
    assert (parsed.load.one, parsed.load.five, parsed.load.fifteen) == (0.0, 0.01, 0.05)


def test_material_centos_free_gives_memory_from_the_available_column() -> None:
    memory = parse_free(material("jc/centos-7.7_free.out"))
    assert memory.total_bytes == 3861332 * KIB
    assert memory.available_bytes == 3389588 * KIB
    assert memory.used_percent == pytest.approx(12.217, abs=0.001)
    assert memory.swap_total_bytes == 2097148 * KIB
    assert memory.swap_used_percent == 0.0


def test_old_free_without_an_available_column_counts_free_buffers_and_cache() -> None:
    memory = parse_free((FIXTURES / "free-procps-3.2.out").read_text())
    assert memory.available_bytes == 400_000 * KIB
    assert memory.swap_used_percent == pytest.approx(25.0)


def test_free_that_printed_an_error_is_refused() -> None:
    with pytest.raises(ValueError, match="no header"):
        parse_free("free: cannot open /proc/meminfo\n")


def test_certificate_dates_are_read_from_der_in_both_time_encodings() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "db01")])
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for days in (90, 40000):  # UTCTime before 2050, GeneralizedTime after
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(7)
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        validity = parse_validity(cert.public_bytes(serialization.Encoding.DER))
        assert validity.not_before == start
        assert validity.not_after == start + timedelta(days=days)


def test_bytes_that_are_no_certificate_are_refused() -> None:
    with pytest.raises(ValueError, match="not a DER certificate"):
        parse_validity(b"\x02\x01\x00")
    with pytest.raises(ValueError, match="cut short"):
        parse_validity(b"\x30\x82\x01\x00\x30")
