"""The committed generated code is exactly what protos/generate.py makes from stream.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "protos" / "daybreak" / "v1"


def test_generated_code_matches_the_proto_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "protos" / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = {p.name: p.read_text() for p in (tmp_path / "daybreak" / "v1").iterdir()}
    assert fresh, "protos/generate.py produced nothing"
    stale = [name for name, text in fresh.items() if (GENERATED / name).read_text() != text]
    assert not stale, f"stale generated code {stale}: run `python protos/generate.py`"
    committed = {p.name for p in GENERATED.iterdir() if p.name.endswith((".py", ".pyi"))}
    leftovers = committed - fresh.keys() - {"__init__.py"}
    assert not leftovers, f"generated files without a .proto: {sorted(leftovers)}"


def test_the_wire_package_is_daybreak_v1() -> None:
    from daybreak.v1 import stream_pb2

    assert stream_pb2.DESCRIPTOR.package == "daybreak.v1"
