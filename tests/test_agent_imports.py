"""The agent stays small: it never imports what only the collector needs (DESIGN.md)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Collector code and the libraries only it needs; each costs memory on every customer host.
FORBIDDEN_IN_AGENT = frozenset({
    "collector", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "paramiko", "httpx",
    "psycopg", "psycopg2", "cronsim", "prometheus_client",
})  # fmt: skip
# probes/ is shared by both sides, so it imports neither.
FORBIDDEN_IN_PROBES = FORBIDDEN_IN_AGENT | {"agent"}

AGENT_ENTRY_MODULES = (
    "agent.cli", "agent.daemon", "agent.stream", "agent.scheduler", "agent.spool", "agent.config",
    "probes.registry",
)  # fmt: skip


def top_level_imports(path: Path) -> set[tuple[str, int]]:
    """Every module a file imports anywhere (inside functions too), as (top-level name, line)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


def forbidden_imports_under(folder: str, forbidden: frozenset[str]) -> list[str]:
    problems = []
    for path in sorted((REPO / folder).rglob("*.py")):
        for module, line in sorted(top_level_imports(path)):
            if module in forbidden:
                problems.append(f"{path.relative_to(REPO)}:{line}: imports {module}")
    return problems


def test_no_agent_source_file_imports_collector_only_code() -> None:
    assert forbidden_imports_under("agent", FORBIDDEN_IN_AGENT) == []


def test_no_probe_source_file_imports_the_agent_or_collector_only_code() -> None:
    assert forbidden_imports_under("probes", FORBIDDEN_IN_PROBES) == []


def test_the_walker_catches_an_import_hidden_in_a_function(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def later():\n    from sqlalchemy import text\n    return text\n")
    assert top_level_imports(sneaky) == {("sqlalchemy", 2)}


def test_importing_the_agent_loads_no_collector_only_module() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import {name}\n" for name in AGENT_ENTRY_MODULES)
        + "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        cwd=REPO,
    )
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert "agent" in loaded
    assert sorted(loaded & FORBIDDEN_IN_AGENT) == []
