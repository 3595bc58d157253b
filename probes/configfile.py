"""YAML files validated into pydantic models, with errors that name file, line and field.

    config/customers/acme.yaml:14: expectations[2].warn: Input should be a valid number

The YAML is composed into nodes first so every pydantic error location can be walked back to the
line it came from (the shape of dagster's `pydantic_yaml.py`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError, ValidationInfo

ModelT = TypeVar("ModelT", bound=BaseModel)

# A configuration file is a few kilobytes; refusing huge ones keeps a wrong path (a log file)
# from being parsed into memory.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        if not self.field:
            return f"{where}: {self.message}"
        return f"{where}: {self.field}: {self.message}"


class ConfigError(Exception):
    """One or more problems in one file; str() is one line per problem."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _field_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _mapping_child(node: yaml.Node, key: int | str) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if str(key_node.value) == str(key):
                return key_node, value_node
    return None


def _locate(node: yaml.Node | None, loc: Sequence[int | str]) -> tuple[int | None, str]:
    """The 1-based line of the deepest node loc reaches, and loc as the user wrote it.

    Pydantic puts a union's tag into loc (`expectations[1].job_must_not_fail.job`); the user's
    file has no such level, so a part that names no key while the next part does is skipped.
    """
    parts = list(loc)
    if node is None:
        return None, _field_path(parts)
    line: int = node.start_mark.line + 1
    shown: list[int | str] = []
    for index, part in enumerate(parts):
        found = _mapping_child(node, part)
        if found is not None:
            key_node, node = found
            line = key_node.start_mark.line + 1
            shown.append(part)
            continue
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            shown.append(part)
            continue
        following = parts[index + 1] if index + 1 < len(parts) else None
        if following is not None and _mapping_child(node, following) is not None:
            continue  # a union tag, not a level of the file
        shown.append(part)
    return line, _field_path(shown)


def parse_yaml(text: str, path: str) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text; a syntax error becomes a ConfigError with its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem(path, line, "", f"YAML syntax: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(path, None, "", f"YAML: {exc}")]) from exc
    except (ValueError, OverflowError) as exc:
        # A value YAML resolves but cannot build, such as the date 2025-12-32.
        line = _line_of_unbuildable_scalar(node)
        raise ConfigError([ConfigProblem(path, line, "", f"YAML value: {exc}")]) from exc
    return data, node


def _line_of_unbuildable_scalar(node: yaml.Node | None) -> int | None:
    """The line of the first scalar the safe loader cannot turn into a value."""
    pending = [node] if node is not None else []
    while pending:
        current = pending.pop(0)
        if isinstance(current, yaml.ScalarNode):
            try:
                yaml.SafeLoader("").construct_object(current, deep=True)
            except (ValueError, OverflowError, yaml.YAMLError):
                return int(current.start_mark.line) + 1
        elif isinstance(current, yaml.SequenceNode):
            pending.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                pending.extend((key_node, value_node))
    return None


def validate(model: type[ModelT], data: Any, node: yaml.Node | None, path: str) -> ModelT:
    if data is None:
        data = {}
    try:
        return model.model_validate(data, context={"config_path": path})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            line, field = _locate(node, err["loc"])
            problems.append(ConfigProblem(path, line, field, err["msg"]))
        raise ConfigError(problems) from exc


def load_text(model: type[ModelT], text: str, path: str) -> ModelT:
    data, node = parse_yaml(text, path)
    return validate(model, data, node, path)


def read_text(path: Path) -> str:
    """Read a config file as UTF-8, refusing binary and huge files with a clear reason."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                [ConfigProblem(str(path), None, "", f"file is {size} bytes; the limit is "
                               f"{MAX_CONFIG_BYTES} (is this really a configuration file?)")]
            )
        raw = path.read_bytes()
    except OSError as exc:
        problem = ConfigProblem(str(path), None, "", f"cannot read: {exc.strerror}")
        raise ConfigError([problem]) from exc
    if b"\x00" in raw:
        raise ConfigError([ConfigProblem(str(path), None, "", "binary file, not YAML")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([ConfigProblem(str(path), line, "", "not valid UTF-8")]) from exc


def load_file(model: type[ModelT], path: Path) -> ModelT:
    """Read, parse and validate one YAML file into model."""
    return load_text(model, read_text(path), str(path))


def relative_to_config(path: Path, info: ValidationInfo) -> Path:
    """Anchor a relative path at the folder of the file being validated.

    A configuration file then means the same thing whatever directory the program starts in.
    Built in code (no `config_path` in the validation context), a path stays as given.
    """
    if path.is_absolute():
        return path
    config_path = (info.context or {}).get("config_path")
    if not config_path:
        return path
    # normpath: `config/../var/logs` reads as `var/logs` in evidence and messages.
    return Path(os.path.normpath(Path(config_path).resolve().parent / path))
