"""probes/perfdata.py: plugin output split into summary, long text and performance data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.perfdata import PerfValue, Range, parse_perfdata, parse_plugin_output, parse_range

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "command"


def by_label(values: tuple[PerfValue, ...] | list[PerfValue]) -> dict[str, PerfValue]:
    return {v.label: v for v in values}


def test_a_recorded_check_disk_output_gives_one_value_per_mount_in_bytes() -> None:
    parsed = parse_plugin_output((FIXTURES / "check_disk_all.txt").read_text())
    assert parsed.summary.startswith("DISK OK - free space: /dev 12045MiB")
    assert parsed.notes == ()
    values = by_label(parsed.perfdata)
    assert list(values) == ["/dev", "/dev/shm", "/", "/sys/fs/cgroup"]
    root = values["/"]
    assert root.value == 23819452416
    assert root.unit == "B"
    assert root.base_value == 23819452416
    assert root.warn == Range(0, 243497277849)
    assert root.crit == Range(0, 257024904396)
    assert (root.min, root.max) == (0, 270552530944)


def test_times_and_sizes_are_scaled_to_seconds_and_bytes() -> None:
    parsed = parse_plugin_output((FIXTURES / "long_output.txt").read_text())
    values = by_label(parsed.perfdata)
    assert values["/data"].base_value == 80 * 1024**3
    assert values["/var"].base_value == 2048 * 1024**2
    assert values["/var"].base_unit == "B"
    assert values["uptime"].base_value == 86400
    assert values["latency"].base_value == pytest.approx(0.0012)
    assert values["latency"].base_unit == "s"
    assert values["load"].base_value == 0.5
    assert values["load"].base_unit == ""


def test_perfdata_in_the_long_output_runs_from_the_first_bar_to_the_end() -> None:
    parsed = parse_plugin_output((FIXTURES / "long_output.txt").read_text())
    assert parsed.summary == "DISK OK - free space: /data 120 GB (60%)"
    # The line that holds the second bar keeps its text; the lines after it are all perfdata.
    assert parsed.long_text == "/data: 80 GB used of 200 GB\n/var: 2 GB used of 10 GB"
    assert [v.label for v in parsed.perfdata] == ["/data", "/var", "uptime", "latency", "load"]


def test_quoted_labels_keep_spaces_and_doubled_quotes() -> None:
    parsed = parse_plugin_output((FIXTURES / "quoted_labels.txt").read_text())
    values = by_label(parsed.perfdata)
    assert set(values) == {"C:\\ used", "it's here", "Mem %"}
    assert values["C:\\ used"].base_value == 45.5 * 1024**3
    assert values["it's here"].unit == "c"
    assert values["Mem %"].warn == Range(0, 10, alert_inside=True)
    assert values["Mem %"].crit == Range(-math.inf, 95)
    assert parsed.notes == ()


def test_a_ping_style_output_has_milliseconds_and_percent() -> None:
    values = by_label(parse_plugin_output((FIXTURES / "check_ping_style.txt").read_text()).perfdata)
    assert values["rta"].base_value == pytest.approx(0.000045)
    assert values["pl"].value == 0
    assert values["pl"].unit == "%"
    assert values["pl"].max is None


def test_garbage_items_are_skipped_with_a_note_and_the_readable_ones_kept() -> None:
    parsed = parse_plugin_output((FIXTURES / "garbage_perfdata.txt").read_text())
    assert [v.label for v in parsed.perfdata] == ["good", "alsogood"]
    assert by_label(parsed.perfdata)["alsogood"].base_value == pytest.approx(0.002)
    assert len(parsed.notes) == 3
    assert any("'bad'" in note and "bad value" in note for note in parsed.notes)
    assert any("noequals" in note for note in parsed.notes)
    assert any("unterminated" in note for note in parsed.notes)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10", Range(0, 10)),
        ("10:", Range(10, math.inf)),
        ("~:10", Range(-math.inf, 10)),
        ("10:20", Range(10, 20)),
        ("@10:20", Range(10, 20, alert_inside=True)),
        ("-5:-1", Range(-5, -1)),
        ("1e3", Range(0, 1000)),
    ],
)
def test_ranges_read_as_the_guidelines_define_them(text: str, expected: Range) -> None:
    assert parse_range(text) == expected


def test_a_range_alerts_outside_unless_marked_with_an_at_sign() -> None:
    assert parse_range("10").alerts(11)
    assert parse_range("10").alerts(-1)
    assert not parse_range("10").alerts(10)
    assert parse_range("10:").alerts(9.9)
    assert not parse_range("~:10").alerts(-1e9)
    assert parse_range("@10:20").alerts(15)
    assert not parse_range("@10:20").alerts(21)


@pytest.mark.parametrize("text", ["", "abc", "20:10", "1:2:3", "@", "~", "nan", "inf:"])
def test_a_bad_range_is_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="range"):
        parse_range(text)


def test_a_bad_threshold_drops_the_threshold_but_keeps_the_value() -> None:
    values, notes = parse_perfdata("x=5;20:10;abc;zero;")
    assert values == [PerfValue(label="x", value=5)]
    assert len(notes) == 3


def test_undetermined_and_non_finite_values_are_not_numbers() -> None:
    values, notes = parse_perfdata("a=U;1;2 b=nan c=inf d=1e999 e=1,5")
    assert values == []
    assert len(notes) == 5


def test_no_bar_means_no_perfdata_and_empty_output_means_empty_summary() -> None:
    assert parse_plugin_output("OK all fine\nmore").perfdata == ()
    empty = parse_plugin_output("")
    assert (empty.summary, empty.long_text, empty.perfdata, empty.notes) == ("", "", (), ())


@given(st.text())
def test_the_parser_never_raises_on_arbitrary_text(text: str) -> None:
    parsed = parse_plugin_output(text)
    for value in parsed.perfdata:
        assert math.isfinite(value.value)
        assert value.label


_LABEL = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="="),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() == s and s.strip() != "")
_UNIT = st.sampled_from(["", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c"])
_NUMBER = st.integers(min_value=-(10**9), max_value=10**9).map(lambda n: n / 1000)


def _quote(label: str) -> str:
    return "'" + label.replace("'", "''") + "'"


@given(st.lists(st.tuples(_LABEL, _NUMBER, _UNIT, st.none() | _NUMBER, st.none() | _NUMBER)))
def test_well_formed_items_come_back_as_written(
    items: list[tuple[str, float, str, float | None, float | None]],
) -> None:
    text = " ".join(
        f"{_quote(label)}={value}{unit};;;"
        f"{'' if low is None else low};{'' if high is None else high}"
        for label, value, unit, low, high in items
    )
    values, notes = parse_perfdata(text)
    assert notes == []
    assert [(v.label, v.value, v.unit, v.min, v.max) for v in values] == items
