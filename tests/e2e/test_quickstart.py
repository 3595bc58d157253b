"""The README's first command: set up, run a collector and an agent, see the incident."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_the_demo_lists_the_sample_night_jobs_incident(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config-home")}
    done = subprocess.run(["bash", str(REPO / "packaging" / "dev" / "demo"), "--until-incident"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "nightly-export" in done.stdout
    assert "critical" in done.stdout
    # The token the demo handed to the command line works for `daybreak` without flags.
    assert (tmp_path / "config-home" / "daybreak" / "token").exists()
