"""How `daybreak serve` tunes the interpreter it owns: the GIL switch interval and the cyclic
garbage collector. Only the collector's own process calls these (never a library user, never a
test process).

The garbage collector: every result ingested allocates a handful of container objects (its
Result, its metrics dict, its row tuple), freed by reference counting as soon as its batch is
committed. With CPython's default thresholds (a young collection every 700 allocations) that
churn ran thousands of collections a minute, and every few seconds a full one walking the whole
heap: at 20,000 results/s, 2.4 s of collection in a 20 s run, full ones of 80 ms each, stalling
every stream (bench/ingest.py; 0.24 s with the settings below). Objects built at start (modules,
the API, the customers' expectations) live as long as the process: frozen once started, no
collection walks them again.
"""

from __future__ import annotations

import gc
import sys

# The store writer thread gives up the GIL inside SQLite for every statement; with the default
# 5 ms switch interval it then waits up to 5 ms for the event loop to hand it back, many times
# per batch. 0.5 ms took the p99 from a failing result to its incident from about 1 s to 0.6 s
# at 5,000 hosts x 10 checks (bench/incidents.py).
GIL_SWITCH_INTERVAL_S = 0.0005

# A young collection every 50,000 allocations of container objects (twice a second at 20,000
# results/s), an older one every 20 of those, a full one every 100 of those at most (CPython also
# waits until a quarter more objects have survived into the oldest generation).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_interpreter() -> None:
    """Before serving."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_startup_objects() -> None:
    """Once serving: what exists now stays for the process's life; collections skip it from
    here on. Garbage is collected first so that none of it is kept for good. (A customer set
    replaced by a reload is freed by reference counting; cycles in it, if any, stay: a few KiB
    per reload.)"""
    gc.collect()
    gc.freeze()
