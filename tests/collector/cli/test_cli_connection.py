"""Where the command line connects, with which token, and what it says when that fails."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

Daybreak = Callable[..., Any]


def private_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def test_a_wrong_token_exits_4_with_one_line(daybreak: Daybreak) -> None:
    done = daybreak("incidents", "list", DAYBREAK_TOKEN=secrets.token_hex(16))
    assert done.returncode == 4
    assert done.stderr == ("daybreak: 401: the API token was refused (token from "
                           "$DAYBREAK_TOKEN)\n")
    assert done.stdout == ""


def test_no_token_at_all_says_where_to_put_one(daybreak: Daybreak) -> None:
    done = daybreak("agents", "list", DAYBREAK_TOKEN="")
    assert done.returncode == 4
    assert done.stderr.startswith("daybreak: 401: no API token; set DAYBREAK_TOKEN")


def test_the_token_file_option_wins_over_the_environment(
    daybreak: Daybreak, collector: Any, tmp_path: Path,
) -> None:
    token_file = private_file(tmp_path / "admin.token", collector.admin_token)
    done = daybreak("incidents", "list", "--token-file", str(token_file),
                    DAYBREAK_TOKEN=secrets.token_hex(16))
    assert done.returncode == 0, done.stderr


def test_the_token_file_from_the_environment_is_read(
    daybreak: Daybreak, collector: Any, tmp_path: Path,
) -> None:
    token_file = private_file(tmp_path / "admin.token", collector.admin_token)
    done = daybreak("incidents", "list", DAYBREAK_TOKEN="", DAYBREAK_TOKEN_FILE=str(token_file))
    assert done.returncode == 0, done.stderr


def test_the_default_token_file_follows_xdg_config_home(
    daybreak: Daybreak, collector: Any, tmp_path: Path,
) -> None:
    private_file(tmp_path / "xdg" / "daybreak" / "token", collector.admin_token)
    done = daybreak("incidents", "list", DAYBREAK_TOKEN="", XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    assert done.returncode == 0, done.stderr


def test_the_default_token_file_is_under_home_without_xdg(
    daybreak: Daybreak, collector: Any,
) -> None:
    private_file(collector.home / ".config" / "daybreak" / "token", collector.admin_token)
    try:
        done = daybreak("incidents", "list", DAYBREAK_TOKEN="")
    finally:
        (collector.home / ".config" / "daybreak" / "token").unlink()
    assert done.returncode == 0, done.stderr


def test_a_token_file_others_can_read_is_used_with_a_warning(
    daybreak: Daybreak, collector: Any, tmp_path: Path,
) -> None:
    token_file = private_file(tmp_path / "admin.token", collector.admin_token)
    token_file.chmod(0o644)
    done = daybreak("incidents", "list", "--token-file", str(token_file))
    assert done.returncode == 0
    assert f"daybreak: warning: {token_file} is readable by other users" in done.stderr


def test_a_missing_token_file_exits_4(daybreak: Daybreak, tmp_path: Path) -> None:
    done = daybreak("incidents", "list", "--token-file", str(tmp_path / "nope"))
    assert done.returncode == 4
    assert done.stderr == (f"daybreak: cannot read the token file {tmp_path / 'nope'}: "
                           "No such file or directory\n")


def test_no_collector_listening_exits_3_with_a_hint(daybreak: Daybreak) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    done = daybreak("incidents", "list", "--url", url)
    assert done.returncode == 3
    assert done.stderr == (f"daybreak: cannot reach the collector at {url}: connection refused; "
                           "is `daybreak serve` running?\n")


def test_a_usage_error_exits_2(daybreak: Daybreak) -> None:
    assert daybreak("incidents", "list", "--state", "closed").returncode == 2
    assert daybreak().returncode == 2
