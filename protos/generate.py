"""Regenerate the Python code for the wire contract: the only way generated code changes.

    python protos/generate.py            # rewrite protos/daybreak/v1/*_pb2*.py(i)
    python protos/generate.py --out DIR  # write elsewhere (the staleness test compares)

Imports in the generated code are `from daybreak.v1 import ...`; pyproject.toml installs
`protos/daybreak` as the package `daybreak`, so they resolve unedited.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

PROTOS_ROOT = Path(__file__).resolve().parent
PROTO_FILES = sorted((PROTOS_ROOT / "daybreak" / "v1").glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Compile every .proto under daybreak/v1 into out_root/daybreak/v1; return the files."""
    from grpc_tools import protoc  # dev dependency, imported only here

    out_root.mkdir(parents=True, exist_ok=True)
    # mypy-protobuf's plugins sit beside this interpreter, which need not be on PATH.
    bin_dir = Path(sys.executable).parent
    args = [
        "protoc",
        f"-I{PROTOS_ROOT}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *[str(p.relative_to(PROTOS_ROOT)) for p in PROTO_FILES],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generated = (out_root / "daybreak" / "v1").iterdir()
    return sorted(p for p in generated if p.suffix in {".py", ".pyi"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write here instead of in place")
    args = parser.parse_args()
    if args.out:
        generate(args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            shutil.copy(path, PROTOS_ROOT / "daybreak" / "v1" / path.name)
    sys.stdout.write("regenerated protos/daybreak/v1\n")


if __name__ == "__main__":
    main()
