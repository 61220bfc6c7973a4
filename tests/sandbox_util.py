"""Helpers of the sandbox tests: controller builders, leftover checks, a readable store."""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest

MARKERS = [Path(d) / "autotts_redteam_marker" for d in ("/tmp", "/var/tmp", "/dev/shm")]


def ctl(body: str, head: str = "") -> str:
    """A controller module whose solve runs ``body`` (which may return)."""
    body = textwrap.dedent(body).strip("\n")
    return (textwrap.dedent(head).strip("\n") + "\n\n\nclass C:\n    def solve(self, session):\n"
            + textwrap.indent(body, " " * 8) + "\n\n\ndef make_controller(beta):\n"
            "    return C()\n")


def peek(attempt: str, head: str = "") -> str:
    """A controller that returns whatever ``attempt`` put in ``found`` (or why it failed)."""
    attempt = textwrap.dedent(attempt).strip("\n")
    return ctl("found = None\ntry:\n" + textwrap.indent(attempt, "    ")
               + "\nexcept BaseException as e:\n    found = 'blocked: ' + type(e).__name__\n"
               "return str(found)[:200] if found else 'nothing'\n", head)


def jail_processes() -> list[int]:
    """Pids of jailed children (or bwrap) alive on the host."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if b"/sandbox/child.py" in cmd:
            out.append(int(d.name))
    return out


def assert_nothing_left(before: set[int], seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        left = [p for p in jail_processes() if p not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"jail processes left behind: {left}"
    for m in MARKERS:
        assert not m.exists(), f"{m} was written"


def readable_copy(src: Path, dest: Path) -> Path:
    """A world-readable copy of a store (dirs 0755, files 0644), as the issue's attacker
    found it."""
    shutil.copytree(src, dest)
    for root, _dirs, files in os.walk(dest):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    os.chmod(dest.parent, 0o755)
    return dest


def need_jail() -> None:
    from autotts_discovery.jail import _probe

    reason = _probe()
    if reason is not None:
        pytest.skip(reason)
