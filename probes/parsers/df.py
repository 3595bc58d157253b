"""df output: one row of space or inode figures per filesystem, from whatever df printed.

The SSH form of the disk probe runs GNU coreutils df (`df -P -k -T`, `df -P -i -T`); recorded
outputs of other forms parse too, because the columns are read from the header rather than
assumed:

    Filesystem 1K-blocks Used Available Use% Mounted on              df, df -k
    Filesystem Type 1024-blocks Used Available Capacity Mounted on   df -P -T (POSIX)
    Filesystem 2MB-blocks Used Available Use% Mounted on             df -B 2MB
    Filesystem Size Used Avail Use% Mounted on                       df -h (human units)
    Filesystem Inodes IUsed IFree IUse% Mounted on                   df -i
    Filesystem 512-blocks Used Available Capacity iused ifree %iused Mounted on   macOS df

What real outputs hold besides the table, and what happens to it:
- df's complaints (`/bin/df: '/vobs/GEMS': No such file or directory`) before the header, when
  stderr was captured with stdout: kept as `preamble`, never parsed as rows.
- Blank lines before or inside the table: skipped.
- `-` instead of a figure (`proc 0 0 0 - /proc`, `systemd-1 - - - - /proc/...`): that figure is
  None ("df has no number"), never 0.
- A long device name alone on its line with the figures on the next (GNU df without -P):
  joined into one row, even with blank lines between.
- A row cut short (`sysfs  0`): rejected with a reason, never read as a filesystem with 0 free.
- Device names and mount points with spaces (`map auto_home`, `/V M T o o l s`): the figures are
  found as the first run of values that fits the header, the device is what precedes them and
  the mount point everything after, as printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# GNU df's block-size suffixes (coreutils manual, "Block size"): K, M, G... (also KiB, MiB) are
# powers of 1024, KB, MB, GB... powers of 1000. `df -B 2MB` prints `2MB-blocks`: 2,000,000 bytes.
_UNIT_EXPONENTS = {"K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6, "Z": 7, "Y": 8}
_BLOCKS_HEADER = re.compile(r"^(\d+)(?:([KMGTPEZY])(iB|B)?)?-blocks$", re.IGNORECASE)
_COUNT = re.compile(r"^\d+$")
_PERCENT = re.compile(r"^(\d+)%$")
# df -h: "1.9G", "1014M", "0"; powers of 1024, as df -h prints them (df -H would be 1000, and
# its header is the same, so a human-unit table is read as -h).
_HUMAN_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTPEZY]?)$", re.IGNORECASE)
_NO_FIGURE = "-"


class DfFormatError(ValueError):
    """The text holds no df table we can read (no header, or a header with unknown columns)."""


@dataclass(frozen=True, slots=True)
class DfRow:
    """One filesystem as df showed it. A figure is None where df printed `-` or has no column."""

    device: str
    mountpoint: str
    fs_type: str | None = None
    total_bytes: int | None = None
    used_bytes: int | None = None
    # Available to unprivileged users (df's Available): the root reserve is not in it.
    free_bytes: int | None = None
    used_percent: int | None = None
    inodes_total: int | None = None
    inodes_used: int | None = None
    inodes_free: int | None = None
    inodes_used_percent: int | None = None


@dataclass(frozen=True, slots=True)
class RejectedLine:
    line_number: int  # 1-based, in the text given to the parser
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class DfTable:
    rows: tuple[DfRow, ...]
    rejected: tuple[RejectedLine, ...]
    # Lines before the header: df's messages on stderr when it was merged into stdout.
    preamble: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Column:
    field: str  # the DfRow field it fills
    kind: str  # "count", "percent" or "human"
    # Bytes per unit for space counts (1024 for 1K-blocks); 1 for inode counts.
    scale: int = 1


def _space_columns(block_size: int, kind: str) -> dict[str, _Column]:
    return {
        "used": _Column("used_bytes", kind, block_size),
        "available": _Column("free_bytes", kind, block_size),
        "avail": _Column("free_bytes", kind, block_size),
    }


_PERCENT_COLUMNS = {
    "use%": _Column("used_percent", "percent"),
    "capacity": _Column("used_percent", "percent"),
    "iuse%": _Column("inodes_used_percent", "percent"),
    "%iused": _Column("inodes_used_percent", "percent"),
}
_INODE_COLUMNS = {
    "inodes": _Column("inodes_total", "count"),
    "iused": _Column("inodes_used", "count"),
    "ifree": _Column("inodes_free", "count"),
}


def _block_size(name: str) -> int | None:
    match = _BLOCKS_HEADER.match(name)
    if match is None:
        return None
    count, unit, suffix = match.groups()
    if unit is None:
        return int(count)
    base = 1000 if suffix is not None and suffix.upper() == "B" else 1024
    multiplier: int = base ** _UNIT_EXPONENTS[unit.upper()]
    return int(count) * multiplier


@dataclass(frozen=True, slots=True)
class _Header:
    has_type: bool
    columns: tuple[_Column, ...]


def _parse_header(line: str) -> _Header | None:
    """The header's value columns, or None when the line is not a df header."""
    names = line.split()
    if len(names) < 4 or names[0].lower() != "filesystem" or names[-2:] != ["Mounted", "on"]:
        return None
    names = names[1:-2]
    has_type = bool(names) and names[0].lower() == "type"
    if has_type:
        names = names[1:]
    columns: list[_Column] = []
    # Used and Available follow the size column and share its unit.
    space_by_name: dict[str, _Column] = {}
    for name in names:
        lowered = name.lower()
        block_size = _block_size(name)
        if block_size is not None:
            columns.append(_Column("total_bytes", "count", block_size))
            space_by_name = _space_columns(block_size, "count")
        elif lowered == "size":
            columns.append(_Column("total_bytes", "human", 1))
            space_by_name = _space_columns(1, "human")
        elif lowered in space_by_name:
            columns.append(space_by_name[lowered])
        elif lowered in _PERCENT_COLUMNS:
            columns.append(_PERCENT_COLUMNS[lowered])
        elif lowered in _INODE_COLUMNS:
            columns.append(_INODE_COLUMNS[lowered])
        else:
            raise DfFormatError(f"unknown df column {name!r} in header {line.strip()!r}")
    if not columns:
        raise DfFormatError(f"df header without figures: {line.strip()!r}")
    return _Header(has_type=has_type, columns=tuple(columns))


