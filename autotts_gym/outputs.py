"""Output directories, checked before the work starts.

:func:`check_out` fails at once, naming the path, when a directory cannot be written (it is
a file, lies under a file, or its nearest existing folder is not writable), so that a long
evaluation never ends in a failed write. :func:`prepare_out` also creates the directory and
holds its :class:`~autotts_gym.runlock.RunLock` (one writer per output directory)::

    with prepare_out(args.out, "eval"):
        ...  # evaluate, then write into args.out
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError
from .runlock import RunLock


class OutputError(UsageError):
    """An output path that cannot be written; the message names the flag and the path."""


def check_out(path: Path | str, flag: str = "--out") -> Path:
    """``path`` as a :class:`Path` if it can be an output directory, else :class:`OutputError`.

    Nothing is created. The nearest existing folder is probed with a temporary file, so a
    read-only mount or a missing permission is found even when running as root.
    """
    if str(path).strip() == "":
        raise OutputError(f"{flag}: empty path")
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise OutputError(f"{flag} {p}: is a file, not a directory")
    probe = p
    while not probe.exists():
        parent = probe.parent
        if parent == probe:
            break
        probe = parent
    if probe != p and not probe.is_dir():
        raise OutputError(f"{flag} {p}: {probe} is a file, not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".autotts-probe-", dir=probe)
    except OSError as e:
        why = {errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device",
               errno.EDQUOT: "disk quota exceeded"}.get(e.errno or 0, e.strerror or str(e))
        raise OutputError(f"{flag} {p}: cannot write in {probe} ({why})") from None
    os.close(fd)
    os.unlink(tmp)
    return p


@contextmanager
def prepare_out(path: Path | str, command: str = "autotts", flag: str = "--out",
                lock: bool = True) -> Iterator[Path]:
    """Check ``path`` (:func:`check_out`), create it, and hold its run lock while the
    block runs (``lock=False``: check and create only)."""
    p = check_out(path, flag)
    created = not p.exists()
    try:
        if not lock:
            p.mkdir(parents=True, exist_ok=True)
            yield p
            return
        with RunLock(p, command):
            yield p
    except BaseException:
        if created:  # a run that failed before writing anything leaves no empty folder
            try:
                p.rmdir()
            except OSError:
                pass
        raise
