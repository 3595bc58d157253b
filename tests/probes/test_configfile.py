"""YAML files into pydantic models: every refusal names file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from probes.configfile import MAX_CONFIG_BYTES, ConfigError, load_file, load_text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Disk(_Strict):
    kind: Literal["disk"]
    limit: int


class Log(_Strict):
    kind: Literal["log"]
    path: str


class Settings(_Strict):
    name: str
    items: list[Annotated[Disk | Log, Field(discriminator="kind")]] = []
    holidays: list[str] = []


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_text(Settings, text, "x.yaml")
    return [str(p) for p in caught.value.problems]


def test_a_wrong_type_in_a_union_member_is_named_as_the_file_has_it() -> None:
    text = "name: a\nitems:\n  - kind: log\n    path: /x\n  - kind: disk\n    limit: lots\n"
    assert problems(text) == [
        "x.yaml:6: items[1].limit: Input should be a valid integer, unable to parse string "
        "as an integer"
    ]


def test_an_unknown_key_is_reported_on_its_own_line() -> None:
    assert problems("name: a\nnmae: b\n") == ["x.yaml:2: nmae: Extra inputs are not permitted"]


def test_a_missing_key_is_reported_against_the_file() -> None:
    [problem] = problems("items: []\n")
    assert problem.startswith("x.yaml:1: name: Field required")


def test_broken_yaml_names_its_line() -> None:
    [problem] = problems("name: a\nitems: [\n  - oops\n")
    assert problem.startswith("x.yaml:")
    assert "YAML syntax" in problem


def test_a_value_yaml_cannot_build_names_its_line() -> None:
    assert problems("name: a\nholidays:\n  - 2025-12-01\n  - 2025-12-32\n") == [
        "x.yaml:4: YAML value: day is out of range for month"
    ]


def test_binary_invalid_utf8_and_huge_files_are_refused_without_parsing(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: a\n\x00\x01\x02")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: a\ncity: M\xfcnchen\n")
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    missing = tmp_path / "missing.yaml"
    reasons = {}
    for path in (binary, latin, huge, missing):
        with pytest.raises(ConfigError) as caught:
            load_file(Settings, path)
        reasons[path.name] = str(caught.value)
    assert reasons["binary.yaml"] == f"{binary}: binary file, not YAML"
    assert reasons["latin.yaml"] == f"{latin}:2: not valid UTF-8"
    assert "the limit is" in reasons["huge.yaml"]
    assert reasons["missing.yaml"].startswith(f"{missing}: cannot read:")


def test_an_empty_file_is_an_empty_mapping() -> None:
    assert problems("") == ["x.yaml: name: Field required"]