class _NotAFigure(Exception):
    """The token cannot stand in this column: the row's figures start elsewhere."""


def _figure(token: str, column: _Column) -> int | None:
    """The token's value in bytes or inodes (or percent); None for df's `-`."""
    if token == _NO_FIGURE:
        return None
    if column.kind == "percent":
        percent = _PERCENT.match(token)
        if percent is None:
            raise _NotAFigure
        return int(percent.group(1))
    if column.kind == "human":
        human = _HUMAN_SIZE.match(token)
        if human is None:
            raise _NotAFigure
        number, unit = human.groups()
        multiplier = 1024 ** _UNIT_EXPONENTS[unit.upper()] if unit else 1
        # df -h rounds to a digit or two: the figure is approximate by nature.
        return round(float(number) * float(multiplier))
    if _COUNT.match(token) is None:
        raise _NotAFigure
    return int(token) * column.scale


def _row_from_tokens(line: str, header: _Header, device: str | None) -> tuple[DfRow | None, str]:
    """A row from one line; `device` is given when it stood alone on the line before.

    Returns the row, or None and the reason it was rejected.
    """
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", line)]
    tokens = [line[start:end] for start, end in spans]
    columns = header.columns
    # Before the figures: the device (one token or more: `map auto_home`), then the type.
    lead = (0 if device is not None else 1) + (1 if header.has_type else 0)
    for start in range(lead, len(tokens) - len(columns)):
        candidate = tokens[start : start + len(columns)]
        try:
            values = [
                _figure(token, column) for token, column in zip(candidate, columns, strict=True)
            ]
        except _NotAFigure:
            continue
        if device is not None and start != lead:
            break  # a continuation line holds only the type (if any), figures and mount point
        fs_type = tokens[start - 1] if header.has_type else None
        device_end = start - 1 if header.has_type else start
        row_device = device if device is not None else line[spans[0][0] : spans[device_end - 1][1]]
        figures = {column.field: value for column, value in zip(columns, values, strict=True)}
        mountpoint = line[spans[start + len(columns)][0] :].rstrip("\r\n")
        row = DfRow(
            device=row_device,
            mountpoint=mountpoint,
            fs_type=fs_type,
            total_bytes=figures.get("total_bytes"),
            used_bytes=figures.get("used_bytes"),
            free_bytes=figures.get("free_bytes"),
            used_percent=figures.get("used_percent"),
            inodes_total=figures.get("inodes_total"),
            inodes_used=figures.get("inodes_used"),
            inodes_free=figures.get("inodes_free"),
            inodes_used_percent=figures.get("inodes_used_percent"),
        )
        return row, ""
    wanted = lead + len(columns) + 1
    if len(tokens) < wanted:
        return None, f"row cut short: {len(tokens)} fields where {wanted} are needed"
    return None, "figures do not match the header's columns"


def parse_df(text: str) -> DfTable:
    """Parse df's output (stdout, possibly with stderr lines before the table).

    Raises DfFormatError when no header is found: the caller reports that df failed, rather
    than an empty host.
    """
    lines = text.splitlines()
    header: _Header | None = None
    preamble: list[str] = []
    rows: list[DfRow] = []
    rejected: list[RejectedLine] = []
    # A device name alone on its line, waiting for its figures on the next non-blank line.
    wrapped: tuple[int, str] | None = None
    for number, line in enumerate(lines, start=1):
        if header is None:
            header = _parse_header(line)
            if header is None and line.strip():
                preamble.append(line)
            continue
        if not line.strip():
            continue
        tokens = line.split()
        if wrapped is not None and line[:1].isspace():
            row, reason = _row_from_tokens(line, header, device=wrapped[1])
            if row is None:
                rejected.append(RejectedLine(number, line, reason))
            else:
                rows.append(row)
            wrapped = None
            continue
        if wrapped is not None:
            rejected.append(RejectedLine(wrapped[0], wrapped[1], "device name with no figures"))
            wrapped = None
        if len(tokens) == 1 and not line[:1].isspace():
            wrapped = (number, tokens[0])
            continue
        row, reason = _row_from_tokens(line, header, device=None)
        if row is None:
            rejected.append(RejectedLine(number, line, reason))
        else:
            rows.append(row)
    if header is None:
        raise DfFormatError("no df header (a line starting 'Filesystem' and ending 'Mounted on')")
    if wrapped is not None:
        rejected.append(RejectedLine(wrapped[0], wrapped[1], "device name with no figures"))
    return DfTable(rows=tuple(rows), rejected=tuple(rejected), preamble=tuple(preamble))
