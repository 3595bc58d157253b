"""Benchmark: the joblog probe over a generated log, beside `LC_ALL=C grep -cE` on the same file.

    .venv/bin/python bench/joblog.py [--size-mb 200] [--runs 3]

Prints figures, one `name: value unit` per line; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from probes.base import ProbeContext
from probes.clock import ManualClock
from probes.joblog.probe import JoblogConfig, JoblogProbe
from probes.joblog.scanner import FAST_ENGINES
from probes.result import JobOutcome, JobRun

JOBS = ("sales_load", "crm_export", "ledger_close")
# Ten patterns: start, success and failure of three jobs, and a generic FATAL failure. The same
# text serves grep (POSIX ERE) and the probe; the probe's copies add named groups.
GREP_PATTERNS = [
    *(p for job in JOBS for p in (
        f"{job} started run=[0-9]+",
        f"{job} finished run=[0-9]+ rc=0",
        f"{job} failed run=[0-9]+ rc=[1-9][0-9]*",
    )),
    "FATAL [a-z]+",
]


def probe_jobs() -> list[dict[str, object]]:
    jobs: list[dict[str, object]] = [
        {
            "name": job,
            "start": f"{job} started run=(?P<run_id>[0-9]+)",
            "success": f"{job} finished run=(?P<run_id>[0-9]+) rc=0",
            "failure": f"{job} failed run=(?P<run_id>[0-9]+) rc=(?P<exit_code>[1-9][0-9]*)",
        }
        for job in JOBS
    ]
    jobs.append({"name": "any", "failure": "FATAL [a-z]+"})
    return jobs


def generate(path: Path, size_mb: int) -> int:
    """Writes about size_mb of log; about 1 line in 10,000 is a failure. Returns lines."""
    rng = random.Random(7)
    target = size_mb * 1024 * 1024
    written = 0
    lines = 0
    run = 0
    words = ["rows", "batch", "commit", "fetch", "upsert", "chunk", "retry", "merge"]
    with path.open("wb") as f:
        while written < target:
            block = []
            for _ in range(10_000):
                lines += 1
                ts = f"2024-05-01T02:{lines // 60000 % 60:02d}:{lines // 1000 % 60:02d}Z"
                roll = rng.random()
                job = JOBS[lines % 3]
                if roll < 0.0001:
                    text = f"{ts} ERROR {job} failed run={run} rc=3"
                elif roll < 0.0003:
                    run += 1
                    text = f"{ts} INFO {job} started run={run}"
                elif roll < 0.0005:
                    text = f"{ts} INFO {job} finished run={run} rc=0"
                else:
                    text = (f"{ts} INFO worker-{lines % 16} {rng.choice(words)} "
                            f"{lines} took {rng.randint(1, 9999)}ms status=ok")
                block.append(text)
            data = ("\n".join(block) + "\n").encode()
            f.write(data)
            written += len(data)
    return lines


def scan(log: Path, state: Path, engines: Sequence[str]) -> dict[str, Any]:
    """One probe run over the whole file, from a fresh state: its figures."""
    config = JoblogConfig.model_validate({
        "name": "bench", "type": "joblog", "paths": [str(log)],
        "jobs": probe_jobs(), "max_bytes_per_run": None,
    })
    shutil.rmtree(state, ignore_errors=True)
    ctx = ProbeContext(ManualClock(datetime(2024, 5, 1, 7, tzinfo=UTC)), state)
    probe = JoblogProbe(config, ctx, scan_engines=engines)
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    cpu0, wall0 = time.process_time(), time.perf_counter()
    output = probe.run()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    runs = [i for i in output.items if isinstance(i, JobRun)]
    return {
        "engine": probe.scan_engine, "wall": wall, "cpu": cpu, "runs": len(runs),
        "failed": sum(1 for r in runs if r.outcome is JobOutcome.FAILED),
        "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0,
    }


def grep_count(log: Path) -> tuple[float, str]:
    grep = shutil.which("grep") or "grep"
    env = {**os.environ, "LC_ALL": "C"}
    grep0 = time.perf_counter()
    counted = subprocess.run(
        [grep, "-cE", "|".join(GREP_PATTERNS), str(log)],
        env=env, capture_output=True, text=True, check=False,
    )
    return time.perf_counter() - grep0, counted.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3, help="runs of the probe and of grep")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / "batch.log"
        lines = generate(log, args.size_mb)
        size = log.stat().st_size
        log.read_bytes()  # warm the page cache for both readers alike
        # Probe and grep alternate, so a slower moment of the shared machine slows both.
        probe_runs, grep_runs = [], []
        for _ in range(args.runs):
            probe_runs.append(scan(log, folder / "state", FAST_ENGINES))
            grep_runs.append(grep_count(log))
        # The engines the probe falls back to, once each.
        fallbacks = [scan(log, folder / "state", engines) for engines in (["re2"], [])]

    walls = sorted(r["wall"] for r in probe_runs)
    greps = sorted(g for g, _ in grep_runs)
    wall, grep_wall = statistics.median(walls), statistics.median(greps)
    first = probe_runs[0]
    print(f"joblog file: {size / 1e6:.1f} MB")
    print(f"joblog lines: {lines} lines")
    print(f"joblog scan engine: {first['engine']}")
    print(f"joblog job runs: {first['runs']} runs")
    print(f"joblog failed runs: {first['failed']} runs")
    print(f"joblog runs measured: {args.runs} runs (medians below)")
    print(f"joblog wall: {wall:.3f} s (range {walls[0]:.3f}-{walls[-1]:.3f})")
    print(f"joblog: {lines / wall:,.0f} lines/s")
    print(f"joblog: {size / 1e6 / wall:.1f} MB/s")
    cpu = statistics.median(r["cpu"] for r in probe_runs)
    print(f"joblog cpu: {cpu / (lines / 1e6):.3f} s per million lines")
    # Minor page faults during the probe's run: fresh read buffers show up here.
    print(f"joblog page faults: {first['faults']} faults")
    print(f"grep matching lines: {grep_runs[0][1]} lines")
    print(f"grep wall: {grep_wall:.3f} s (range {greps[0]:.3f}-{greps[-1]:.3f})")
    print(f"joblog/grep ratio: {wall / grep_wall:.2f} x")
    for fallback in fallbacks:
        name = fallback["engine"]
        print(f"joblog {name} engine: {lines / fallback['wall']:,.0f} lines/s "
              f"({fallback['wall']:.3f} s, {fallback['wall'] / grep_wall:.2f} x grep, "
              f"{fallback['runs']} runs found)")


if __name__ == "__main__":
    main()
