"""`daybreak`: the collector and the operator's command line.

Each command lives in its own module exposing `register(subparsers)`, which adds its parser
and sets `func(args) -> int` (the exit code). `serve` and `migrate` come from
`collector.cli.serve`; an installation without it still checks files and reads the API.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from collector.cli import agents, check, incidents, reload, report
from collector.cli.client import CliError
from collector.cli.output import complain

OPTIONAL_COMMAND_MODULES = ("collector.cli.serve",)


def _command_modules() -> list[ModuleType]:
    modules: list[ModuleType] = []
    for name in OPTIONAL_COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but something it imports is missing
                raise
    return [*modules, incidents, agents, report, reload, check]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daybreak",
        description="Daybreak collector and operator command line. API commands read "
                    "$DAYBREAK_URL and $DAYBREAK_TOKEN (see docs/cli.md).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except CliError as exc:
        complain(str(exc))
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # `daybreak incidents list | head`: the reader left; that is not an error.
        sys.stderr.close()
        code = 0
    raise SystemExit(0 if code is None else code)


if __name__ == "__main__":
    main()
