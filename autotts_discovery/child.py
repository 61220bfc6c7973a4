"""The jailed side of a sandboxed evaluation (runs as ``/sandbox/child.py`` in the jail).

Started by :mod:`.jail` inside a bubblewrap jail as ``python -I -S -B /sandbox/child.py
CONFIG``. It never holds a gold answer, an unrevealed answer or a store path: the parent
owns every :class:`~autotts_gym.session.Session`.

Two kinds of process, both in the jail:

* The **zygote** (this script's main process) drops to the jail's uid, sets resource
  limits, imports the modules its import statements name (found by parsing the
  candidate's code) that a controller may import, builds the session proxy, and then only
  obeys the parent's control pipe: for each *wave* it forks a worker, and when the parent
  ends the wave it kills and reaps that worker, empties the data pipe from the parent (a
  reply the worker never read) and puts back the data pipes' flags. It never runs
  candidate code, so every worker starts from the same clean state.
* A **worker** installs a stricter seccomp filter (no new processes or threads, no System V
  or POSIX IPC, no signals to other processes, no changes to another process's limits or
  scheduling or to the shared pipes' owner, signal or size), loads the candidate once and
  plays its wave's episodes, each with a fresh controller, in ``lanes`` greenlets; the
  session calls of a group of lanes go to the parent in one message and come back in one
  reply (JSON lines over the data pipes).

A wave holds at most one episode of any problem, and a worker lives for one wave only, so
no episode can meet anything an episode of the same problem left behind: the memory,
files (the file system is read-only) and kernel objects of the process that ran it are
gone before the next wave starts. Episodes of one wave (different problems) share the
candidate's module, as they would in one in-process run.

Standard library, greenlet, orjson (when mounted) and ``autotts_gym``'s pure-Python
modules only: this file is executed in the jail, where nothing else is mounted.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import sys
import time
from collections.abc import Callable
from functools import partial

MB = 1024 * 1024
SPIN_SECONDS = 0.002
"""How long a read retries before it sleeps: waking a sleeping reader costs far more."""


def spin_until(ready: Callable[[], object], seconds: float = SPIN_SECONDS) -> bool:
    """Probe ``ready`` until it is true or ``seconds`` have passed (whether it became
    true), yielding the CPU every 8 probes: on a busy machine, whoever waits for this CPU
    runs."""
    until = time.perf_counter() + seconds
    spins = 0
    while not ready():
        spins += 1
        if not spins & 7:
            if time.perf_counter() > until:
                return False
            os.sched_yield()
    return True


class SessionError(RuntimeError):
    """A session call the parent refused (bad branch, nothing left, ...)."""


def _limit(kind: int, value: int) -> None:
    resource.setrlimit(kind, (value, value))


def lock_down(cfg: dict) -> None:
    uid = int(cfg["uid"])
    if os.getuid() == 0:  # the jail was set up as its namespace's root: drop for good
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SystemExit(f"jail: running as uid {os.getuid()}, expected {uid}")
    cpu = int(cfg["cpu_seconds"])  # SIGXCPU (reported as a timeout) before SIGKILL
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    _limit(resource.RLIMIT_AS, int(cfg["memory_mb"]) * MB)
    _limit(resource.RLIMIT_FSIZE, int(cfg["output_mb"]) * MB)
    _limit(resource.RLIMIT_NOFILE, 64)
    _limit(resource.RLIMIT_CORE, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write raises instead
    os.chdir(cfg["workdir"])
    sys.path.append(cfg["lib"])


def codec():
    """(encode to bytes, decode from bytes): orjson where the jail has it, else json."""
    try:
        import orjson

        return orjson.dumps, orjson.loads
    except ImportError:
        encode = json.JSONEncoder(separators=(",", ":")).encode
        return (lambda obj: encode(obj).encode()), json.loads


class Channel:
    """JSON lines over two pipe fds. The input is non-blocking: a read spins briefly
    before it sleeps (see :data:`SPIN_SECONDS`)."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self._in, self._out = in_fd, out_fd
        os.set_blocking(in_fd, False)
        self._buf = b""
        self._poll = select.poll()
        self._poll.register(in_fd, select.POLLIN)
        self._encode, self._decode = codec()

    def send(self, msg: dict) -> None:
        data = self._encode(msg) + b"\n"
        while data:
            data = data[os.write(self._out, data):]

    def _wait(self, spin: bool) -> None:
        """Until the input is readable: spin (a zero-timeout poll, see :func:`spin_until`)
        if ``spin``, then sleep in ``poll``."""
        if not (spin and spin_until(partial(self._poll.poll, 0))):
            self._poll.poll()

    def pending(self) -> bool:
        """Whether a whole message waits in the buffer (a poll would not see it)."""
        return b"\n" in self._buf

    def recv(self, spin: bool = True) -> dict:
        end = self._buf.find(b"\n")
        while end < 0:
            try:  # (read first: a busy worker nearly always finds its reply there)
                chunk = os.read(self._in, 1 << 16)
            except BlockingIOError:
                self._wait(spin)
                continue
            if not chunk:
                raise SystemExit(0)  # the parent closed the channel
            self._buf += chunk
            end = self._buf.find(b"\n")
        line, self._buf = self._buf[:end], self._buf[end + 1:]
        return self._decode(line)


