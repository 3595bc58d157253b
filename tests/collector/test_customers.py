"""Customer files: loaded whole, refused with file, line and field named."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from collector.customers import Access, Counts, Recovery, load_customer_text, load_customers
from collector.expectations.base import Severity
from probes.configfile import ConfigError

GOOD = """\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
expectations:
  - kind: threshold
    name: disk-space
    check: "disk:*"
    metric: used_percent
    warn: 80
    crit: 90
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_customers(folder)
    return str(caught.value).splitlines()


def test_every_yaml_file_in_the_folder_is_a_customer(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", GOOD)
    write(tmp_path, "globex.yaml", "customer: globex\nname: Globex\naccess: tier2_only\n")
    write(tmp_path, "notes.txt", "not a customer")
    customers = load_customers(tmp_path)
    assert customers.ids == {"acme", "globex"}
    acme = customers.get("acme")
    globex = customers.get("globex")
    assert acme is not None
    assert globex is not None
    assert acme.assignment_group == "service_desk"
    assert globex.access is Access.TIER2_ONLY
    assert globex.assignment_group == "tier2"
    assert customers.timezone_of("acme") == "Europe/Berlin"
    assert customers.source_of("acme") == tmp_path / "acme.yaml"


def test_broken_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "acme.yaml", "customer: acme\nname: [unclosed\ntimezone: UTC\n")
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:3: YAML syntax")


def test_an_unknown_key_is_refused_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "acme.yaml", GOOD + "    colour: red\n")
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:11: expectations[0]")
    assert "colour: Extra inputs are not permitted" in problem


def test_a_wrong_type_is_refused_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "acme.yaml", GOOD.replace("warn: 80", "warn: eighty"))
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:9: expectations[0]")
    assert "warn: Input should be a valid number" in problem


def test_an_unknown_timezone_is_refused_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "acme.yaml", GOOD.replace("Europe/Berlin", "Europe/Springfield"))
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:3: timezone: ")
    assert "unknown IANA timezone 'Europe/Springfield'" in problem


def test_a_bad_glob_is_refused_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "acme.yaml", GOOD.replace('"disk:*"', '"disk:[/data"'))
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:7: expectations[0]")
    assert "unclosed '[' in glob 'disk:[/data'" in problem


def test_an_unknown_kind_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "acme.yaml", GOOD.replace("kind: threshold", "kind: tresh"))
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:5: expectations[0]: ")
    assert "'threshold', 'job_must_not_fail'" in problem


def test_a_file_named_for_another_customer_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "acme-old.yaml", GOOD)
    [problem] = problems_of(tmp_path)
    assert problem == (f"{path}:1: customer: 'acme' must equal the file name 'acme-old' "
                       "(rename the file to acme.yaml or fix the id)")


def test_two_expectations_with_one_name_are_refused(tmp_path: Path) -> None:
    twice = GOOD + GOOD[GOOD.index("  - kind"):]
    path = write(tmp_path, "acme.yaml", twice)
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:")
    assert "two expectations are named 'disk-space'" in problem


def test_every_broken_file_is_reported_in_one_pass(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", GOOD.replace("Europe/Berlin", "Mars/Olympus"))
    write(tmp_path, "globex.yaml", "customer: globex\nname: Globex\naccess: everyone\n")
    problems = problems_of(tmp_path)
    assert [p.split(":")[0] for p in problems] == [str(tmp_path / "acme.yaml"),
                                                     str(tmp_path / "globex.yaml")]
    assert problems[1].startswith(f"{tmp_path / 'globex.yaml'}:3: access: ")


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "nowhere")
    assert problem == f"{tmp_path / 'nowhere'}: customers directory does not exist"


