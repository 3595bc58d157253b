"""The one line of a failed run's excerpt that a ticket's summary shows."""

from __future__ import annotations

from collector.expectations.base import failure_line


def test_the_error_beats_the_closing_line_that_only_says_the_exit_code() -> None:
    excerpt = ("02:00:04 ERROR nightly-export upload failed\n"
               "Traceback (most recent call last):\n"
               '  File "/opt/etl/export.py", line 88, in upload\n'
               "ConnectionResetError: [Errno 104] Connection reset by peer\n"
               "02:00:05 END nightly-export run=2 exit=3\n")
    assert failure_line(excerpt) == "ConnectionResetError: [Errno 104] Connection reset by peer"


def test_without_an_error_word_the_last_line_is_shown() -> None:
    assert failure_line("loading 12 files\nrc=3\n\n") == "rc=3"


def test_an_empty_excerpt_has_no_line() -> None:
    assert failure_line("\n  \n") == ""