# ----------------------------------------------------------------------------- worker


def make_proxy(methods: tuple[str, ...], arity: dict[str, int], widths: dict[str, int]):
    """The session class a jailed controller sees: the contract's methods forward to the
    parent (by index); ``tokens``, ``n_opened`` and ``branches_left`` come with each reply
    (``ok, tokens, n_opened`` and the result's fields, see :mod:`.sandbox`)."""
    from operator import index

    def forward(m: int, name: str, n_args: int, w: int):
        if n_args == 0:
            def call(self):
                r = self._call((self._ep, m, 0))
                self._tokens, self._n = r[1], r[2]
                if not r[0]:
                    raise SessionError(r[3])
                return r[3] if not w else None if r[3] is None else r[3:3 + w]
        else:
            def call(self, branch):
                r = self._call((self._ep, m, index(branch)))
                self._tokens, self._n = r[1], r[2]
                if not r[0]:
                    raise SessionError(r[3])
                return r[3] if not w else None if r[3] is None else r[3:3 + w]
        call.__name__ = name
        return call

    ns: dict = {"__slots__": ("_beta", "_call", "_ep", "_n", "_tokens", "_total"),
                "beta": property(lambda self: self._beta),
                "tokens": property(lambda self: self._tokens),
                "n_opened": property(lambda self: self._n),
                "branches_left": property(lambda self: self._total - self._n)}
    for m, name in enumerate(methods):
        ns[name] = forward(m, name, arity[name], widths.get(name, 0))

    def init(self, ep: int, beta: float, state: list, call) -> None:
        self._ep, self._beta, self._call = ep, beta, call  # call: the hub's switch
        self._tokens, self._n, self._total = state

    ns["__init__"] = init
    return type("Session", (), ns)


def _error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"[:2000]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")  # (lone surrogates)


class Failure(Exception):
    def __init__(self, kind: str, ep: int | None, message: str):
        super().__init__(message)
        self.kind, self.ep, self.message = kind, ep, message


def filter_installer(bpf: bytes):
    """A function that adds the worker's seccomp filter (a BPF program compiled by the
    parent) to the calling process; filters only ever add up, so the jail's own filter
    still applies. Prepared once in the zygote, called first thing in each worker."""
    import ctypes

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = SockFprog(len(bpf) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_seccomp, seccomp_mode_filter = 22, 2

    def install() -> None:
        if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(prog), 0, 0) != 0:
            raise SystemExit(f"jail: the worker's seccomp filter failed "
                             f"(errno {ctypes.get_errno()})")

    install.keep = (buf, prog)  # type: ignore[attr-defined]
    return install


def worker(cfg: dict, init: dict, wave: dict, add_filter, code, proxy: type) -> None:
    """One wave in this (forked) process: load the candidate, play, exit."""
    for fd in (cfg["ctl_in"], cfg["ctl_out"]):
        os.close(fd)  # the control pipes are the zygote's alone
    add_filter()
    chan = Channel(cfg["in_fd"], cfg["out_fd"])
    try:
        if isinstance(code, BaseException):
            raise code
        spec = _load(cfg, init, code)
    except MemoryError:
        chan.send({"t": "fail", "kind": "memory", "ep": None, "msg": "MemoryError on load"})
        return
    except BaseException as e:  # noqa: BLE001 (whatever loading the candidate raises)
        chan.send({"t": "fail", "kind": "load", "ep": None, "msg": _error(e)})
        return
    chan.send({"t": "ready"})
    try:
        play(chan, spec, wave, cfg, proxy)
    except Failure as f:
        chan.send({"t": "fail", "kind": f.kind, "ep": f.ep, "msg": f.message})


def prepare_candidate(cfg: dict):
    """In the zygote, once: the candidate's code object, or the error reading or compiling
    it raised (each worker reports it as a load failure). Parsing and compiling run none of
    the code. On the way, import the modules its import statements name that a controller
    may import (``cfg["shared"]`` and their submodules, such as ``scipy.stats``), so each
    worker finds them loaded instead of importing them again for every wave."""
    import ast

    path = os.path.join(cfg["workdir"], "candidate.py")
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        code = compile(tree, path, "exec")
    except (SyntaxError, ValueError, OSError, UnicodeDecodeError, RecursionError,
            MemoryError) as e:
        return e
    _preload(tree, tuple(cfg["shared"]))
    return code