def test_a_relative_runbook_is_joined_to_the_base_url(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", GOOD + "runbook_base_url: https://wiki.example/acme/\n")
    acme = load_customers(tmp_path).get("acme")
    assert acme is not None
    assert acme.runbook_url("disk-full") == "https://wiki.example/acme/disk-full"
    assert acme.runbook_url("https://elsewhere.example/x") == "https://elsewhere.example/x"
    assert acme.runbook_url("") == ""


# --- issue 5: the contract -----------------------------------------------------------------

CONTRACT = """\
customer: acme
name: ACME Logistics
timezone: Europe/Berlin
service_hours:
  mon: "07:00-17:00"
  tue: ["07:00-12:00", "13:00-17:00"]
holidays: [2025-12-25, 2025-12-26]
severities:
  P1: {priority: 1, respond_within: 30m, resolve_within: 4h, counts: calendar}
  P2: {priority: 2, respond_within: 1h, resolve_within: 1d}
  P4: {priority: 4, respond_within: 1h30m, resolve_within: 5d}
severity_map:
  warning: P2
contacts:
  - {name: Jane Doe, role: IT lead, email: jane@acme.example, phone: "+49 30 1234 567"}
escalation: [service_desk, tier2, duty_manager]
maintenance:
  - reason: Saturday patching
    cron: "0 22 * * 6"
    duration: 4h
    hosts: ["db-*"]
  - reason: datacenter move
    start: 2025-05-10 20:00
    end: "2025-05-11 06:00"
    expectations: ["disk-*"]
recovery: mark_recovered
reopen_within: 2h
"""


def contract_problem(tmp_path: Path, old: str, new: str) -> str:
    assert old in CONTRACT
    write(tmp_path, "acme.yaml", CONTRACT.replace(old, new))
    [problem] = problems_of(tmp_path)
    return problem.removeprefix(f"{tmp_path / 'acme.yaml'}:")


def test_the_whole_contract_loads(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", CONTRACT)
    acme = load_customers(tmp_path).get("acme")
    assert acme is not None
    assert [str(r) for r in acme.service_hours.tue] == ["07:00-12:00", "13:00-17:00"]
    assert acme.service_hours.wed == ()
    assert acme.holidays == (date(2025, 12, 25), date(2025, 12, 26))
    assert acme.severities["P4"].respond_within == timedelta(hours=1, minutes=30)
    assert acme.severities["P1"].counts is Counts.CALENDAR
    assert acme.severities["P2"].counts is Counts.SERVICE_HOURS
    assert acme.contacts[0].email == "jane@acme.example"
    assert acme.escalation == ("service_desk", "tier2", "duty_manager")
    assert acme.maintenance[0].is_recurring
    assert acme.maintenance[1].start == datetime(2025, 5, 10, 20, 0)  # noqa: DTZ001 - local
    assert acme.recovery is Recovery.MARK_RECOVERED
    assert acme.reopen_within == timedelta(hours=2)


def test_severities_map_explicitly_or_by_urgency(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", CONTRACT)
    acme = load_customers(tmp_path).get("acme")
    assert acme is not None
    assert acme.level_for(Severity.WARNING)[0] == "P2"  # severity_map
    assert acme.level_for(Severity.CRITICAL)[0] == "P1"  # the most urgent level


def test_a_file_without_a_contract_gets_24x7_and_the_default_levels(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", GOOD)
    acme = load_customers(tmp_path).get("acme")
    assert acme is not None
    assert acme.service_hours.is_24x7
    assert acme.level_for(Severity.CRITICAL)[0] == "P2"
    assert acme.level_for(Severity.WARNING)[0] == "P3"
    assert acme.recovery is Recovery.AUTO_RESOLVE
    assert acme.reopen_within is None


def test_24x7_is_a_shorthand_for_every_day(tmp_path: Path) -> None:
    write(tmp_path, "acme.yaml", GOOD + "service_hours: 24x7\n")
    acme = load_customers(tmp_path).get("acme")
    assert acme is not None
    assert acme.service_hours.is_24x7
    assert str(acme.service_hours.sun[0]) == "00:00-24:00"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('"07:00-17:00"', '"17:00-07:00"',
     "5: service_hours.mon[0]: Value error, '17:00-07:00' ends before it starts"),
    ('"07:00-17:00"', '"7-17"', "5: service_hours.mon[0]: Value error, '7-17' is not a range"),
    ('"13:00-17:00"', '"11:00-17:00"',
     "6: service_hours.tue: Value error, 07:00-12:00 and 11:00-17:00 overlap"),
    ("  mon:", "  monday:", "5: service_hours.monday: Extra inputs are not permitted"),
    ("respond_within: 30m", "respond_within: 30 minutes",
     "9: severities.P1.respond_within: Value error, '30 minutes' is not a duration"),
    ("resolve_within: 1d", "resolve_within: 30m",
     "10: severities.P2: Value error, resolve_within is shorter than respond_within"),
    ("counts: calendar", "counts: always", "9: severities.P1.counts: Input should be"),
    ("warning: P2", "warning: P3",
     "12: severity_map: Value error, warning: 'P3' is not one of the severities P1, P2, P4"),
    ("2025-12-26]", "boxing day]", "7: holidays[1]: Input should be a valid date"),
    ("email: jane@acme.example", "password: hunter2",
     "15: contacts[0].password: Extra inputs are not permitted"),
    ("email: jane@acme.example", "email: jane", "15: contacts[0].email: String should match"),
    ("duty_manager]", "Duty Manager]", "16: escalation[2]: String should match"),
    ('cron: "0 22 * * 6"', 'cron: "61 22 * * 6"',
     "19: maintenance[0].cron: Value error, Bad minute in '61 22 * * 6'"),
    ('cron: "0 22 * * 6"', 'cron: "0 0 30 2 *"',
     "19: maintenance[0].cron: Value error, Bad day-of-month in '0 0 30 2 *'"),
    ("    duration: 4h\n", "",
     "18: maintenance[0]: Value error, a recurring window needs both cron and duration"),
    ('    end: "2025-05-11 06:00"', '    end: "2025-05-09 06:00"',
     "22: maintenance[1]: Value error, end is not after start"),
    ("start: 2025-05-10 20:00", "start: 2025-05-10 20:00:00+02:00",
     "23: maintenance[1].start: Value error, write the customer's local time without an"),
    ('    hosts: ["db-*"]', '    hosts: ["db-*"]\n    start: 2025-05-10 20:00',
     "18: maintenance[0]: Value error, a window is one-off (start, end) or recurring"),
    ("recovery: mark_recovered", "recovery: close", "26: recovery: Input should be"),
    ("reopen_within: 2h", "reopen_within: 0m", "27: reopen_within: Value error, must be longer"),
])
def test_every_contract_error_names_its_line_and_field(tmp_path: Path, old: str, new: str,
                                                       expected: str) -> None:
    assert contract_problem(tmp_path, old, new).startswith(expected)


def test_the_example_in_docs_customers_md_is_a_valid_customer_file() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "customers.md").read_text()
    example = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    acme = load_customer_text(example, Path("acme.yaml"))
    assert acme.level_for(Severity.CRITICAL)[0] == "P2"
    assert len(acme.maintenance) == 2
