from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector.store.schema import metadata


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sa.Engine]:
    """A real SQLite file with the store's tables."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'daybreak.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()