def _preload(tree, allowed: tuple[str, ...]) -> None:
    import ast
    import importlib

    def typing_only(node) -> bool:  # ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)
        test = node.test if isinstance(node, ast.If) else None
        return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")

    names: list[str] = []
    todo = [tree]
    while todo:  # (ast.walk, without the bodies of ``if TYPE_CHECKING:``: never imported)
        node = todo.pop()
        if typing_only(node):
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]  # a submodule, maybe
    for name in dict.fromkeys(names):
        if name in allowed or name.startswith(tuple(f"{a}." for a in allowed)):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 (not a module, or not importable: the worker says)
                pass


def _load(cfg: dict, init: dict, code):
    import types

    from autotts_gym.controllers import load_controller

    path = os.path.join(cfg["workdir"], "candidate.py")
    module = types.ModuleType("candidate")
    module.__file__ = path
    sys.modules["candidate"] = module  # while its body runs (dataclasses look it up)
    exec(code, vars(module))  # the candidate's code, jailed
    return load_controller(module, name="candidate", config=init.get("config") or None,
                           cls=init.get("cls"))


def play(chan: Channel, spec, wave: dict, cfg: dict, proxy: type) -> None:
    """The wave's episodes in up to ``lanes`` greenlets, each with a fresh controller (and
    a ``proxy`` session, see :func:`make_proxy`), split in two groups so that one group
    runs while the parent serves the other's calls."""
    from itertools import chain

    import greenlet

    from autotts_gym.contracts import reply_width

    beta, states = float(wave["beta"]), wave["states"]
    width = reply_width()
    cap = int(cfg["max_answer_chars"])
    todo = list(range(len(states)))[::-1]
    hub = greenlet.getcurrent()
    done: list = []

    def lane() -> None:
        while todo:
            ep = todo.pop()
            answer = _episode(spec, beta, proxy(ep, beta, states[ep], hub.switch), ep, cap)
            done.append([ep, answer])  # (``done`` is a new list after each flush)

    n_lanes = min(int(cfg["lanes"]), len(todo))
    lanes = [greenlet.greenlet(lane) for _ in range(n_lanes)]
    groups: list[list] = [lanes, []]  # each group's lanes, in the order of their calls
    held: list[list] = [[], []]  # (lane, call) moved to a group, sent with its next batch
    active = [False, False]  # a batch of the group is with the parent

    def send(g: int, group: list, calls: list) -> None:
        nonlocal done
        groups[g], active[g] = group, bool(calls)
        chan.send({"t": "batch", "g": g, "calls": list(chain.from_iterable(calls)),
                   "done": done})
        done = []

    def share(g: int, n: int) -> int:
        """How many of group g's ``n`` calls go to the other group: half of them to an idle
        group, to a busy one enough to make the two about equal."""
        h = 1 - g
        if not active[h]:
            return n // 2
        return max(0, (n - len(groups[h]) - len(held[h])) // 2)

    def flush(g: int, pending: list) -> None:
        """Send group g's calls (a lane that ended handed back None), keeping both groups
        in flight and about equal (see ``share``): an idle group gets its share now, a
        busy one with its next batch."""
        if None in pending:
            group = [lane_ for lane_, c in zip(groups[g], pending, strict=True) if c is not None]
            calls = [c for c in pending if c is not None]
        else:
            group, calls = groups[g], pending
        if held[g]:
            group = group + [lane_ for lane_, _ in held[g]]
            calls = calls + [c for _, c in held[g]]
            held[g] = []
        h = 1 - g
        k = share(g, len(calls))
        if k and not active[h]:
            send(h, group[k:], calls[k:])
            group, calls = group[:k], calls[:k]
        elif k:
            held[h] += zip(group[-k:], calls[-k:], strict=True)
            group, calls = group[:-k], calls[:-k]
        send(g, group, calls)

    if lanes:
        flush(0, [lane_.switch() for lane_ in lanes])  # (group 1 gets half of them)
    recv = chan.recv
    while active[0] or active[1]:
        reply = recv()
        g = reply.get("g")
        if reply.get("t") != "r" or g not in (0, 1) or not active[g]:
            raise SystemExit(0)
        fields = iter(reply["r"])
        replies = zip(*[fields] * width, strict=False)  # one tuple per call, in order
        pending = [lane_.switch(r) for lane_, r in zip(groups[g], replies, strict=False)]
        if None in pending or held[g] or share(g, len(pending)):
            flush(g, pending)
        else:  # every lane called again and the groups stay balanced: as they were
            send(g, groups[g], pending)


def _episode(spec, beta: float, session, ep: int, cap: int) -> str | None:
    """One episode with a fresh controller; its answer, checked."""
    import greenlet

    from autotts_gym.controllers import instantiate

    try:
        ctl = instantiate(spec, beta)
    except MemoryError:
        raise Failure("memory", ep, "MemoryError on load") from None
    except BaseException as e:  # whatever the candidate raises
        if isinstance(e, greenlet.GreenletExit):
            raise
        raise Failure("load", ep, _error(e)) from None
    try:
        answer = ctl.solve(session)
    except MemoryError:
        raise Failure("memory", ep, "MemoryError in solve") from None
    except BaseException as e:
        if isinstance(e, greenlet.GreenletExit):
            raise
        raise Failure("runtime_error", ep, f"solve raised {_error(e)}") from None
    if answer is None:
        return None
    if not isinstance(answer, str):
        raise Failure("bad_return", ep, f"solve returned {type(answer).__name__}, expected "
                      "a string or None")
    answer = str.__str__(answer)  # a plain str, whatever the subclass does
    if len(answer) > cap:
        raise Failure("bad_return", ep, f"an answer of {len(answer)} characters (at most "
                      f"{cap})")
    try:
        answer.encode("utf-8")
    except UnicodeEncodeError:
        raise Failure("bad_return", ep, "an answer that is not valid Unicode text") from None
    return answer


# ----------------------------------------------------------------------------- zygote


def _status(status: int) -> int:
    """An exit code, or minus the signal that ended the process."""
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _clean_data_pipes(cfg: dict, flags: dict[int, int]) -> None:
    """After a worker is gone: drop whatever it left unread on the data pipe from the
    parent (a reply it never read must not reach the next worker) and put back the flags
    of both data pipes (shared with every worker, so they could carry bits)."""
    import fcntl

    for fd, fl in flags.items():
        fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK if fd == cfg["in_fd"] else fl)
    while True:
        try:
            if not os.read(cfg["in_fd"], 1 << 16):
                break
        except BlockingIOError:
            break
    for fd, fl in flags.items():
        fcntl.fcntl(fd, fcntl.F_SETFL, fl)


