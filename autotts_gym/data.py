"""Where replay data comes from: explicit argument > ``AUTOTTS_REPLAY_DIR`` > user cache >
the bundled synthetic default."""

from __future__ import annotations

import os
from pathlib import Path

from .store import ReplayStore, StoreError


def open_store(replay_dir: str | Path | None = None) -> ReplayStore:
    """Open the replay store to use (minimal version: explicit dir or env var)."""
    d = replay_dir or os.environ.get("AUTOTTS_REPLAY_DIR")
    if d is None:
        raise StoreError("no replay data given: pass replay_dir or set AUTOTTS_REPLAY_DIR")
    return ReplayStore(d)
