"""Every example under config/ validates with the model of its kind (STYLE.md: examples are
tested, so the docs cannot drift from the code)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from collector.customers import load_customer_file, load_customers

CONFIG = Path(__file__).resolve().parent.parent / "config"
CUSTOMER_FILES = sorted((CONFIG / "customers").glob("*.yaml"))
# The collector and agent examples, validated by their own loaders once those exist.
OTHER_FILES = {
    "agent.yaml": ("agent.config", "load_agent_config"),
    "collector.yaml": ("collector.config", "load_collector_config"),
}


def test_the_examples_include_a_service_desk_and_a_tier2_customer() -> None:
    customers = load_customers(CONFIG / "customers")
    assert {"acme", "globex"} <= customers.ids
    acme = customers.get("acme")
    globex = customers.get("globex")
    assert acme is not None
    assert globex is not None
    assert acme.assignment_group == "service_desk"
    assert globex.assignment_group == "tier2"
    assert {e.kind for e in acme.expectations} == {"threshold", "job_must_not_fail"}


@pytest.mark.parametrize("path", CUSTOMER_FILES, ids=lambda p: p.name)
def test_each_example_customer_file_is_valid(path: Path) -> None:
    load_customer_file(path)


@pytest.mark.parametrize(
    "name", [name for name in OTHER_FILES if (CONFIG / name).exists()],
)
def test_each_example_agent_and_collector_file_is_valid(name: str) -> None:
    module_name, loader_name = OTHER_FILES[name]
    loader = getattr(importlib.import_module(module_name), loader_name)
    loader(CONFIG / name)
