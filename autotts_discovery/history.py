"""Discovery history on disk: ``RUN/rounds/r0001/`` with everything a round produced.

A round is written into a hidden temporary folder and renamed into place as a whole, so a
killed loop leaves only complete rounds; files inside are written atomically too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from autotts_gym.errors import AutoTTSError
from autotts_gym.store import atomic_write

from .rounds import Round

_ROUND = re.compile(r"^r(\d{4,})$")


class NoRun(AutoTTSError):
    """A directory read as a discovery run is not one."""


class History:
    """A run's rounds on disk. ``create=False`` (readers: report, accept) never creates
    anything and raises :class:`NoRun` where there is no run."""

    def __init__(self, run_dir: Path | str, create: bool = True):
        self.run = Path(run_dir)
        self.rounds_dir = self.run / "rounds"
        if not create:
            if not self.rounds_dir.is_dir():
                raise NoRun(f"{self.run}: not a discovery run (no rounds/ folder)")
            return
        self.rounds_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.rounds_dir.glob(".r*.tmp*"):  # a round killed mid-write
            shutil.rmtree(stale, ignore_errors=True)

    def indices(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.rounds_dir.iterdir()
                      if p.is_dir() and (m := _ROUND.match(p.name)))

    def next_index(self) -> int:
        idx = self.indices()
        return (idx[-1] + 1) if idx else 1

    def round_dir(self, k: int) -> Path:
        return self.rounds_dir / f"r{k:04d}"

    def write_round(self, k: int, files: dict[str, Any]) -> Path:
        """Write a whole round at once: str values as text, others as JSON."""
        final = self.round_dir(k)
        if final.exists():
            raise FileExistsError(f"{final}: round {k} exists already")
        tmp = Path(tempfile.mkdtemp(prefix=f".r{k:04d}.tmp", dir=self.rounds_dir))
        try:
            for name, value in files.items():
                text = value if isinstance(value, str) else json.dumps(value, indent=2)
                atomic_write(tmp / name, lambda p, t=text: Path(p).write_text(t))
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def load(self, k: int) -> dict[str, Any]:
        d = self.round_dir(k)
        out: dict[str, Any] = {"index": k, "dir": d}
        for p in d.iterdir():
            out[p.name] = json.loads(p.read_text()) if p.suffix == ".json" else p.read_text()
        return out

    def rounds(self) -> list[dict[str, Any]]:
        return [self.load(k) for k in self.indices()]

    def typed(self) -> list[Round]:
        """Every round as a :class:`~.rounds.Round`."""
        return [Round.from_files(r) for r in self.rounds()]

    def state(self) -> dict:
        """The run's ``state.json`` (empty when absent)."""
        p = self.run / "state.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def write_state(self, state: dict) -> None:
        atomic_write(self.run / "state.json",
                     lambda p: Path(p).write_text(json.dumps(state, indent=2)))
