"""`ps` output (`ps -eo pid,ppid,nlwp,args`, `ps auxww`, `ps -ef`) as process rows.

The header is found by content, not position: real outputs carry junk before it (procps'
"your 131072x1 screen size is bogus. expect trouble", blank lines). The command line is the last
column and the only one with spaces, so each row is split into as many fields as the header has
names. Output with no header at all is a failure of ps (`/bin/ps: command or file not found`),
reported as PsFailed rather than read as an empty process list: "0 processes" would be a lie.
"""

from __future__ import annotations

from dataclasses import dataclass

# The names ps gives the command-line column, depending on the format asked for.
_COMMAND_COLUMNS = ("COMMAND", "CMD", "ARGS")


class PsFailed(ValueError):
    """ps printed no process table; the message is what it printed instead."""


@dataclass(frozen=True, slots=True)
class ProcessRow:
    pid: int
    # The executable's base name: the command line's first word without its folder or a
    # trailing ":" (`/usr/sbin/sshd -D` -> sshd, `nginx: worker process` -> nginx), or the
    # kernel thread's name without brackets.
    name: str
    args: str
    kernel_thread: bool


def executable_name(args: str) -> str:
    first_word = args.split(maxsplit=1)[0] if args.strip() else ""
    return first_word.rsplit("/", 1)[-1].rstrip(":")


def process_row(pid: int, args: str) -> ProcessRow:
    """One row from a pid and a command line, shared by ps parsing and the local psutil read.

    ps shows a process without a command line (a kernel thread, a zombie) as its name in
    brackets; `[NFSv4` is such a name cut at ps' column width.
    """
    stripped = args.strip()
    if stripped.startswith("["):
        name = stripped[1:].split("]", 1)[0]
        return ProcessRow(pid=pid, name=name, args=stripped, kernel_thread=True)
    return ProcessRow(pid=pid, name=executable_name(stripped), args=stripped, kernel_thread=False)


def _is_header(fields: list[str]) -> bool:
    return "PID" in fields and fields[-1] in _COMMAND_COLUMNS


def _first_text_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "no output"


def parse_ps(text: str) -> list[ProcessRow]:
    """Every process row after the header; thread rows (`ps m`, pid `-`) are skipped.

    Raises PsFailed when there is no header.
    """
    lines = text.splitlines()
    header_index = next((i for i, line in enumerate(lines) if _is_header(line.split())), None)
    if header_index is None:
        raise PsFailed(_first_text_line(text))
    columns = lines[header_index].split()
    pid_column = columns.index("PID")
    rows: list[ProcessRow] = []
    for line in lines[header_index + 1 :]:
        fields = line.split(None, len(columns) - 1)
        if len(fields) < len(columns):
            # A row with an empty command line (or a cut row): nothing to match on.
            continue
        try:
            pid = int(fields[pid_column])
        except ValueError:
            continue
        rows.append(process_row(pid, fields[-1]))
    return rows
