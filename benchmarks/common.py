"""Shared set-up of the benchmark scripts: the real data imported into a temporary store."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUTOTTS_SHARED", REPO.parent / "shared"))


def real_store_dir() -> Path:
    """Import ``../shared/replay/autotts`` into a fresh temporary store and return it."""
    from autotts_gym.importer import import_sources

    out = Path(tempfile.mkdtemp(prefix="autotts-bench-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    import_sources(SHARED / "replay" / "autotts", out)
    return out
