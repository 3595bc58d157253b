"""`systemctl show` parsing on written outputs, ansible's cases and insights-core's recordings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probes.parsers.systemctl import parse_show, parse_show_single

MATERIAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "material" / "cmd_output"


def material(name: str) -> Path:
    path = MATERIAL / name
    if not path.exists():
        pytest.skip(f"../shared/material is not here: {path} is absent")
    return path


def test_two_units_separated_by_a_blank_line_give_two_property_dicts() -> None:
    text = (
        "Id=nginx.service\nActiveState=active\nSubState=running\nLimitMEMLOCK=\n"
        "\n"
        "Id=backup.service\nActiveState=failed\nSubState=failed\nResult=exit-code\n"
    )
    units = parse_show(text)
    assert units == [
        {"Id": "nginx.service", "ActiveState": "active", "SubState": "running", "LimitMEMLOCK": ""},
        {
            "Id": "backup.service",
            "ActiveState": "failed",
            "SubState": "failed",
            "Result": "exit-code",
        },
    ]


def test_a_value_keeps_everything_after_the_first_equals_sign() -> None:
    [unit] = parse_show("Environment=A=1 B=2\nDescription=x = y\n")
    assert unit == {"Environment": "A=1 B=2", "Description": "x = y"}


def test_an_exec_value_split_over_lines_is_joined_until_its_closing_brace() -> None:
    text = (
        "ExecStart={ path=/bin/echo ; argv[]=/bin/echo foo\nbar ; status=0/0 }\nId=echo.service\n"
    )
    assert parse_show_single(text) == {
        "ExecStart": "{ path=/bin/echo ; argv[]=/bin/echo foo\nbar ; status=0/0 }",
        "Id": "echo.service",
    }


def test_a_brace_in_a_non_exec_value_does_not_start_a_multi_line_value() -> None:
    assert parse_show_single("Description={ odd\nRestart=no\n") == {
        "Description": "{ odd",
        "Restart": "no",
    }


def test_an_exec_value_cut_before_its_brace_does_not_swallow_the_next_properties() -> None:
    text = (
        "ExecStart={ path=/usr/bin/pg_ctl ; argv[]=/usr/bin/pg_ctl start ; sta\n"
        "ActiveState=active\n"
        "ExecStop={ path=/bin/kill ; argv[]=/bin/kill\n"
        "\n"
        "Id=next.service\n"
    )
    units = parse_show(text)
    assert units[0]["ActiveState"] == "active"
    assert units[0]["ExecStart"].endswith("start ; sta")
    assert units[0]["ExecStop"] == "{ path=/bin/kill ; argv[]=/bin/kill"
    assert units[1] == {"Id": "next.service"}


def test_empty_output_and_output_without_properties_give_no_units() -> None:
    assert parse_show("") == []
    assert parse_show("\n\n") == []
    assert parse_show("Failed to connect to bus: No such file or directory\n") == []
    assert parse_show_single("") == {}


def test_windows_line_ends_and_surrounding_blank_lines_are_harmless() -> None:
    assert parse_show("\r\n\r\nId=a.service\r\nActiveState=active\r\n\r\n") == [
        {"Id": "a.service", "ActiveState": "active"}
    ]


def test_ansibles_parse_cases_give_ansibles_expected_properties() -> None:
    cases = json.loads(material("ansible_systemctl_show_parse_cases.json").read_text())["cases"]
    assert len(cases) == 3
    for case in cases:
        assert parse_show("\n".join(case["lines"])) == [case["expected"]], case["name"]


def test_insights_all_services_example_gives_three_units_with_their_states() -> None:
    text = material("insights_core/systemctl-show-all-services_SYSTEMCTL_SHOW_ALL_EXAMPLES.out")
    units = parse_show(text.read_text())
    assert [u["Id"] for u in units] == ["postfix.service", "postgresql.service", "tuned.service"]
    postfix, postgresql, tuned = units
    assert postfix["LimitMEMLOCK"] == ""
    assert postfix["KillSignal"] == "15"
    # The recording cuts these Exec values short; each still ends at the next property.
    assert postgresql["ExecStart"].startswith(
        "{ path=/usr/bin/pg_ctl ; argv[]=/usr/bin/pg_ctl start"
    )
    assert postgresql["ExecStop"].startswith("{ path=/usr/bin/pg_ctl ; argv[]=/usr/bin/pg_ctl stop")
    assert postgresql["Slice"] == "system.slice"
    assert postgresql["ControlGroup"] == "/system.slice/postgresql.service"
    assert tuned["ActiveState"] == "active"
    assert tuned["SubState"] == "running"
    assert tuned["ABC"] == ""
    assert tuned["Transient"] == "no"


def test_insights_cpu_accounting_output_gives_three_units_without_ids() -> None:
    text = material("insights_core/systemctl-show-all-services_CPUACCOUNTING_INFO3.out")
    units = parse_show(text.read_text())
    assert [(u["Names"], u["SubState"]) for u in units] == [
        ("test1.service", "dead"),
        ("test2.service", "failed"),
        ("test3.service", "exited"),
    ]
    assert units[1]["CPUShares"] == "184"


def test_insights_target_dump_gives_each_target_with_its_active_state() -> None:
    text = material("insights_core/systemctl-show-network.target_SYSTEMCTL_SHOW_TARGET.out")
    units = parse_show(text.read_text())
    assert [u["Id"] for u in units][:2] == ["network.target", "swap.target"]
    assert units[0]["ActiveState"] == "active"
    assert units[0]["ActiveEnterTimestamp"] == "Tue 2020-02-25 10:39:46 GMT"
    assert all("Id" in u for u in units)
