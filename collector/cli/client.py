"""The `daybreak` command line's HTTP client for the collector's API.

Where it connects and with which token, first match wins:
- URL: `--url`, `$DAYBREAK_URL`, http://127.0.0.1:8470 (the collector's default `http.listen`).
- token: `--token-file`, `$DAYBREAK_TOKEN`, `$DAYBREAK_TOKEN_FILE`,
  `$XDG_CONFIG_HOME/daybreak/token` (`~/.config/daybreak/token` when XDG_CONFIG_HOME is unset).

Every failure becomes a `CliError` with one line a person can act on and an exit code scripts
can test (docs/cli.md lists them).
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from collector.cli.output import complain

DEFAULT_URL = "http://127.0.0.1:8470"
# A person is waiting; a collector that takes longer than this is in trouble anyway.
REQUEST_TIMEOUT_S = 10.0

EXIT_OK = 0
EXIT_INVALID = 1  # `daybreak check`: a file is invalid
EXIT_USAGE = 2  # argparse: a wrong option or argument
EXIT_UNREACHABLE = 3  # no answer from the collector
EXIT_AUTH = 4  # no token, an unreadable token file, 401 or 403
EXIT_NOT_FOUND = 5  # 404: no such incident (in your scope)
EXIT_API = 6  # any other error answer from the API


class CliError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    source: str  # where it came from, named in errors ("$DAYBREAK_TOKEN", a file path)


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"the collector's API (default: $DAYBREAK_URL or "
                        f"{DEFAULT_URL})")
    parser.add_argument("--token-file", type=Path, help="a file holding the API token "
                        "(default: $DAYBREAK_TOKEN, $DAYBREAK_TOKEN_FILE, "
                        "~/.config/daybreak/token)")


def default_token_path(env: Mapping[str, str]) -> Path:
    config_home = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")) / ".config")
    return Path(config_home).expanduser() / "daybreak" / "token"


def _read_token_file(path: Path) -> Token:
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"cannot read the token file {path}: {exc.strerror}", EXIT_AUTH) from exc
    if not value:
        raise CliError(f"the token file {path} is empty", EXIT_AUTH)
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        # Warn rather than refuse: reading is still safe, and the fix is one command away.
        complain(f"warning: {path} is readable by other users; run `chmod 600 {path}`")
    return Token(value, str(path))


def resolve_token(token_file: Path | None, env: Mapping[str, str]) -> Token | None:
    if token_file is not None:
        return _read_token_file(token_file)
    if env.get("DAYBREAK_TOKEN", "").strip():
        return Token(env["DAYBREAK_TOKEN"].strip(), "$DAYBREAK_TOKEN")
    if env.get("DAYBREAK_TOKEN_FILE"):
        return _read_token_file(Path(env["DAYBREAK_TOKEN_FILE"]))
    default = default_token_path(env)
    return _read_token_file(default) if default.exists() else None


def resolve_url(url: str | None, env: Mapping[str, str]) -> str:
    return (url or env.get("DAYBREAK_URL") or DEFAULT_URL).rstrip("/")


def _connect_reason(exc: httpx.HTTPError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


class ApiClient:
    def __init__(self, base_url: str, token: Token | None,
                 timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.base_url = base_url
        self._token = token
        self._timeout_s = timeout_s

    def get(self, path: str, params: Mapping[str, str | int | None] | None = None) -> Any:
        """GET an /api/v1 path and return its JSON, or raise CliError."""
        return self._send("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST JSON to an /api/v1 path and return the answer's JSON, or raise CliError."""
        return self._send("POST", path, body=body)

    def _send(self, method: str, path: str, *,
              params: Mapping[str, str | int | None] | None = None,
              body: Mapping[str, Any] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.value}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = f"{self.base_url}/api/v1{path}"
        try:
            response = httpx.request(method, url, params=query, json=body, headers=headers,
                                     timeout=self._timeout_s)
        except httpx.TimeoutException as exc:
            raise CliError(f"the collector at {self.base_url} did not answer within "
                           f"{self._timeout_s:g} s", EXIT_UNREACHABLE) from exc
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the collector at {self.base_url}: "
                           f"{_connect_reason(exc)}; is `daybreak serve` running?",
                           EXIT_UNREACHABLE) from exc
        if response.is_success:
            try:
                return response.json()
            except ValueError as exc:
                raise CliError(f"{url} answered with something that is not JSON; is "
                               f"{self.base_url} a Daybreak collector?", EXIT_API) from exc
        raise self._error(response)

    def _error(self, response: httpx.Response) -> CliError:
        code = response.status_code
        if code == 401:
            if self._token is None:
                return CliError("401: no API token; set DAYBREAK_TOKEN or DAYBREAK_TOKEN_FILE, "
                                "pass --token-file, or write it to ~/.config/daybreak/token",
                                EXIT_AUTH)
            return CliError(f"401: the API token was refused (token from {self._token.source})",
                            EXIT_AUTH)
        detail = _detail(response)
        if code == 403:
            return CliError(f"403: {detail}", EXIT_AUTH)
        if code == 404:
            return CliError(f"404: {detail}", EXIT_NOT_FOUND)
        return CliError(f"{code}: {detail}", EXIT_API)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}"
                         for d in detail if isinstance(d, dict))
    return response.reason_phrase or "error"


def client_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> ApiClient:
    environ = os.environ if env is None else env
    return ApiClient(resolve_url(args.url, environ), resolve_token(args.token_file, environ))
