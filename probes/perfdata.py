"""Monitoring-plugins output: the summary line, the long text and the performance data.

The format (monitoring-plugins development guidelines, "Plugin Output" and "Performance data"):

    TEXT OUTPUT | OPTIONAL PERFDATA
    LONG TEXT LINE 1
    LONG TEXT LINE 2 | PERFDATA LINE 2
    PERFDATA LINE 3

Performance data is a space-separated list of `'label'=value[UOM];[warn];[crit];[min];[max]`:
the label is quoted when it holds spaces (a quote inside is doubled), UOM is one of s ms us % B
KB MB GB TB c, and warn/crit are ranges (`10`, `10:`, `~:10`, `10:20`, `@10:20`).

Pure functions only: the command probe's local run and its SSH form both call
`parse_plugin_output`. Plugins are written by many hands, so nothing here trusts its input: a
value that does not parse is skipped with a note, never a crash and never a made-up number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import MappingProxyType

# Sizes and times are scaled to bytes and seconds, so a plugin that switches from MB to GB, or a
# `time=12ms` and a `time=0.012s`, gives the same metric. KB, MB... are powers of 1024: the
# plugins that print them (check_disk, check_swap) compute them that way.
UNIT_SCALES: MappingProxyType[str, tuple[float, str]] = MappingProxyType({
    "s": (1.0, "s"),
    "ms": (1e-3, "s"),
    "us": (1e-6, "s"),
    "B": (1.0, "B"),
    "KB": (1024.0, "B"),
    "MB": (1024.0**2, "B"),
    "GB": (1024.0**3, "B"),
    "TB": (1024.0**4, "B"),
    "KiB": (1024.0, "B"),
    "MiB": (1024.0**2, "B"),
    "GiB": (1024.0**3, "B"),
    "TiB": (1024.0**4, "B"),
})

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(rf"^{_NUMBER}$")
_VALUE_RE = re.compile(rf"^(?P<number>{_NUMBER})(?P<unit>[A-Za-z%]*)$")
# A plugin cannot say more than this in one label; longer ones are cut (a metric name's limit).
LABEL_MAX_CHARS = 128


def _number(text: str) -> float | None:
    if not _NUMBER_RE.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class Range:
    """A threshold range: a value outside [start, end] alerts, or inside when `alert_inside`."""

    start: float
    end: float
    alert_inside: bool = False

    def alerts(self, value: float) -> bool:
        inside = self.start <= value <= self.end
        return inside if self.alert_inside else not inside


def parse_range(text: str) -> Range:
    """`10` is 0..10, `10:` is 10..inf, `~:10` is -inf..10, `@10:20` alerts inside 10..20."""
    body = text.strip()
    alert_inside = body.startswith("@")
    if alert_inside:
        body = body[1:]
    if not body:
        raise ValueError(f"empty range {text!r}")
    start_text, colon, end_text = body.partition(":")
    if not colon:
        start_text, end_text = "0", body
    if start_text == "~":
        start = -math.inf
    else:
        parsed_start = _number(start_text or "0")
        if parsed_start is None:
            raise ValueError(f"bad range start {start_text!r} in {text!r}")
        start = parsed_start
    if end_text == "":
        end = math.inf
    else:
        parsed_end = _number(end_text)
        if parsed_end is None:
            raise ValueError(f"bad range end {end_text!r} in {text!r}")
        end = parsed_end
    if start > end:
        raise ValueError(f"range {text!r} starts after it ends")
    return Range(start=start, end=end, alert_inside=alert_inside)


@dataclass(frozen=True, slots=True)
class PerfValue:
    """One performance data item as the plugin wrote it (value and unit unscaled)."""

    label: str
    value: float
    unit: str = ""
    warn: Range | None = None
    crit: Range | None = None
    min: float | None = None
    max: float | None = None

    @property
    def base_unit(self) -> str:
        """"B" for sizes, "s" for times, else the unit as written ("%", "c", "" or another)."""
        scale = UNIT_SCALES.get(self.unit)
        return scale[1] if scale else self.unit

    @property
    def base_value(self) -> float:
        """The value in bytes for a size, in seconds for a time; else as written."""
        scale = UNIT_SCALES.get(self.unit)
        return self.value * scale[0] if scale else self.value


@dataclass(frozen=True, slots=True)
class PluginOutput:
    summary: str
    # The lines after the first, without their performance data.
    long_text: str
    perfdata: tuple[PerfValue, ...]
    # What could not be read, one reason each (a label, a value, a range).
    notes: tuple[str, ...]


def _tokens(text: str) -> list[tuple[str | None, str, str]]:
    """Split perfdata into (label, rest, raw) tokens; label None means an unreadable token."""
    tokens: list[tuple[str | None, str, str]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        begin = i
        label: str | None
        if text[i] == "'":
            # A quoted label: '' inside stands for one quote.
            parts: list[str] = []
            i += 1
            closed = False
            while i < n:
                if text[i] == "'":
                    if i + 1 < n and text[i + 1] == "'":
                        parts.append("'")
                        i += 2
                        continue
                    i += 1
                    closed = True
                    break
                parts.append(text[i])
                i += 1
            label = "".join(parts) if closed and i < n and text[i] == "=" else None
            if not closed:
                # An unbalanced quote would swallow every item after it: give up on this word.
                i = begin + 1
        else:
            while i < n and text[i] != "=" and not text[i].isspace():
                i += 1
            label = text[begin:i] if i < n and text[i] == "=" else None
        if label is None:
            # Unreadable: skip to the next blank, and go on with what follows.
            while i < n and not text[i].isspace():
                i += 1
            tokens.append((None, "", text[begin:i]))
            continue
        i += 1  # the "="
        value_begin = i
        while i < n and not text[i].isspace():
            i += 1
        tokens.append((label, text[value_begin:i], text[begin:i]))
    return tokens


def _shorten(raw: str, max_chars: int = 80) -> str:
    return raw if len(raw) <= max_chars else raw[: max_chars - 1] + "…"


def _parse_item(label: str, rest: str) -> tuple[PerfValue | None, list[str]]:
    notes: list[str] = []
    label = label.strip()
    if not label:
        return None, [f"perfdata {_shorten('=' + rest)!r}: empty label"]
    label = label[:LABEL_MAX_CHARS]
    fields = rest.split(";")
    # Some plugins end every item with ";" (check_load: `load1=0.280;100.000;200.000;0;`).
    while len(fields) > 5 and fields[-1] == "":
        fields.pop()
    if len(fields) > 5:
        return None, [f"perfdata {label!r}: more than 5 fields in {_shorten(rest)!r}"]
    fields += [""] * (5 - len(fields))
    value_text, warn_text, crit_text, min_text, max_text = fields
    if value_text == "U":
        return None, [f"perfdata {label!r}: value undetermined (U)"]
    match = _VALUE_RE.match(value_text)
    value = _number(match["number"]) if match else None
    if match is None or value is None:
        return None, [f"perfdata {label!r}: bad value {_shorten(value_text)!r}"]
    thresholds: list[Range | None] = []
    for kind, text in (("warn", warn_text), ("crit", crit_text)):
        if text == "":
            thresholds.append(None)
            continue
        try:
            thresholds.append(parse_range(text))
        except ValueError as exc:
            notes.append(f"perfdata {label!r}: {kind} ignored: {exc}")
            thresholds.append(None)
    bounds: list[float | None] = []
    for kind, text in (("min", min_text), ("max", max_text)):
        bound = _number(text) if text else None
        if text and bound is None:
            notes.append(f"perfdata {label!r}: {kind} ignored: bad number {_shorten(text)!r}")
        bounds.append(bound)
    return PerfValue(
        label=label, value=value, unit=match["unit"], warn=thresholds[0], crit=thresholds[1],
        min=bounds[0], max=bounds[1],
    ), notes


def parse_perfdata(text: str) -> tuple[list[PerfValue], list[str]]:
    """The items of a perfdata string, and a note for each one skipped or partly read."""
    values: list[PerfValue] = []
    notes: list[str] = []
    for label, rest, raw in _tokens(text):
        if label is None:
            notes.append(f"perfdata {_shorten(raw)!r}: not label=value")
            continue
        value, item_notes = _parse_item(label, rest)
        notes.extend(item_notes)
        if value is not None:
            values.append(value)
    return values, notes


def parse_plugin_output(text: str) -> PluginOutput:
    """Split a plugin's stdout into summary, long text and perfdata (first line and after the
    first `|` of the long text, which runs to the end)."""
    lines = text.splitlines()
    first = lines[0] if lines else ""
    summary, bar, perf_text = first.partition("|")
    perf_chunks = [perf_text] if bar else []
    long_lines: list[str] = []
    in_perfdata = False
    for line in lines[1:]:
        if in_perfdata:
            perf_chunks.append(line)
            continue
        text_part, bar, perf_text = line.partition("|")
        if bar:
            if text_part.strip():
                long_lines.append(text_part.rstrip())
            perf_chunks.append(perf_text)
            in_perfdata = True
        else:
            long_lines.append(line)
    perfdata, notes = parse_perfdata(" ".join(perf_chunks))
    return PluginOutput(
        summary=summary.strip(),
        long_text="\n".join(long_lines).strip("\n"),
        perfdata=tuple(perfdata),
        notes=tuple(notes),
    )
