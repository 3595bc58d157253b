"""Serving tunes the interpreter it owns: the GIL switch interval for the store writer thread,
the garbage collector for ingest's allocation churn (collector/runtime.py)."""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from collector.runtime import GC_THRESHOLDS, GIL_SWITCH_INTERVAL_S

# A real process: CollectorApp.run owns signals and the interpreter, so it runs as `serve` does.
SERVE_AND_REPORT = """
import gc
import sys
from pathlib import Path
from collector.app import CollectorApp
from collector.cli.serve import configure_logging
from collector.config import load_collector_config
from probes.clock import SystemClock
before = sys.getswitchinterval(), gc.get_threshold()
config = load_collector_config(Path(sys.argv[1]))
configure_logging(config.log)  # to stderr, as `serve` does
CollectorApp(config, SystemClock()).run()
print(repr((before, (sys.getswitchinterval(), gc.get_threshold(), gc.get_freeze_count()))))
"""


def test_a_serving_collector_tunes_the_gil_switch_and_the_garbage_collector(
    tmp_path: Path,
) -> None:
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
    before, serving = ast.literal_eval(out.strip())
    assert before == (0.005, (700, 10, 10))  # Python's defaults, for contrast
    switch_interval, thresholds, frozen = serving
    assert switch_interval == GIL_SWITCH_INTERVAL_S
    assert thresholds == GC_THRESHOLDS
    assert frozen > 10_000  # what start-up built: out of every collection's way
