"""Serving tunes the interpreter for the store writer thread (see GIL_SWITCH_INTERVAL_S)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import yaml

from collector.app import GIL_SWITCH_INTERVAL_S

# A real process: CollectorApp.run owns signals and the interpreter, so it runs as `serve` does.
SERVE_AND_REPORT = """
import sys
from pathlib import Path
from collector.app import CollectorApp
from collector.cli.serve import configure_logging
from collector.config import load_collector_config
from probes.clock import SystemClock
before = sys.getswitchinterval()
config = load_collector_config(Path(sys.argv[1]))
configure_logging(config.log)  # to stderr, as `serve` does
CollectorApp(config, SystemClock()).run()
print(before, sys.getswitchinterval())
"""


def test_a_serving_collector_hands_the_gil_round_every_half_millisecond(tmp_path: Path) -> None:
    (tmp_path / "customers").mkdir()
    config = tmp_path / "collector.yaml"
    config.write_text(yaml.safe_dump({
        "grpc": {"listen": "127.0.0.1:0"}, "http": {"listen": "127.0.0.1:0"},
        "state_dir": str(tmp_path / "state"), "customers_dir": str(tmp_path / "customers"),
        "log": {"format": "json", "level": "info"},
    }))
    process = subprocess.Popen([sys.executable, "-c", SERVE_AND_REPORT, str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:  # wait until it serves
        if "collector.listening" in line:
            break
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    before, serving = (float(x) for x in out.split())
    assert before == 0.005  # Python's default, for contrast
    assert serving == GIL_SWITCH_INTERVAL_S
