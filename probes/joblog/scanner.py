"""Finds the lines of a block that any job pattern may match, without a Python loop over lines.

The patterns of all jobs are scanned for together over a whole read (256 KiB), and only the few
lines they hit go on to `JobRules.classify`, where Python's `re` decides and reads the groups.
So an engine here only has to find every line that has a match; a line it offers in excess
(a match running over a newline) is simply not classified.

Three engines, the fastest one that is installed and takes the patterns:
- Hyperscan (the `hyperscan` package): a multi-pattern matcher that searches for the literals
  the patterns must contain with SIMD and runs automata only around the hits, grep's trick
  taken further: 4 GB/s on the benchmark's log with ten patterns, faster than `grep -cE`.
- google-re2: one linear-time DFA over an alternation of the patterns, about 0.6 GB/s whatever
  they are. Hyperscan refuses some patterns re2 takes (one that can match an empty string).
- Python's `re` over the same alternation, 3.5 times slower again; always there.

Hyperscan and re2 are loaded at the first block of FAST_SCAN_MIN_BLOCK_BYTES or more, a backlog:
an agent that only follows its logs (a few lines a second, `re` is quicker on those) never pays
their resident memory, which the agent's 55 MiB budget could not spare.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import structlog

log = structlog.get_logger(__name__)

NAMED_GROUP = re.compile(r"\(\?P<(\w+)>")
_GLOBAL_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")
# In a line pattern \A and \Z are the line's edges (classify searches one line at a time); in a
# block they would be the block's. Escaped backslashes are matched first so `\\A` stays.
_STRING_EDGES = re.compile(r"\\\\|\\A|\\Z")
_LINE_EDGES = {"\\A": "^", "\\Z": "$"}

FAST_SCAN_MIN_BLOCK_BYTES = 32 * 1024
_NEWLINE = ord("\n")
FAST_ENGINES = ("hyperscan", "re2")

# Where the first match in data[pos:endpos] lies (any position inside the line that holds it,
# as if data ended at endpos); -1: none.
MatchAt = Callable[[bytes | bytearray, int, int], int]


def scoped_flags(pattern: str) -> str:
    """`(?i)abc` -> `(?i:abc)`, so a pattern keeps its flags inside an alternation."""
    found = _GLOBAL_FLAGS.match(pattern)
    if found is None:
        return pattern
    return f"(?{found.group(1)}:{pattern[found.end():]})"


def block_pattern(pattern: str) -> str:
    """A line pattern as it is searched for in a block: flags scoped, groups not capturing,
    the string edges made line edges."""
    bare = NAMED_GROUP.sub("(?:", scoped_flags(pattern))
    return _STRING_EDGES.sub(lambda m: _LINE_EDGES.get(m[0], m[0]), bare)


class LineScanner:
    """Yields the (start, end) of each line of buffer[start:end] that any pattern may match."""

    def __init__(self, patterns: Sequence[str], *, engines: Sequence[str] = FAST_ENGINES) -> None:
        self._patterns = [block_pattern(p) for p in patterns]
        self._alternation = "(?m)" + "|".join(f"(?:{p})" for p in self._patterns)
        self._match_re: MatchAt | None = None
        if patterns:
            self._match_re = _search_start(re.compile(self._alternation.encode("utf-8")).search)
        self._match_fast: MatchAt | None = None
        self._engines_to_try = tuple(engines) if patterns else ()
        self.engine = "re"

    def _load_fast_engine(self) -> None:
        engines, self._engines_to_try = self._engines_to_try, ()  # one attempt each
        for name in engines:
            try:
                self._match_fast = _LOADERS[name](self._patterns, self._alternation)
            except ImportError:
                continue
            except Exception as exc:  # noqa: BLE001 - an engine refusing a pattern: the next one
                log.info("joblog.scan_engine_unusable", engine=name, error=str(exc))
                continue
            self.engine = name
            return

    def candidate_lines(
        self, data: bytes | bytearray, start: int = 0, end: int | None = None
    ) -> Iterator[tuple[int, int]]:
        """Positions are in `data`; buffer[start:end] must be whole lines."""
        size = len(data) if end is None else end
        match_at = self._match_re
        if size - start >= FAST_SCAN_MIN_BLOCK_BYTES:
            if self._engines_to_try:
                self._load_fast_engine()
            match_at = self._match_fast or match_at
        if match_at is None:
            return
        pos = start
        while pos < size:
            hit = match_at(data, pos, size)
            if hit < 0 or (hit == size and data[hit - 1] == _NEWLINE):
                return  # none, or an empty match (`^`) after the last line's newline
            line_start = max(start, data.rfind(b"\n", start, hit) + 1)
            line_end = data.find(b"\n", hit, size)
            if line_end < 0:
                line_end = size
            yield line_start, line_end
            pos = line_end + 1


def _search_start(
    search: Callable[[bytes | bytearray, int, int], re.Match[bytes] | None],
) -> MatchAt:
    def match_at(data: bytes | bytearray, pos: int, endpos: int) -> int:
        found = search(data, pos, endpos)
        return -1 if found is None else found.start()

    return match_at


def _load_hyperscan(patterns: Sequence[str], _alternation: str) -> MatchAt:
    """Each pattern is one expression of a block-mode database. Hyperscan reports matches by
    their end, in order of it, so the first report is in the first line that has a match: the
    callback stops the scan there and the next scan starts after that line (one callback per
    line, however many ends a pattern like `rc=[0-9]+` has in it).

    An expression that ends in an assertion (`$`, `\b`) may be reported a byte late, after a
    match of another that ends a byte later (Hyperscan's "unordered matches"; never more than
    one byte, tests/probes/joblog/test_scanner.py). That cannot skip a line: a match that lies
    in a line ends at the latest at the line's newline, and a report in the next line ends two
    bytes past it at the earliest."""
    hs = importlib.import_module("hyperscan")
    database = hs.Database(mode=hs.HS_MODE_BLOCK)
    database.compile(
        expressions=[p.encode("utf-8") for p in patterns],
        ids=list(range(len(patterns))),
        elements=len(patterns),
        flags=[hs.HS_FLAG_MULTILINE] * len(patterns),
    )
    scan = database.scan
    terminated = hs.ScanTerminated
    first_end = [-1]

    def on_match(_id: int, _start: int, end: int, _flags: int, _context: object) -> bool:
        first_end[0] = end
        return True  # stop: the rest of this line is of no interest

    def match_at(data: bytes | bytearray, pos: int, endpos: int) -> int:
        first_end[0] = -1
        with memoryview(data) as whole, whole[pos:endpos] as text, contextlib.suppress(terminated):
            scan(text, match_event_handler=on_match)
        if first_end[0] < 0:
            return -1
        # The match's last byte: in its line, or the newline that ends it. An empty match (`$`
        # alone) at pos has none: pos, whose line is the one it is in.
        return max(pos, pos + first_end[0] - 1)

    return match_at


def _load_re2(_patterns: Sequence[str], alternation: str) -> MatchAt:
    re2 = importlib.import_module("re2")
    options = re2.Options()
    # Latin-1: every byte is a character, as in a Python bytes pattern, so invalid UTF-8 in a
    # log line cannot hide a match.
    options.encoding = re2.Options.Encoding.LATIN1
    options.never_capture = True
    options.log_errors = False
    return _re2_start(re2, re2.compile(alternation.encode("utf-8"), options))


def _re2_start(re2: Any, compiled: Any) -> MatchAt:
    """The compiled RE2's own Match when this google-re2 exposes it: its Python search wraps
    every call in a generator and a match object (a tenth of the scan's cost on 64 KiB blocks,
    where hits are rare). Else the public search.

    Both take the tailer's bytearray without a copy. RE2 sees the bytes past endpos as context
    (`$` would not match at endpos): a view cut at endpos makes it end there, as `re` does."""
    raw = getattr(compiled, "_regexp", None)
    anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    try:
        if raw is not None and anchor is not None and raw.Match(anchor, b"x", 0, 1):
            raw_match = raw.Match

            def match_at(data: bytes | bytearray, pos: int, endpos: int) -> int:
                if endpos < len(data):
                    with memoryview(data) as whole, whole[:endpos] as text:
                        found: int = raw_match(anchor, text, pos, endpos)[0][0]
                        return found
                start: int = raw_match(anchor, data, pos, endpos)[0][0]
                return start

            return match_at
    except Exception as exc:  # noqa: BLE001 - an internal that changed: the public API works
        log.info("joblog.re2_internal_unusable", error=str(exc))
    return _search_start(compiled.search)


_LOADERS: dict[str, Callable[[Sequence[str], str], MatchAt]] = {
    "hyperscan": _load_hyperscan,
    "re2": _load_re2,
}
