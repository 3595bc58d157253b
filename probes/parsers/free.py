"""The `free` command's table (procps, in KiB): memory and swap totals.

                  total        used        free      shared  buff/cache   available
    Mem:        3861332      222820     3364176       11832      274336     3389588
    Swap:       2097148           0     2097148

Older procps has no `available` column (and a `-/+ buffers/cache:` row); then free plus
buffers and cache is what a process could still get.
"""

from __future__ import annotations

from probes.parsers.procfs import Memory

KIB = 1024


def parse_free(text: str) -> Memory:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    header = next((fields for fields in lines if fields and fields[0] == "total"), None)
    if header is None:
        raise ValueError("free printed no header")
    rows = {fields[0]: fields[1:] for fields in lines if fields[0].endswith(":")}
    if "Mem:" not in rows:
        raise ValueError("free printed no Mem: row")

    def column(row: list[str], name: str) -> int | None:
        if name not in header:
            return None
        index = header.index(name)
        return int(row[index]) * KIB if index < len(row) and row[index].isdigit() else None

    mem = rows["Mem:"]
    total = column(mem, "total")
    if total is None:
        raise ValueError("free's Mem: row has no total")
    available = column(mem, "available")
    if available is None:
        parts = [column(mem, name) for name in ("free", "buffers", "cached", "buff/cache")]
        available = sum(p for p in parts if p is not None)
    swap = rows.get("Swap:", [])
    return Memory(
        total_bytes=total,
        available_bytes=min(available, total),
        swap_total_bytes=column(swap, "total") or 0,
        swap_free_bytes=column(swap, "free") or 0,
    )
