"""Shared fixtures: the real AutoTTS replay data from ``../shared/replay`` beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUTOTTS_SHARED", REPO.parent / "shared"))
REPLAY_JSON = SHARED / "replay" / "autotts"
REFERENCE_TABLE = SHARED / "reference" / "table1.csv"


def _require_shared() -> None:
    if not REPLAY_JSON.is_dir():
        pytest.fail(
            f"real replay data not found at {REPLAY_JSON}; put the shared folder beside the "
            "repository or set AUTOTTS_SHARED"
        )


@pytest.fixture(scope="session")
def replay_json_dir() -> Path:
    _require_shared()
    return REPLAY_JSON


@pytest.fixture(scope="session")
def real_store_dir(tmp_path_factory, replay_json_dir) -> Path:
    """The real data imported once into an HDF5 store for the whole test session."""
    from autotts_gym.importer import import_sources

    out = tmp_path_factory.mktemp("real_store")
    import_sources(replay_json_dir, out)
    return out


@pytest.fixture(scope="session")
def real_store(real_store_dir):
    from autotts_gym.store import ReplayStore

    return ReplayStore(real_store_dir)


@pytest.fixture(scope="session")
def reference_rows() -> list[dict]:
    import csv

    _require_shared()
    with open(REFERENCE_TABLE, newline="") as f:
        return list(csv.DictReader(f))
