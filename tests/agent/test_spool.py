from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.spool import Spool, SpoolEntry


def result(n: int) -> SpoolEntry:
    return SpoolEntry(is_job_run=False, payload=f"result-{n}".encode())


def job_run(n: int) -> SpoolEntry:
    return SpoolEntry(is_job_run=True, payload=f"job-{n}".encode())


def open_spool(tmp_path: Path, max_items: int = 1000, max_bytes: int = 1 << 20) -> Spool:
    return Spool(tmp_path / "spool.sqlite3", max_items=max_items, max_bytes=max_bytes)


def payloads(spool: Spool) -> list[bytes]:
    return [p for _, p in spool.read_after(0, 10_000)]


def test_append_assigns_strictly_increasing_seqs_starting_at_one(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    assert spool.append([result(1), result(2)]) == [1, 2]
    assert spool.append([job_run(3)]) == [3]
    assert spool.next_seq == 4
    assert spool.depth == 3
    assert spool.read_after(1, 10) == [(2, b"result-2"), (3, b"job-3")]
    assert spool.read_after(0, 2) == [(1, b"result-1"), (2, b"result-2")]


def test_items_and_counters_survive_closing_and_reopening(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.append([result(n) for n in range(5)])
    spool.ack(2)
    spool.close()

    reopened = open_spool(tmp_path)
    assert reopened.read_after(0, 10) == [(3, b"result-2"), (4, b"result-3"), (5, b"result-4")]
    assert reopened.last_acked_seq == 2
    assert reopened.next_seq == 6
    assert reopened.depth == 3
    assert reopened.append([result(9)]) == [6]


def test_numbering_continues_after_everything_was_acked_and_the_spool_reopened(
    tmp_path: Path,
) -> None:
    spool = open_spool(tmp_path)
    spool.append([result(1), result(2)])
    spool.ack(2)
    spool.close()
    assert open_spool(tmp_path).append([result(3)]) == [3]


def test_ack_deletes_only_up_to_the_acked_seq(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.append([result(n) for n in range(1, 6)])
    assert spool.ack(3) == 3
    assert [s for s, _ in spool.read_after(0, 10)] == [4, 5]
    assert spool.depth == 2
    assert spool.last_acked_seq == 3
    # An older ack (a replayed message) changes nothing and never moves last_acked_seq back.
    assert spool.ack(1) == 0
    assert spool.last_acked_seq == 3


def test_a_full_spool_drops_the_oldest_results_and_keeps_job_runs(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_items=4)
    spool.append([job_run(1), result(2), result(3), job_run(4)])
    with capture_logs() as logs:
        spool.append([result(5), result(6)])
    assert payloads(spool) == [b"job-1", b"job-4", b"result-5", b"result-6"]
    assert spool.dropped == 2
    assert spool.depth == 4
    [event] = [e for e in logs if e["event"] == "spool.dropped"]
    assert event["kind"] == "result"
    assert event["count"] == 2


def test_only_when_nothing_but_job_runs_remain_is_the_oldest_job_run_dropped(
    tmp_path: Path,
) -> None:
    spool = open_spool(tmp_path, max_items=3)
    spool.append([job_run(1), job_run(2), result(3)])
    spool.append([job_run(4), job_run(5)])
    # The result goes first, then the oldest job run.
    assert payloads(spool) == [b"job-2", b"job-4", b"job-5"]
    assert spool.dropped == 2


def test_the_byte_bound_drops_like_the_item_bound(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_items=1000, max_bytes=100)
    big_result = SpoolEntry(False, b"r" * 40)
    big_job = SpoolEntry(True, b"j" * 40)
    spool.append([big_result, big_job])
    spool.append([SpoolEntry(False, b"n" * 40)])
    assert payloads(spool) == [b"j" * 40, b"n" * 40]
    assert spool.size_bytes == 80
    assert spool.dropped == 1


def test_the_dropped_count_is_persisted(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_items=2)
    spool.append([result(n) for n in range(5)])
    assert spool.dropped == 3
    spool.close()
    assert open_spool(tmp_path, max_items=2).dropped == 3


def test_advancing_past_a_collector_ack_renumbers_the_waiting_items_above_it(
    tmp_path: Path,
) -> None:
    # A reset spool: the collector has committed up to 100 from this agent's earlier life.
    spool = open_spool(tmp_path)
    spool.append([result(1), job_run(2)])
    spool.advance_seq_to(100)
    assert spool.read_after(100, 10) == [(101, b"result-1"), (102, b"job-2")]
    assert spool.next_seq == 103
    assert spool.last_acked_seq == 100
    assert spool.append([result(3)]) == [103]
    spool.close()
    reopened = open_spool(tmp_path)
    assert reopened.next_seq == 104
    assert reopened.last_acked_seq == 100


def test_advancing_an_empty_spool_continues_numbering_above_the_ack(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.advance_seq_to(41)
    assert spool.append([result(1)]) == [42]


def test_advancing_to_a_seq_the_spool_already_passed_changes_nothing(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.append([result(1), result(2)])
    spool.advance_seq_to(1)
    assert spool.next_seq == 3
    assert [s for s, _ in spool.read_after(0, 10)] == [1, 2]


def test_bounds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        open_spool(tmp_path, max_items=0)
