"""df tables: written fixtures for each case, then the real outputs in ../shared/material/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probes.parsers.df import DfFormatError, DfRow, parse_df

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "disk"
# The material folder sits next to the clone: /work/shared/material beside /work/main.
MATERIAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "material" / "cmd_output"
KIB = 1024


def material(name: str) -> Path:
    path = MATERIAL / name
    if not path.exists():
        pytest.skip(f"../shared/material is not here: {path} is absent")
    return path


def by_mountpoint(rows: tuple[DfRow, ...]) -> dict[str, DfRow]:
    return {row.mountpoint: row for row in rows}


# Written fixtures: each case the real outputs hold, so the parser is tested without them.


def test_the_posix_table_with_types_gives_bytes_types_and_mount_points_with_spaces() -> None:
    table = parse_df((FIXTURES / "debian12_df-P-k-T.out").read_text())
    assert table.rejected == ()
    assert table.preamble == ()
    rows = by_mountpoint(table.rows)
    assert len(rows) == 11
    archive = rows["/var/lib/postgresql/archive"]
    assert archive == DfRow(
        device="/dev/mapper/vg_data-lv_postgresql_archive",
        mountpoint="/var/lib/postgresql/archive",
        fs_type="xfs",
        total_bytes=524032000 * KIB,
        used_bytes=441318212 * KIB,
        free_bytes=82713788 * KIB,
        used_percent=85,
    )
    assert rows["/mnt/old disk"].device == "/dev/sdc1"
    assert rows["/snap/core22/1122"].fs_type == "squashfs"


def test_the_inode_table_gives_counts_and_no_figure_where_df_prints_a_dash() -> None:
    rows = by_mountpoint(parse_df((FIXTURES / "debian12_df-P-i-T.out").read_text()).rows)
    root = rows["/"]
    assert (root.inodes_total, root.inodes_used, root.inodes_free) == (3932160, 3540219, 391941)
    assert root.inodes_used_percent == 91
    assert root.total_bytes is None
    assert rows["/srv/backup"].inodes_total == 0
    assert rows["/srv/backup"].inodes_used_percent is None


def test_complaints_before_the_header_are_kept_apart_and_blank_lines_are_skipped() -> None:
    text = (
        "df: /mnt/nfs: Stale file handle\n"
        "\n"
        "Filesystem     1K-blocks    Used Available Use% Mounted on\n"
        "/dev/sda1       20508240 5748028  13695408  30% /\n"
        "\n"
        "/dev/sdb1        1038336  237600    800736  23% /boot\n"
    )
    table = parse_df(text)
    assert table.preamble == ("df: /mnt/nfs: Stale file handle",)
    assert [r.mountpoint for r in table.rows] == ["/", "/boot"]
    assert table.rejected == ()


def test_a_row_cut_short_is_rejected_with_its_line_not_read_as_an_empty_disk() -> None:
    text = (
        "Filesystem     1K-blocks    Used Available Use% Mounted on\n"
        "/dev/sda1       20508240 5748028  13695408  30% /\n"
        "/dev/sdb1       20508240\n"
    )
    table = parse_df(text)
    assert [r.mountpoint for r in table.rows] == ["/"]
    [rejected] = table.rejected
    assert rejected.line_number == 3
    assert rejected.text == "/dev/sdb1       20508240"
    assert rejected.reason == "row cut short: 2 fields where 6 are needed"


def test_a_row_without_its_mount_point_is_rejected() -> None:
    text = "Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/sdb1 100 50 50 50%\n"
    [rejected] = parse_df(text).rejected
    assert "cut short" in rejected.reason


def test_a_line_whose_fields_are_not_figures_is_rejected() -> None:
    text = (
        "Filesystem 1K-blocks Used Available Use% Mounted on\n"
        "df: /mnt/x: Transport endpoint is not connected\n"
    )
    table = parse_df(text)
    assert table.rows == ()
    assert table.rejected[0].reason == "figures do not match the header's columns"


def test_a_wrapped_device_name_is_joined_with_the_figures_on_the_next_line() -> None:
    # GNU df without -P puts a device name longer than its column on a line of its own.
    text = (
        "Filesystem                            1K-blocks      Used Available Use% Mounted on\n"
        "/dev/mapper/vg_data-lv_postgresql_archive_and_more\n"
        "                                      524032000 441318212  82713788  85% /archive\n"
        "/dev/sda1                                474730     98541    351159  22% /boot\n"
    )
    rows = parse_df(text).rows
    assert [(r.device, r.mountpoint) for r in rows] == [
        ("/dev/mapper/vg_data-lv_postgresql_archive_and_more", "/archive"),
        ("/dev/sda1", "/boot"),
    ]
    assert rows[0].used_bytes == 441318212 * KIB


def test_a_wrapped_device_with_a_type_column_keeps_its_type() -> None:
    text = (
        "Filesystem                       Type 1K-blocks  Used Available Use% Mounted on\n"
        "/dev/mapper/a_very_long_volume_name_indeed\n"
        "                                 xfs     102400 51200     51200  50% /srv\n"
    )
    [row] = parse_df(text).rows
    assert (row.device, row.fs_type, row.mountpoint) == (
        "/dev/mapper/a_very_long_volume_name_indeed",
        "xfs",
        "/srv",
    )


def test_a_device_name_never_followed_by_its_figures_is_rejected() -> None:
    text = (
        "Filesystem 1K-blocks Used Available Use% Mounted on\n"
        "/dev/mapper/cut_here\n"
        "/dev/sda1 100 50 50 50% /\n"
        "/dev/mapper/and_here\n"
    )
    table = parse_df(text)
    assert [r.mountpoint for r in table.rows] == ["/"]
    assert [(r.line_number, r.reason) for r in table.rejected] == [
        (2, "device name with no figures"),
        (4, "device name with no figures"),
    ]


def test_block_sizes_in_the_header_scale_the_figures_as_gnu_df_defines_them() -> None:
    def total(header: str) -> int | None:
        text = f"Filesystem {header} Used Available Use% Mounted on\nd 3 1 2 34% /\n"
        return parse_df(text).rows[0].total_bytes

    assert total("1K-blocks") == 3 * 1024
    assert total("1024-blocks") == 3 * 1024
    assert total("512-blocks") == 3 * 512
    # K, M, G are powers of 1024; KB, MB, GB powers of 1000 (`df -B 2MB` prints 2MB-blocks).
    assert total("2M-blocks") == 3 * 2 * 1024**2
    assert total("2MB-blocks") == 3 * 2 * 1000**2
    assert total("1GiB-blocks") == 3 * 1024**3


def test_human_sizes_are_read_in_powers_of_1024() -> None:
    text = "Filesystem Size Used Avail Use% Mounted on\n/dev/sda1 1014M 233M 782M 23% /boot\n"
    [row] = parse_df(text).rows
    assert row.total_bytes == 1014 * 1024**2
    assert row.free_bytes == 782 * 1024**2


def test_dashes_are_no_figure_and_a_device_may_hold_spaces() -> None:
    text = (
        "Filesystem     1K-blocks    Used Available Use% Mounted on\n"
        "systemd-1              -       -         -    - /proc/sys/fs/binfmt_misc\n"
        "map auto_home          0       0         0 100% /home\n"
    )
    automount, home = parse_df(text).rows
    assert (automount.total_bytes, automount.used_percent) == (None, None)
    assert (home.device, home.mountpoint, home.total_bytes) == ("map auto_home", "/home", 0)


def test_text_without_a_header_is_an_error_not_an_empty_host() -> None:
    with pytest.raises(DfFormatError, match="no df header"):
        parse_df("sh: 1: df: not found\n")
    with pytest.raises(DfFormatError, match="no df header"):
        parse_df("")


def test_a_header_with_a_column_we_do_not_know_is_an_error() -> None:
    with pytest.raises(DfFormatError, match="unknown df column 'Frobs'"):
        parse_df("Filesystem Frobs Used Available Use% Mounted on\n")


# The real outputs in ../shared/material/cmd_output/: what its README says a probe should find.

JC_DF_FILES = [
    "centos-7.7_df.out",
    "centos-7.7_df-h.out",
    "ubuntu-18.04_df.out",
    "osx-10.14.6_df.out",
    "generic_df-long-filesystem.out",
]


@pytest.mark.material
@pytest.mark.parametrize("name", JC_DF_FILES)
def test_each_jc_df_output_parses_as_jc_parsed_it(name: str) -> None:
    out = material(f"jc/{name}")
    expected = json.loads(out.with_suffix(".json").read_text())
    table = parse_df(out.read_text())
    assert table.rejected == ()
    assert len(table.rows) == len(expected)
    for row, want in zip(table.rows, expected, strict=True):
        assert row.device == want["filesystem"]
        assert row.mountpoint == want["mounted_on"]
        assert row.fs_type == want.get("type")
        assert row.used_percent == want.get("use_percent", want.get("capacity_percent"))
        if "size" in want:  # df -h: jc truncates the byte count, we round it
            assert row.total_bytes is not None
            assert abs(row.total_bytes - want["size"]) <= 1
            continue
        block_key = next(key for key in want if key.endswith("_blocks"))
        unit = block_key.removesuffix("_blocks")  # jc names them 1k_blocks, 1024_blocks, ...
        block_size = 1024 if unit == "1k" else int(unit)
        assert row.total_bytes == want[block_key] * block_size
        assert row.used_bytes == want["used"] * block_size
        assert row.free_bytes == want["available"] * block_size


@pytest.mark.material
def test_ubuntus_snap_loops_are_full_squashfs_images_seen_as_full() -> None:
    # df alone shows them as full disks; the disk probe knows them by type (test_disk.py).
    rows = parse_df(material("jc/ubuntu-18.04_df.out").read_text()).rows
    loops = [r for r in rows if r.device.startswith("/dev/loop")]
    assert len(loops) == 11
    assert all(r.used_percent == 100 and r.free_bytes == 0 for r in loops)
    assert all(r.mountpoint.startswith("/snap/") for r in loops)


@pytest.mark.material
def test_macos_df_gives_inode_columns_beside_the_space_columns() -> None:
    rows = by_mountpoint(parse_df(material("jc/osx-10.14.6_df.out").read_text()).rows)
    root = rows["/"]
    assert root.total_bytes == 976490576 * 512
    assert (root.inodes_used, root.inodes_free, root.inodes_used_percent) == (
        1507695,
        9223372036853268112,
        0,
    )
    assert rows["/net"].device == "map -hosts"
    assert (
        "/Volumes/com.apple.TimeMachine.localsnapshots/Backups.backupdb/kbrazil-mac/"
        "2019-11-29-075900/Macintosh HD" in rows
    )


@pytest.mark.material
def test_the_posix_table_keeps_a_long_device_on_one_line_and_dashes_for_pseudo_filesystems() -> (
    None
):
    rows = parse_df(material("jc/generic_df-long-filesystem.out").read_text()).rows
    assert rows[0].device == "/dev/mapper/VolGroup00-LogVol00"
    assert rows[0].fs_type == "ext3"
    assert [(r.mountpoint, r.fs_type, r.used_percent) for r in rows[1:]] == [
        ("/proc", "proc", None),
        ("/sys", "sysfs", None),
    ]


@pytest.mark.material
def test_df_complaints_before_the_header_and_a_blank_line_in_the_table_are_skipped() -> None:
    table = parse_df(material("insights_core/df-alP_DF_ALP.out").read_text())
    assert table.preamble == (
        "/bin/df: '/vobs/GEMS': No such file or directory",
        "/bin/df: '/vobs/NT/TFax': No such file or directory",
    )
    assert table.rejected == ()
    assert len(table.rows) == 9
    assert table.rows[-1].mountpoint == "/sys/fs/cgroup"
    assert by_mountpoint(table.rows)["/sys"].used_percent is None


@pytest.mark.material
@pytest.mark.parametrize(
    ("name", "rows", "dashes"),
    [
        ("df-alP_DF_ALP_DOC.out", 20, 13),
        ("df-al_DF_AL.out", 9, 4),
        ("df-al_DF_AL_DOC.out", 20, 13),
    ],
)
def test_pseudo_filesystems_have_no_use_percent(name: str, rows: int, dashes: int) -> None:
    table = parse_df(material(f"insights_core/{name}").read_text())
    assert table.rejected == ()
    assert len(table.rows) == rows
    assert sum(r.used_percent is None for r in table.rows) == dashes


@pytest.mark.material
def test_the_mount_point_with_spaces_and_the_automount_without_figures_are_read() -> None:
    rows = by_mountpoint(parse_df(material("insights_core/df-al_DF_AL_DOC.out").read_text()).rows)
    assert rows["/V M T o o l s"].device == "/dev/sdb1"
    assert rows["/V M T o o l s"].total_bytes == 52402180 * KIB
    automount = rows["/proc/sys/fs/binfmt_misc"]
    assert (automount.device, automount.total_bytes, automount.free_bytes) == (
        "systemd-1",
        None,
        None,
    )


@pytest.mark.material
def test_the_truncated_sysfs_row_is_rejected_not_read_as_zero_free() -> None:
    table = parse_df(material("insights_core/df-al_DF_AL_BAD.out").read_text())
    assert [r.mountpoint for r in table.rows] == ["/"]
    [rejected] = table.rejected
    assert rejected.text.split() == ["sysfs", "0"]
    assert "cut short" in rejected.reason


@pytest.mark.material
def test_two_megabyte_blocks_are_scaled_to_bytes() -> None:
    [row] = parse_df(material("insights_core/df-al_DF_AL_BS_2MB.out").read_text()).rows
    assert row.total_bytes == 62031 * 2_000_000
    assert row.used_bytes == 49197 * 2_000_000
    assert row.free_bytes == 9680 * 2_000_000
    assert row.used_percent == 84


@pytest.mark.material
def test_the_wrapped_device_in_the_inode_table_joins_its_figures_across_a_blank_line() -> None:
    table = parse_df(material("insights_core/df-li_DF_LI.out").read_text())
    assert table.rejected == ()
    first = table.rows[0]
    assert (first.device, first.mountpoint) == ("/dev/mapper/vg_lxcrhel6sat56-lv_root", "/")
    assert (first.inodes_total, first.inodes_used, first.inodes_free) == (6275072, 124955, 6150117)
    assert first.inodes_used_percent == 2
    rows = by_mountpoint(table.rows)
    assert len(table.rows) == 10
    assert {"/V M T o o l s", "/VM Tools"} <= rows.keys()


@pytest.mark.material
def test_the_short_inode_table_reads_whole() -> None:
    table = parse_df(material("insights_core/df-li_DF_LI_DOC.out").read_text())
    assert table.rejected == ()
    assert by_mountpoint(table.rows)["/opt/data"].inodes_used == 19662
    assert len(table.rows) == 8
