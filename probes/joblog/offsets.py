"""The joblog probe's persisted state: file positions and open job runs, in one JSON file.

Written atomically (temp file, fsync, rename, fsync of the folder), so a crash leaves either the
old state or the new one, never half of each. Only `ProbeOutput.commit` writes it: the agent
calls that once the run's items are in the spool, so a crash re-reads rather than loses.
The document's shape (`state_document` / `state_from_document`) is also the state the SSH
poller keeps for the joblog SSH form.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog

from probes.joblog.tailer import FilePosition

log = structlog.get_logger(__name__)

STATE_VERSION = 1
STATE_FILE_NAME = "joblog-state.json"


def state_document(positions: dict[str, FilePosition], jobs: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able state: positions and the matcher's own state (opaque here)."""
    return {
        "version": STATE_VERSION,
        "files": [asdict(p) for p in positions.values()],
        "jobs": jobs,
    }


def state_from_document(raw: object) -> tuple[dict[str, FilePosition], dict[str, Any]] | None:
    """Positions by file key and the matcher's state; None when the document is not ours."""
    if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
        return None
    positions: dict[str, FilePosition] = {}
    files = raw.get("files", [])
    for item in files if isinstance(files, list) else []:
        try:
            pos = FilePosition(**item)
        except TypeError:
            continue
        positions[pos.key] = pos
    jobs = raw.get("jobs", {})
    return positions, jobs if isinstance(jobs, dict) else {}


class OffsetStore:
    def __init__(self, state_dir: Path, probe_name: str) -> None:
        self.path = state_dir / f"{probe_name}.{STATE_FILE_NAME}"

    def load(self) -> tuple[dict[str, FilePosition], dict[str, Any]]:
        """Positions by file key, and the matcher's own state (opaque here)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}, {}
        except (OSError, ValueError) as exc:
            # A damaged state file costs re-reading, never a probe that cannot start.
            log.warning("joblog.state_unreadable", path=str(self.path), error=str(exc))
            return {}, {}
        state = state_from_document(raw)
        if state is None:
            log.warning("joblog.state_version_unknown", path=str(self.path))
            return {}, {}
        return state

    def save(self, positions: dict[str, FilePosition], jobs: dict[str, Any]) -> None:
        document = state_document(positions, jobs)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(document, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
