"""The sandboxed side of a candidate controller: runs in its own process.

Started by :mod:`.sandbox` as ``python -I -m autotts_discovery.child R W`` with two
pipe descriptors. It receives the candidate's code and its limits, locks itself down, then
plays episodes whose every session call is a request to the parent. It never holds a gold
answer, an unrevealed answer or a store path: the parent owns the replay.

Lock-down, in order: its own empty working directory, resource limits (CPU seconds,
address space, file size, open files, processes), a fresh network namespace with no
interfaces (where the kernel allows it), an unprivileged user (when started as root), the
modules a controller may import loaded in advance, and an audit hook that refuses every
file open outside its directory, sockets, subprocesses, forks, exec, ctypes and module
loading from disk from then on.
"""

from __future__ import annotations

import os
import resource
import sys
import types
from multiprocessing.connection import Connection

ALLOWED_IMPORTS = (
    "__future__", "math", "collections", "itertools", "functools", "statistics", "heapq", "bisect",
    "random", "dataclasses", "typing", "fractions", "operator", "autotts_gym.voting",
)
NOBODY = 65534
_BLOCKED_EVENTS = (
    "socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
    "os.fork", "os.forkpty", "os.kill", "os.chmod", "os.chown", "os.link", "os.symlink",
    "os.remove", "os.rename", "os.rmdir", "os.truncate", "os.putenv", "os.unsetenv",
    "ctypes.", "import", "compile", "exec", "sys._getframe", "sys.settrace",
    "sys.setprofile", "gc.get_referrers", "gc.get_objects",
    "gc.get_referents", "pty.", "shutil.", "urllib.", "webbrowser.", "mmap.",
)


class SandboxViolation(RuntimeError):
    """The candidate tried something the sandbox refuses."""


class ProxySession:
    """The session a sandboxed controller sees: every call is a request to the parent."""

    def __init__(self, conn_in: Connection, conn_out: Connection, beta: float):
        self._in, self._out, self._beta = conn_in, conn_out, beta

    def _call(self, name: str, *args):
        self._out.send(("call", name, args))
        status, value = self._in.recv()
        if status == "error":
            raise RuntimeError(value)
        return value

    @property
    def beta(self) -> float:
        return self._beta

    @property
    def tokens(self) -> float:
        return self._call("tokens")

    @property
    def n_opened(self) -> int:
        return self._call("n_opened")

    @property
    def branches_left(self) -> int:
        return self._call("branches_left")

    def open(self):
        return self._call("open")

    def advance(self, branch: int):
        return self._call("advance", int(branch))

    def read(self):
        return self._call("read")

    def probe(self, branch: int):
        return self._call("probe", int(branch))

    def prune(self, branch: int):
        return self._call("prune", int(branch))

    def depth(self, branch: int) -> int:
        return self._call("depth", int(branch))

    def is_finished(self, branch: int) -> bool:
        return self._call("is_finished", int(branch))

    def is_pruned(self, branch: int) -> bool:
        return self._call("is_pruned", int(branch))

    def latest_answer(self, branch: int):
        return self._call("latest_answer", int(branch))


def _limit(kind: int, value: int) -> None:
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):
        pass


def _new_network_namespace() -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(0x40000000) == 0  # CLONE_NEWNET
    except Exception:
        return False


_WINDOW = [False]  # True only while the candidate's own module code is compiled and run


def lock_down(workdir: str, limits: dict) -> dict:
    """Apply every restriction; returns what could be applied."""
    os.chdir(workdir)
    applied = {"netns": _new_network_namespace(), "user": os.getuid()}
    mb = 1024 * 1024
    _limit(resource.RLIMIT_CPU, int(limits["cpu_seconds"]))
    _limit(resource.RLIMIT_AS, int(limits["memory_mb"]) * mb)
    _limit(resource.RLIMIT_FSIZE, int(limits["output_mb"]) * mb)
    _limit(resource.RLIMIT_NPROC, 0 if os.getuid() == 0 else 1)
    _limit(resource.RLIMIT_CORE, 0)
    for name in ALLOWED_IMPORTS:  # while the interpreter's files are still readable
        __import__(name)
    if os.getuid() == 0:
        os.chown(workdir, NOBODY, NOBODY)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        applied["user"] = NOBODY
    real_workdir = os.path.realpath(workdir)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path = args[0]
            if isinstance(path, int):
                return
            full = os.path.realpath(os.fsdecode(path))
            if not (full == real_workdir or full.startswith(real_workdir + os.sep)):
                raise SandboxViolation(f"opening {full} is not allowed")
            return
        if event in ("compile", "exec") and _WINDOW[0]:
            return
        if event == "import" and args and args[0] in sys.modules:
            return  # a module loaded before the lock-down
        if event.startswith(_BLOCKED_EVENTS):
            raise SandboxViolation(f"{event} is not allowed in the sandbox")

    sys.addaudithook(hook)
    return applied


def main() -> None:
    conn_in = Connection(int(sys.argv[1]), writable=False)
    conn_out = Connection(int(sys.argv[2]), readable=False)
    setup = conn_in.recv()
    applied = lock_down(setup["workdir"], setup["limits"])
    module = types.ModuleType("candidate")  # a real module, as dataclasses expect
    sys.modules["candidate"] = module
    namespace = module.__dict__
    try:
        _WINDOW[0] = True
        code = compile(setup["code"], "candidate.py", "exec")
        exec(code, namespace)
        _WINDOW[0] = False
        make = namespace["make_controller"]
    except BaseException as e:
        _WINDOW[0] = False
        conn_out.send(("fatal", f"{type(e).__name__}: {e}"))
        return
    conn_out.send(("ready", applied))
    controllers: dict[float, object] = {}
    while True:
        msg = conn_in.recv()
        if msg[0] == "stop":
            return
        _, beta = msg
        try:
            if beta not in controllers:
                controllers[beta] = make(beta)
            answer = controllers[beta].solve(ProxySession(conn_in, conn_out, beta))
            if answer is not None and not isinstance(answer, str):
                conn_out.send(("bad_return", f"solve returned {type(answer).__name__}"))
            else:
                conn_out.send(("done", answer))
        except MemoryError:
            conn_out.send(("memory", "MemoryError: the memory limit was reached"))
        except SandboxViolation as e:
            conn_out.send(("escape", str(e)))
        except BaseException as e:
            if isinstance(e, RuntimeError) and "is not allowed" in str(e):
                conn_out.send(("escape", str(e)))
            else:
                conn_out.send(("runtime_error", f"{type(e).__name__}: {e}"))


if __name__ == "__main__":
    main()
