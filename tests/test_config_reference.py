"""Every configuration key that exists is documented: in README.md's reference or a page under
docs/ (docs/customers.md, docs/expectations.md, ...) for the agent, collector and customer
files, and in docs/probes/<type>.md for each probe type. A key added without its line in the
reference fails here."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.config import AgentConfig
from collector.config import CollectorConfig
from collector.customers import CustomerFile
from probes.base import ProbeConfigBase
from probes.registry import ProbeConfig

REPO = Path(__file__).resolve().parents[1]


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    for arg in typing.get_args(annotation) or (annotation,):
        if typing.get_args(arg):
            yield from _models_in(arg)
        elif inspect.isclass(arg) and issubclass(arg, BaseModel):
            yield arg


def keys_of(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Dotted keys of a model, descending into nested models but not into the probe union."""
    for name, field in model.model_fields.items():
        yield prefix + name
        for nested in _models_in(field.annotation):
            if issubclass(nested, ProbeConfigBase) or name == "expectations":
                continue
            yield from keys_of(nested, f"{prefix}{name}.")


def probe_types() -> list[type[ProbeConfigBase]]:
    return [m for m in _models_in(ProbeConfig) if issubclass(m, ProbeConfigBase)]


def expectation_kinds() -> list[type[BaseModel]]:
    return list(_models_in(CustomerFile.model_fields["expectations"].annotation))


def documented(text: str, key: str) -> bool:
    """`key` itself, its last part, its list form (`agents[].customer`), or its sub-keys."""
    last = key.rsplit(".", 1)[-1]
    forms = (f"`{key}`", f"`{last}`", f"`{key.replace('.', '[].', 1)}`", f"`{key}.", f"`{key}[].")
    return any(form in text for form in forms)


@pytest.mark.parametrize("model", [AgentConfig, CollectorConfig, CustomerFile,
                                   *expectation_kinds()], ids=lambda m: m.__name__)
def test_every_key_of_the_main_files_is_documented(model: type[BaseModel]) -> None:
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages)
    missing = [key for key in keys_of(model) if not documented(text, key)]
    assert not missing, f"neither README.md nor docs/*.md document {model.__name__}: {missing}"


@pytest.mark.parametrize("model", probe_types(), ids=lambda m: m.__name__)
def test_every_probe_key_is_in_its_probe_page(model: type[ProbeConfigBase]) -> None:
    probe_type = typing.get_args(model.model_fields["type"].annotation)[0]
    page = REPO / "docs" / "probes" / f"{probe_type}.md"
    assert page.exists(), f"{page.relative_to(REPO)} is missing"
    text = page.read_text() + (REPO / "README.md").read_text()
    common = set(ProbeConfigBase.model_fields)
    missing = [key for key in keys_of(model) if key not in common and not documented(text, key)]
    assert not missing, f"{page.relative_to(REPO)} does not document: {missing}"