def serve(cfg: dict, ctl: Channel, init: dict, bpf: bytes, compiled, proxy: type) -> None:
    """Obey the control pipe: a worker per wave, killed and reaped when the wave ends."""
    import fcntl

    add_filter = filter_installer(bpf)
    flags = {fd: fcntl.fcntl(fd, fcntl.F_GETFL) for fd in (cfg["in_fd"], cfg["out_fd"])}
    while True:
        msg = ctl.recv(spin=False)
        if msg.get("t") != "wave":
            return
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                worker(cfg, init, msg, add_filter, compiled, proxy)
            except SystemExit as e:
                if isinstance(e.code, str):
                    sys.stderr.write(e.code + "\n")
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:  # noqa: BLE001 (the worker's own end: a crash)
                code = 1
            os._exit(code)
        pidfd = os.pidfd_open(pid)
        poll = select.poll()
        poll.register(cfg["ctl_in"], select.POLLIN)
        poll.register(pidfd, select.POLLIN)
        alive = True
        while True:
            ready = {cfg["ctl_in"]} if ctl.pending() else {fd for fd, _ in poll.poll()}
            if alive and pidfd in ready:
                _, status = os.waitpid(pid, 0)
                alive = False
                poll.unregister(pidfd)
                ctl.send({"t": "exit", "code": _status(status)})
            if cfg["ctl_in"] in ready:
                end = ctl.recv(spin=False)
                if end.get("t") != "end":
                    return
                if alive:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                os.close(pidfd)
                _clean_data_pipes(cfg, flags)
                ctl.send({"t": "reaped"})
                break


def main() -> None:
    cfg = json.loads(sys.argv[1])
    lock_down(cfg)
    with os.fdopen(cfg["filter_fd"], "rb") as f:
        bpf = f.read(1 << 20)
    import greenlet  # noqa: F401

    import autotts_gym.baselines  # (the registry the controller loader reads)
    import autotts_gym.controllers  # noqa: F401
    from autotts_gym.contracts import SESSION_METHODS, result_widths, session_arity

    proxy = make_proxy(SESSION_METHODS, session_arity(), result_widths())
    compiled = prepare_candidate(cfg)
    import gc

    gc.collect()
    gc.freeze()  # what is loaded now is never scanned again: fewer pages copied per worker
    ctl = Channel(cfg["ctl_in"], cfg["ctl_out"])
    init = ctl.recv(spin=False)
    if init.get("t") != "init":
        return
    serve(cfg, ctl, init, bpf, compiled, proxy)


if __name__ == "__main__":
    try:
        main()
    finally:  # what the jail cost, for the parent's record (stderr)
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the reaped workers
        cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        sys.stderr.write(f"\nautotts-jail-cpu {cpu:.3f}\n")
