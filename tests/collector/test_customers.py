"""Customer files: loaded whole, refused with file, line and field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.customers import Access, load_customers
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
