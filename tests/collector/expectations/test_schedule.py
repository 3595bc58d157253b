"""Schedules: the slots of a cron expression in the customer's zone, through cronsim.

The cases come from /work/shared/material/cron_cases.json (read in place; skipped with a reason
when absent): the test expectations of three cron libraries. Daybreak follows cronsim (Debian
cron's rule), so every cronsim case must pass. The robfig/cron and croniter cases are all run
too, each as a Daybreak customer would write it: a 6-field robfig spec whose seconds field is
`0` becomes the 5-field schedule it means (`0 0 2 * * ?` is `0 2 * * *`), `?` becomes `*`.
Most agree. These differ, on purpose, and the test asserts that they still do:

- robfig `0 0 0 */5 Apr,Aug,Oct Mon`: robfig ORs day-of-month and day-of-week unless a field is
  a bare `*`; Debian cron (and cronsim) treat a field *starting* with `*` as a star, so `*/5`
  AND Monday: 2012-08-06, not robfig's 2012-08-01.
- robfig `0 0 2 * * ?` (America/New_York, 2012-03-11): 02:00 does not exist that night. robfig
  skips the run (next is 03-12 02:00); Debian runs it right after the gap, at 03:00 EDT.
- robfig `0 30 2 11 Mar ?` from 2012-03-11 00:00 EST: the same gap; robfig's next is a year
  later (2013-03-11 02:30), Debian's is 2012-03-11 03:00 EDT.
- robfig `0 0 1 * * ?` from 01:00 EDT on 2012-11-04: 01:00 happens twice. robfig runs the job in
  both copies (01:00-05:00); Debian runs a job at a fixed time once, so the next is 11-05 01:00.
- robfig `0 30 1 04 Nov ?` from 01:45 EDT: robfig runs 01:30 again in the second copy
  (01:30-05:00); Debian ran it in the first copy, so its next is 2013-11-04.
- robfig `0 0 * * * ?` across 2012-11-04 01:00 is hourly, and cronsim too fires in both copies
  of the repeated hour: they agree (listed here because the README warns about the night).

croniter cases start from pytz `localize(is_dst=False)`: an ambiguous wall time is the second,
standard-time instance (fold=1), which is how they are read here; they all agree with cronsim.
Cases whose expected values carry an offset are compared as instants (robfig's Sao Paulo cases
write the answer in another zone's offset); `expected_is_local_wall_time` cases as wall times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from collector.expectations.schedule import (
    check_schedule,
    clock_time,
    fire_times,
    local_label,
    slots_between,
)

CASES_FILE = Path("/work/shared/material/cron_cases.json")
BERLIN = ZoneInfo("Europe/Berlin")

# (library, expr, start) in cron_cases.json -> why Daybreak's answer differs from that library's.
EXPECTED_TO_DIFFER = {
    ("robfig/cron v3", "0 0 0 */5 Apr,Aug,Oct Mon", "Mon Jul 9 23:35 2012"):
        "Debian star rule: a day field starting with '*' ANDs with day-of-week",
    ("robfig/cron v3", "0 0 2 * * ?", "2012-03-11T00:00:00-0500"):
        "spring forward: Debian runs a job of the skipped hour right after the gap",
    ("robfig/cron v3", "0 30 2 11 Mar ?", "2012-03-11T00:00:00-0500"):
        "spring forward: robfig skips to next year's 2013-03-11, Debian runs at 03:00 EDT",
    ("robfig/cron v3", "0 0 1 * * ?", "2012-11-04T01:00:00-0400"):
        "fall back: Debian runs a fixed-time job once in the repeated hour",
    ("robfig/cron v3", "0 30 1 04 Nov ?", "2012-11-04T01:45:00-0400"):
        "fall back: the 01:30 of the first copy is past; Debian does not run it again",
}


def _load() -> list[dict[str, Any]]:
    if not CASES_FILE.exists():
        return []
    cases: list[dict[str, Any]] = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    return cases


ALL_CASES = _load()
needs_cases = pytest.mark.skipif(not ALL_CASES, reason=f"{CASES_FILE} is absent")


@dataclass(frozen=True)
class Run:
    got: list[datetime]
    expected: list[datetime]
    as_wall_time: bool


def _robfig_time(text: str) -> datetime:
    for fmt in ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M %Y"):
        try:
            return datetime.strptime(text, fmt)  # noqa: DTZ007 - Go time.Local: naive wall time
        except ValueError:
            continue
    return datetime.fromisoformat(text)


def _start(case: dict[str, Any]) -> datetime:
    text = case["start"]
    if case["library"].startswith("robfig") and case["tz"] is None:
        return _robfig_time(text)
    start = datetime.fromisoformat(text)
    if case["tz"] is None:
        return start
    zone = ZoneInfo(case["tz"])
    if start.tzinfo is not None:
        return start.astimezone(zone)
    fold = case.get("start_fold")
    if fold is None:
        # pytz localize(is_dst=False) picks the standard-time (second) copy of an ambiguous time.
        fold = 1 if case["library"].startswith("croniter") else 0
    return start.replace(tzinfo=zone, fold=fold)


def _expected(case: dict[str, Any], text: str) -> datetime:
    if case["library"].startswith("robfig") and case["tz"] is None:
        return _robfig_time(text)
    return datetime.fromisoformat(text)


def _as_daybreak_writes_it(case: dict[str, Any]) -> str:
    expr = str(case["expr"]).replace("?", "*")
    fields = expr.split()
    if not case["library"].startswith("cronsim") and len(fields) == 6 and fields[0] == "0":
        return " ".join(fields[1:])
    return expr


def _run(case: dict[str, Any]) -> Run:
    expected = [_expected(case, text) for text in case["expected_next"]]
    got: list[datetime] = []
    for fired in fire_times(_as_daybreak_writes_it(case), _start(case)):
        got.append(fired)
        if len(got) >= max(len(expected), 1):
            break
    wall = bool(case.get("expected_is_local_wall_time")) or any(
        e.tzinfo is None for e in expected)
    return Run(got[: len(expected)] if expected else got, expected, wall)


def _agrees(run: Run) -> bool:
    if len(run.got) != len(run.expected):
        return False
    for got, expected in zip(run.got, run.expected, strict=True):
        if run.as_wall_time:
            if got.replace(tzinfo=None) != expected.replace(tzinfo=None):
                return False
        elif got.isoformat() != expected.isoformat() and got != expected:
            return False
    return True


def _case_id(case: dict[str, Any]) -> str:
    return f"{case['library'].split()[0]}:{case['expr']}@{case['tz']}:{case['start']}"


def _key(case: dict[str, Any]) -> tuple[str, str, str]:
    return (case["library"], case["expr"], case["start"])


CRONSIM = [c for c in ALL_CASES if c["library"] == "cronsim"]
OTHERS = [c for c in ALL_CASES if c["library"] != "cronsim"]


@needs_cases
def test_the_material_holds_the_three_libraries() -> None:
    assert len(CRONSIM) == 47
    assert {c["library"].split()[0] for c in OTHERS} == {"robfig/cron", "croniter"}


@needs_cases
@pytest.mark.parametrize("case", CRONSIM, ids=_case_id)
def test_every_cronsim_case_gives_cronsims_answer(case: dict[str, Any]) -> None:
    run = _run(case)
    # cronsim's own cases compare ISO strings: the offset must match too, not only the instant.
    assert [g.isoformat() for g in run.got] == case["expected_next"]


@needs_cases
@pytest.mark.parametrize("case", OTHERS, ids=_case_id)
def test_the_other_libraries_agree_except_where_debian_cron_differs(
    case: dict[str, Any],
) -> None:
    run = _run(case)
    reason = EXPECTED_TO_DIFFER.get(_key(case))
    if reason is None:
        assert _agrees(run), f"{run.got} != {run.expected}"
    else:
        assert not _agrees(run), f"expected to differ ({reason}), but both say {run.got}"


@needs_cases
def test_every_listed_difference_names_a_real_case() -> None:
    assert set(EXPECTED_TO_DIFFER) <= {_key(c) for c in OTHERS}


def test_a_job_in_the_skipped_spring_hour_runs_right_after_the_gap() -> None:
    # Europe/Berlin 2025-03-30: 02:00 CET becomes 03:00 CEST.
    slots = slots_between("30 2 * * *", BERLIN, datetime(2025, 3, 29, 12, tzinfo=UTC),
                          datetime(2025, 3, 31, 12, tzinfo=UTC))
    assert [local_label(s, BERLIN) for s in slots] == [
        "2025-03-30T03:00+02:00", "2025-03-31T02:30+02:00",
    ]


def test_a_job_in_the_repeated_autumn_hour_runs_once() -> None:
    # Europe/Berlin 2025-10-26: 03:00 CEST goes back to 02:00 CET.
    slots = slots_between("30 2 * * *", BERLIN, datetime(2025, 10, 25, 12, tzinfo=UTC),
                          datetime(2025, 10, 27, 12, tzinfo=UTC))
    assert [local_label(s, BERLIN) for s in slots] == [
        "2025-10-26T02:30+02:00", "2025-10-27T02:30+01:00",
    ]
    assert slots[0] == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)


def test_an_every_fifteen_minutes_job_runs_in_both_copies_of_the_repeated_hour() -> None:
    slots = slots_between("*/15 * * * *", BERLIN, datetime(2025, 10, 25, 23, 59, tzinfo=UTC),
                          datetime(2025, 10, 26, 1, 59, tzinfo=UTC))
    assert len(slots) == 8  # two real hours, four runs each
    assert len({s.astimezone(BERLIN).strftime("%H:%M") for s in slots}) == 4


def test_slots_are_utc_instants_between_the_bounds() -> None:
    slots = slots_between("0 2 * * *", BERLIN, datetime(2025, 3, 3, 1, 0, tzinfo=UTC),
                          datetime(2025, 3, 4, 1, 0, tzinfo=UTC))
    assert slots == [datetime(2025, 3, 4, 1, 0, tzinfo=UTC)]  # the end is included
    assert slots[0].tzinfo is UTC


def test_labels_and_clock_times_are_the_customers() -> None:
    slot = datetime(2025, 3, 4, 1, 0, tzinfo=UTC)
    assert local_label(slot, BERLIN) == "2025-03-04T02:00+01:00"
    assert clock_time(datetime(2025, 3, 4, 5, 30, tzinfo=UTC), BERLIN) == "06:30"


@pytest.mark.parametrize(("expr", "message"), [
    ("61 2 * * *", "Bad minute"),
    ("0 25 * * *", "Bad hour"),
    ("0 2 * *", "5 fields"),
    ("0 0 2 * * *", "5 fields"),
])
def test_a_bad_schedule_is_refused_naming_the_field(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_schedule(expr)


def test_a_schedule_that_can_never_fire_has_no_slots() -> None:
    assert slots_between("0 0 30 2 *", BERLIN, datetime(2025, 1, 1, tzinfo=UTC),
                         datetime(2026, 1, 1, tzinfo=UTC)) == []
