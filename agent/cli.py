"""`daybreak-agent`: the daemon on customer hosts, and its offline config check.

    daybreak-agent --config /etc/daybreak/agent.yaml          run the agent
    daybreak-agent check --config /etc/daybreak/agent.yaml    validate and exit (1 on errors)
    daybreak-agent run --job NAME -- command args...          the job wrapper (agent/wrapper.py)

Only the standard library is imported at the top: the daemon decides what to load before
asyncio, pydantic and hashlib are imported (see `_leave_out_python_tls` and
`_leave_out_openssl_hashes`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.daemon import AgentDaemon


def agent_version() -> str:
    try:
        return version("daybreak")
    except PackageNotFoundError:
        return "0+unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="daybreak-agent",
        description="Runs probes on this host and streams their results to a Daybreak collector.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {agent_version()}")
    parser.add_argument("--config", type=Path, help="the agent's YAML configuration file")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check_parser = commands.add_parser("check", help="validate the configuration file and exit")
    check_parser.add_argument("--config", dest="check_config", type=Path, required=True)
    # Listed for --help only: main() hands `run` to the wrapper before parsing, since the
    # command after `--` is the job's, not ours (see agent/wrapper.py).
    commands.add_parser(
        "run", help="run a job's command and record its run: run --job NAME -- command args..."
    )
    return parser


def _load(path: Path, problems: TextIO) -> AgentConfig | None:
    from agent.config import load_agent_config
    from probes.configfile import ConfigError

    try:
        # On the host: the token file must exist and be private, or the agent cannot connect.
        return load_agent_config(path, check_files=True)
    except ConfigError as exc:
        problems.write(f"{exc}\n")
        return None


def check(path: Path) -> int:
    """Prints as `daybreak check` does: the problems, or `FILE: ok`, on standard output."""
    config = _load(path, sys.stdout)
    if config is None:
        return 1
    count = len(config.probes)
    sys.stdout.write(f"{path}: ok ({count} probe{'' if count == 1 else 's'})\n")
    return 0


def _leave_out_python_tls() -> None:
    """Keep asyncio from loading Python's ssl module (about 2 MiB resident, 4 % of the agent's
    55 MiB budget) when it is imported next. The agent never uses it: gRPC brings its own TLS.
    asyncio imports ssl optionally and runs without it. Loading the configuration imports
    asyncio (through structlog), so this runs before it; `_let_in_python_tls` undoes it when a
    configured probe needs Python's TLS (an HTTPS or TLS check)."""
    if "ssl" not in sys.modules and "asyncio" not in sys.modules:
        sys.modules["ssl"] = None  # type: ignore[assignment]


def _leave_out_rich() -> None:
    """structlog's console renderer imports `rich` for pretty tracebacks whenever it is
    installed (a developer's venv has it through import-linter; a customer host may have it
    system-wide): about 5 MiB resident, a tenth of the agent's budget. The agent logs JSON as a
    service and plain console lines on a terminal, so it never needs it."""
    if "rich" not in sys.modules and "structlog" not in sys.modules:
        sys.modules["rich"] = None  # type: ignore[assignment]


def _builtin_hash_modules() -> tuple[str, ...]:
    """The extension modules that give hashlib (and random, hmac) every algorithm it always
    offers without OpenSSL: CPython builds them by default, though some distributions' builds
    (RHEL, Fedora) leave all but blake2 out."""
    sha2 = ("_sha2",) if sys.version_info >= (3, 12) else ("_sha256", "_sha512")
    return ("_md5", "_sha1", *sha2, "_blake2", "_sha3")


def _leave_out_openssl_hashes() -> None:
    """Keep hashlib and hmac from loading `_hashlib`, which maps OpenSSL's libcrypto: about
    3.3 MiB resident (6 % of the agent's 55 MiB budget), pulled in only because pydantic imports
    `secrets` (hmac). The agent hashes nothing through OpenSSL: blake2b (the tailer's file
    identity) is always CPython's own, `secrets.token_hex` reads os.urandom, and gRPC brings its
    own TLS. Left in when this Python lacks the builtin hash modules, where hashlib without
    OpenSSL would miss algorithms; `_let_in_python_tls` lifts it too."""
    from importlib.util import find_spec

    if "_hashlib" in sys.modules:
        return  # libcrypto is mapped already: nothing left to save
    if all(find_spec(name) is not None for name in _builtin_hash_modules()):
        sys.modules["_hashlib"] = None  # type: ignore[assignment]


def _leave_out_libyaml() -> None:
    """`import yaml` loads PyYAML's libyaml binding whenever it is installed (about 0.3 MiB
    resident); the agent never uses it: probes/configfile.py parses with the pure-Python
    SafeLoader, whose nodes carry the line numbers of its error messages."""
    if "yaml" not in sys.modules:
        sys.modules["yaml._yaml"] = None  # type: ignore[assignment]


def _let_in_python_tls() -> None:
    """Lift the blocks: the next `import ssl` (in the probe that needs it) loads it normally,
    with OpenSSL's libcrypto, so `_hashlib` is no longer kept out either. asyncio, already
    imported without ssl, keeps running without it, which the agent's own traffic never
    needs."""
    for name in ("ssl", "_hashlib"):
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


def serve(path: Path) -> int:
    _leave_out_python_tls()
    _leave_out_openssl_hashes()
    _leave_out_libyaml()
    _leave_out_rich()
    import asyncio
    import random

    import structlog

    from agent.daemon import AgentDaemon
    from agent.logs import configure_logging
    from probes.clock import SystemClock

    config = _load(path, sys.stderr)
    if config is None:
        return 1
    if any(probe.needs_ssl for probe in config.probes):
        _let_in_python_tls()
    configure_logging(config.log)
    structlog.contextvars.bind_contextvars(agent_id=config.agent_id, customer=config.customer)
    daemon = AgentDaemon(config, agent_version(), SystemClock(), random.SystemRandom())
    asyncio.run(_serve_until_signalled(daemon))
    if daemon.hung_probe_threads:
        # A thread stuck in a syscall (a dead NFS mount) cannot be stopped, and the interpreter
        # would wait for it forever at exit. Everything is spooled and closed: leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


async def _serve_until_signalled(daemon: AgentDaemon) -> None:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await daemon.run(stop)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list[:1] == ["run"]:
        from agent.wrapper import main as run_wrapped
        from probes.clock import SystemClock

        return run_wrapped(args_list[1:], SystemClock())
    parser = _parser()
    args = parser.parse_args(args_list)
    if args.command == "check":
        return check(args.check_config)
    if args.config is None:
        parser.error("--config is required")
    return serve(args.config)


if __name__ == "__main__":
    sys.exit(main())
