"""`daybreak agents list`, run as a real process against a real API server."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Daybreak = Callable[..., Any]


def test_agents_list_prints_one_row_per_agent(daybreak: Daybreak) -> None:
    done = daybreak("agents", "list")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["CUSTOMER", "HOST", "AGENT", "VERSION", "CONNECTED", "LAST",
                              "SEEN", "SPOOL", "DROPPED"]
    assert rows[0].split() == ["acme", "db-01", "acme-db-01", "0.1.0", "yes", "2025-03-04",
                               "01:30:00", "UTC", "0", "0"]
    assert rows[1].split()[:5] == ["globex", "db-07", "globex-db-01", "0.1.0", "no"]
    assert rows[1].split()[-2:] == ["250", "4"]


def test_agents_list_json_has_the_documented_fields(daybreak: Daybreak) -> None:
    done = daybreak("agents", "list", "--json", "--customer", "globex")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"agents": [{
        "agent_id": "globex-db-01", "customer": "globex", "host": "db-07", "version": "0.1.0",
        "connected": False, "last_seen_at": "2025-03-04T01:30:00Z", "spool_depth": 250,
        "results_dropped": 4,
    }]}
