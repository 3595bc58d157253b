"""`daybreak check FILE...`: validate agent, collector and customer files offline.

Prints `FILE: ok` or one `FILE:LINE: field: message` line per problem; exits 1 if any file
fails. The kind of each file comes from `--kind`, else its folder (`customers/`), else its
top-level keys, else its name. Nothing is contacted; the agent's and collector's models are
imported only when a file of theirs is checked, so a broken one cannot stop the others.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from collector.cli.client import EXIT_INVALID, EXIT_OK
from collector.cli.output import write
from probes.configfile import ConfigError, parse_yaml, read_text

KINDS = ("agent", "collector", "customer")
# Keys only that kind of file has at the top level (an agent file also has `customer:`, so
# agent keys are looked at first).
_AGENT_KEYS = frozenset({"agent_id", "collectors", "probes"})
_COLLECTOR_KEYS = frozenset({"grpc", "http", "store", "customers_dir", "agents", "api_tokens"})
_CUSTOMER_KEYS = frozenset({"customer", "expectations", "timezone", "access",
                            "runbook_base_url"})


def register(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check", help="validate agent, collector or customer files (offline)")
    check.add_argument("files", metavar="FILE", nargs="+", type=Path)
    check.add_argument("--kind", choices=KINDS,
                       help="what the files are (default: from folder, keys or name)")
    check.set_defaults(func=run_check)


def decide_kind(path: Path, data: Any) -> str | None:
    if path.parent.name == "customers":
        return "customer"
    if isinstance(data, dict):
        keys = set(data)
        for kind, marks in (("agent", _AGENT_KEYS), ("collector", _COLLECTOR_KEYS),
                            ("customer", _CUSTOMER_KEYS)):
            if keys & marks:
                return kind
    for kind in ("agent", "collector", "customer"):
        if kind in path.stem:
            return kind
    return None


def _validator(kind: str) -> Callable[[Path, str], object]:
    if kind == "customer":
        from collector.customers import load_customer_text

        return lambda path, text: load_customer_text(text, path)
    module_name, loader_name = {
        "agent": ("agent.config", "load_agent_config"),
        "collector": ("collector.config", "load_collector_config"),
    }[kind]
    loader: Callable[[Path], object] = getattr(importlib.import_module(module_name),
                                               loader_name)
    return lambda path, _text: loader(path)


def check_file(path: Path, kind: str | None) -> list[str]:
    """The lines to print for one file: `FILE: ok` or its problems."""
    try:
        text = read_text(path)
        data, _node = parse_yaml(text, str(path))
        kind = kind or decide_kind(path, data)
        if kind is None:
            return [f"{path}: cannot tell whether this is an agent, collector or customer file; "
                    f"pass --kind"]
        try:
            validate = _validator(kind)
        except (ImportError, AttributeError) as exc:
            return [f"{path}: cannot check {kind} files with this installation: {exc}"]
        validate(path, text)
    except ConfigError as exc:
        return [str(problem) for problem in exc.problems]
    return [f"{path}: ok"]


def run_check(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        lines = check_file(path, args.kind)
        failed = failed or lines != [f"{path}: ok"]
        for line in lines:
            write(line)
    return EXIT_INVALID if failed else EXIT_OK
