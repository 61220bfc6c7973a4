"""One run directory, one writer.

``with RunLock(run_dir, "train"):`` creates ``run_dir/.lock`` holding the holder's pid and
command. A second writer gets :class:`RunLockedError` naming the holder. A lock left by a
process that no longer exists is taken over, with a message on stderr.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from types import TracebackType

from .errors import AutoTTSError

LOCK_NAME = ".lock"


class RunLockedError(AutoTTSError):
    """The run directory is being written by another live process."""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive, pid-stamped lock file in a run directory (created if missing)."""

    def __init__(self, run_dir: Path | str, command: str = "autotts"):
        self.path = Path(run_dir) / LOCK_NAME
        self.command = command
        self._held = False

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"pid": os.getpid(), "command": self.command}).encode()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and _alive(holder.get("pid", -1)):
                    raise RunLockedError(
                        f"{self.path.parent}: in use by pid {holder['pid']} "
                        f"({holder.get('command', '?')}); wait for it or use another --out"
                    ) from None
                print(f"{self.path.parent}: taking over a stale lock "
                      f"(pid {holder.get('pid') if holder else '?'} is gone)", file=sys.stderr)
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            except OSError as e:
                if e.errno in (errno.EACCES, errno.EROFS, errno.ENOTDIR):
                    raise AutoTTSError(f"{self.path.parent}: cannot write there "
                                       f"({e.strerror})") from None
                raise
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            self._held = True
            return self
        raise RunLockedError(f"{self.path.parent}: could not take the lock")

    def _holder(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def release(self) -> None:
        if self._held:
            self._held = False
            holder = self._holder()
            if holder is None or holder.get("pid") == os.getpid():
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
