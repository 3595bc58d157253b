"""The tailer reads each complete line once, through rotation, truncation, garbage and restarts."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from probes.joblog.offsets import OffsetStore
from probes.joblog.tailer import CUT_MARKER, FilePosition, Tailer, TailerSettings


class Reader:
    """A tailer plus its committed positions, as the probe uses it."""

    def __init__(self, globs: list[str], **kwargs: int) -> None:
        self.tailer = Tailer(TailerSettings(globs=tuple(globs), **kwargs))  # type: ignore[arg-type]
        self.positions: dict[str, FilePosition] = {}
        self.problems: list[str] = []

    def poll(self, *, commit: bool = True) -> list[bytes]:
        run = self.tailer.start_run(self.positions)
        lines: list[bytes] = []
        for block in run.blocks():
            assert block.data.endswith(b"\n")
            lines.extend(block.data[:-1].split(b"\n"))
        self.problems = run.problems
        if commit:
            self.positions = run.positions
        return lines


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_appended_lines_are_read_once_and_a_partial_line_waits(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    reader = Reader([str(tmp_path / "*.log")])
    append(log, b"one\ntwo\nthr")
    assert reader.poll() == [b"one", b"two"]
    assert reader.poll() == []
    append(log, b"ee\nfour\n")
    assert reader.poll() == [b"three", b"four"]


def test_rename_rotation_finishes_the_old_file_before_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    reader = Reader([str(log)])
    append(log, b"a1\n")
    assert reader.poll() == [b"a1"]
    append(log, b"a2\na3")  # the last line is unterminated when the file is rotated
    log.rename(tmp_path / "app.log.1")
    append(log, b"b1\n")
    assert reader.poll() == [b"a2", b"b1"]
    # Once the rotated file stops growing, its unterminated last line counts as whole.
    assert reader.poll() == [b"a3"]
    append(log, b"b2\n")
    assert reader.poll() == [b"b2"]


def test_copytruncate_rotation_reads_the_lost_tail_from_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    reader = Reader([str(log)])
    append(log, b"a1\n")
    assert reader.poll() == [b"a1"]
    append(log, b"a2\n")
    shutil.copyfile(log, tmp_path / "app.log.1")
    with log.open("r+b") as f:
        f.truncate(0)
    append(log, b"b1\n")
    assert reader.poll() == [b"a2", b"b1"]
    assert reader.poll() == []


def test_copytruncate_copy_in_the_glob_is_not_read_again(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    reader = Reader([str(tmp_path / "app.log*")])
    append(log, b"a1\n")
    assert reader.poll() == [b"a1"]
    append(log, b"a2\n")
    shutil.copyfile(log, tmp_path / "app.log.1")
    with log.open("r+b") as f:
        f.truncate(0)
    assert reader.poll() == [b"a2"]
    append(log, b"b1\n")
    assert reader.poll() == [b"b1"]


def test_truncation_starts_over_even_when_the_file_regrows_past_the_old_offset(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    reader = Reader([str(log)])
    append(log, b"BANNER\nold line\n")
    assert reader.poll() == [b"BANNER", b"old line"]
    with log.open("r+b") as f:
        f.truncate(0)
    append(log, b"BANNER\nnew line that is longer\n")  # same head, longer than before
    assert reader.poll() == [b"BANNER", b"new line that is longer"]


def test_deleted_and_recreated_file_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    reader = Reader([str(log)])
    append(log, b"a1\n")
    assert reader.poll() == [b"a1"]
    log.unlink()
    assert reader.poll() == []
    append(log, b"b1\n")
    assert reader.poll() == [b"b1"]


def test_two_files_with_the_same_head_are_two_files(tmp_path: Path) -> None:
    append(tmp_path / "a.log", b"BANNER\nfrom a\n")
    append(tmp_path / "b.log", b"BANNER\nfrom b\n")
    reader = Reader([str(tmp_path / "*.log")])
    assert sorted(reader.poll()) == [b"BANNER", b"BANNER", b"from a", b"from b"]
    assert reader.poll() == []


def test_compressed_archives_are_skipped(tmp_path: Path) -> None:
    append(tmp_path / "app.log.1.gz", b"\x1f\x8b\x08binary\n")
    append(tmp_path / "app.log", b"line\n")
    assert Reader([str(tmp_path / "app.log*")]).poll() == [b"line"]


def test_a_five_megabyte_line_is_cut_not_dropped_and_the_next_line_survives(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    append(log, b"before\n" + b"x" * (5 * 1024 * 1024))
    reader = Reader([str(log)], max_line_bytes=4096)
    lines = reader.poll()
    assert lines == [b"before", b"x" * 4096 + CUT_MARKER]
    append(log, b"y" * 1000 + b"\nafter\n")
    assert reader.poll() == [b"after"]


def test_invalid_utf8_and_nul_bytes_come_through_untouched(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, b"bad \xff\xfe utf8\nnul \x00 inside\n")
    assert Reader([str(log)]).poll() == [b"bad \xff\xfe utf8", b"nul \x00 inside"]


def test_a_binary_file_without_newlines_yields_one_cut_line(tmp_path: Path) -> None:
    blob = tmp_path / "core.log"
    append(blob, bytes(range(256)).replace(b"\n", b"") * 4000)
    lines = Reader([str(blob)], max_line_bytes=2048).poll()
    assert len(lines) == 1
    assert lines[0].endswith(CUT_MARKER)


def test_a_glob_of_thousands_of_files_reads_the_newest_and_says_so(tmp_path: Path) -> None:
    for i in range(1200):
        path = tmp_path / f"job{i:04d}.log"
        append(path, f"line {i}\n".encode())
        os.utime(path, ns=(i * 10**9, i * 10**9))
    reader = Reader([str(tmp_path / "*.log")], max_files=1000)
    lines = reader.poll()
    assert len(lines) == 1000
    assert b"line 1199" in lines
    assert b"line 0" not in lines
    assert any("max_files" in p for p in reader.problems)


def test_positions_survive_a_restart_through_the_offset_store(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, b"a1\na2\n")
    first = Reader([str(log)])
    assert first.poll() == [b"a1", b"a2"]
    OffsetStore(tmp_path / "state", "p").save(first.positions, {"x": 1})
    append(log, b"a3\n")
    second = Reader([str(log)])
    second.positions, jobs = OffsetStore(tmp_path / "state", "p").load()
    assert jobs == {"x": 1}
    assert second.poll() == [b"a3"]


def test_lines_of_an_uncommitted_run_are_read_again(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, b"a1\n")
    reader = Reader([str(log)])
    assert reader.poll(commit=False) == [b"a1"]
    assert reader.poll() == [b"a1"]
    assert reader.poll() == []


def test_a_byte_budget_splits_the_reading_across_runs(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, b"".join(f"line {i}\n".encode() for i in range(1000)))
    reader = Reader([str(log)], max_bytes_per_run=1000, max_line_bytes=1024)
    seen: list[bytes] = []
    for _ in range(20):
        seen += reader.poll()
    assert seen == [f"line {i}".encode() for i in range(1000)]


# --------------------------------------------------------------------------- property test

# What happens to a log: the steps of the property tests here and of the SSH form's.
LOG_HISTORY_STEPS = (
    st.tuples(st.just("append"), st.integers(1, 4)),
    st.tuples(st.just("partial"), st.integers(1, 3)),
    st.tuples(st.just("poll"), st.booleans()),
    st.tuples(st.just("rename"), st.booleans()),
    st.tuples(st.just("copytruncate"), st.booleans()),
    st.tuples(st.just("truncate"), st.booleans()),
    st.tuples(st.just("restart"), st.booleans()),
)
OPERATIONS = st.lists(st.one_of(*LOG_HISTORY_STEPS), max_size=25)


@settings(max_examples=120, deadline=None)
@given(operations=OPERATIONS, glob_covers_rotated=st.booleans())
def test_any_history_of_writes_and_rotations_yields_every_line_exactly_once_in_order(
    operations: list[tuple[str, object]], glob_covers_rotated: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / "app.log"
        pattern = str(folder / ("app.log*" if glob_covers_rotated else "app.log"))
        state = OffsetStore(folder / "state", "prop")
        reader = Reader([pattern], max_line_bytes=1024)
        written: list[bytes] = []
        read: list[bytes] = []
        counter = 0
        rotations = 0

        polled_since_created = False
        seen_nonempty = False

        def poll() -> None:
            nonlocal polled_since_created
            # Only a run that found the file has seen it; a copy is recognised by the bytes seen.
            nonlocal seen_nonempty
            polled_since_created = log.exists()
            seen_nonempty = log.exists() and log.stat().st_size > 0
            read.extend(reader.poll())
            state.save(reader.positions, {})

        def before_copytruncate() -> None:
            # A copy is told by the head the reader saw: a file seen empty has none.
            if not glob_covers_rotated and not seen_nonempty:
                poll()
            before_rotation()

        def before_rotation() -> None:
            # Lines written since the last rotation and rotated out of the glob before any run
            # saw the file cannot be known (one rotation between runs is recovered); with a glob
            # that covers rotated names they are simply in another file.
            if not glob_covers_rotated and not polled_since_created:
                poll()

        for op, arg in operations:
            if op == "append":
                assert isinstance(arg, int)
                chunk = b""
                for _ in range(arg):
                    counter += 1
                    # Lines start with their number: a file truncated and rewritten past what was
                    # seen is told apart by its first bytes (see docs: identical heads limit).
                    line = f"{counter:05d} line " + "x" * (counter % 7)
                    written.append(line.encode())
                    chunk += line.encode() + b"\n"
                append(log, chunk)
            elif op == "partial":
                # Write a line in pieces: the reader must not see it until its newline arrives.
                counter += 1
                piece = f"{counter:05d} partial line".encode()
                written.append(piece)
                cut = len(piece) // 2
                append(log, piece[:cut])
                poll()
                append(log, piece[cut:] + b"\n")
            elif op == "poll":
                poll()
            elif op == "rename" and log.exists():
                before_rotation()
                rotations += 1
                log.rename(folder / f"app.log.{rotations}")
                log.touch()
                polled_since_created = False
            elif op == "copytruncate" and log.exists():
                before_copytruncate()
                rotations += 1
                shutil.copyfile(log, folder / f"app.log.{rotations}")
                with log.open("r+b") as f:
                    f.truncate(0)
                polled_since_created = False
            elif op == "truncate" and log.exists():
                # Plain truncation destroys what was not read yet: the writer lets us read first.
                poll()
                with log.open("r+b") as f:
                    f.truncate(0)
                polled_since_created = False
            elif op == "restart":
                reader = Reader([pattern], max_line_bytes=1024)
                reader.positions, _ = state.load()
        poll()
        poll()  # rotated files are flushed once they stop growing
        assert read == written
