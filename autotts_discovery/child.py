"""The jailed side of a sandboxed evaluation (runs as ``/sandbox/child.py`` in the jail).

Started by :mod:`.jail` inside a bubblewrap jail as ``python -I -S -B /sandbox/child.py
CONFIG``; it talks to the parent over two pipes (fds named in CONFIG) in JSON lines and never holds
a gold answer, an unrevealed answer or a store path: the parent owns every
:class:`~autotts_gym.session.Session`.

Steps: drop to the jail's own uid (when the jail's setup ran as the namespace's root),
set resource limits, load the candidate with :func:`autotts_gym.controllers.load_controller`
from a file in the work directory (``FILE.py:CLASS`` and its config come as data), then
play the episodes the parent names. Episodes run in ``lanes`` greenlets; the session calls
of all lanes go to the parent in one message and come back in one reply.

No episode sees what another wrote (:class:`Fresh`): each starts from a fresh module
namespace (the candidate's code, compiled once, executed again into a new module object
that is never put in ``sys.modules``) and a fresh controller, with the shared state a
controller can reach by plain means restored (the global RNGs of ``random`` and
``numpy.random``, the top-level namespaces of ``builtins`` and the modules a controller may
import, foreign ``sys.modules`` entries, ``os.environ``); the work directory is not
writable once the candidate is loaded. Episodes of one problem never run at the same time:
a unit is played in waves (the parent names each episode's wave; one episode per problem
in a wave), and a wave starts when the previous one has ended.

Standard library, greenlet and ``autotts_gym``'s pure-Python modules only: this file is
executed in the jail, where nothing else is mounted.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from operator import is_

MB = 1024 * 1024


class SessionError(RuntimeError):
    """A session call the parent refused (bad branch, nothing left, ...)."""


def _limit(kind: int, value: int) -> None:
    resource.setrlimit(kind, (value, value))


def lock_down(cfg: dict) -> None:
    uid = int(cfg["uid"])
    if os.getuid() == 0:  # the jail was set up as its namespace's root: drop for good
        os.chown(cfg["workdir"], uid, uid)
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


class Channel:
    """JSON lines over two pipe fds."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self._in = os.fdopen(in_fd, "rb", buffering=1 << 16)
        self._out = out_fd

    def send(self, msg: dict) -> None:
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        while data:
            data = data[os.write(self._out, data):]

    def recv(self) -> dict:
        line = self._in.readline()
        if not line:
            raise SystemExit(0)  # the parent closed the channel
        return json.loads(line)


def make_proxy(methods: tuple[str, ...], properties: tuple[str, ...], arity: dict):
    """The session class a jailed controller sees, derived from the contract's lists."""
    from operator import index

    def forward(name: str, n_args: int):
        def unpack(self, args: list):
            ok, value, state = self._hub.switch((self._ep, name, args))
            self._state = state
            if not ok:
                raise SessionError(value)
            return tuple(value) if type(value) is list else value

        if n_args == 0:
            def call(self):
                return unpack(self, [])
        else:
            def call(self, branch):
                return unpack(self, [index(branch)])
        call.__name__ = name
        return call

    def prop(i: int):
        return property(lambda self: self._state[i])

    ns: dict = {"__slots__": ("_ep", "_hub", "_state", "_beta"),
                "beta": property(lambda self: self._beta)}
    for name in methods:
        ns[name] = forward(name, arity[name])
    for i, name in enumerate(p for p in properties if p != "beta"):
        ns[name] = prop(i)

    def init(self, ep: int, beta: float, state: list, hub) -> None:
        self._ep, self._beta, self._state, self._hub = ep, beta, state, hub

    ns["__init__"] = init
    return type("Session", (), ns)


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:2000]


class Failure(Exception):
    def __init__(self, kind: str, ep: int | None, message: str):
        super().__init__(message)
        self.kind, self.ep, self.message = kind, ep, message


_MISSING = object()


class Fresh:
    """Per episode: the shared state restored, then a fresh module and controller."""

    def __init__(self, code: str, path: str, cls: str | None, config: dict | None,
                 shared: list[str]) -> None:
        import random
        import types

        from autotts_gym.controllers import instantiate, load_controller

        self._code = compile(code, path, "exec")
        self._path, self._cls, self._config = path, cls, config or None
        self._load, self._instantiate, self._module = load_controller, instantiate, \
            types.ModuleType
        self._workdir = os.path.dirname(path)
        self._random = random
        self._np_random = sys.modules.get("numpy.random")
        self._rng = random.getstate()
        self._np_rng = self._np_random.get_state() if self._np_random else None
        self._environ = dict(os.environ)
        self._watched: dict[str, tuple[dict, dict]] = {}
        self._n_modules = 0
        self._watch(init=True)
        self._checked = [_Snapshot(*self._watched[n]) for n in ("builtins", *shared)
                         if n in self._watched]  # compared entry by entry
        import gc

        self._gc = gc
        gc.collect()
        gc.freeze()  # what is loaded now is never scanned again: collecting stays cheap

    def _watch(self, init: bool = False) -> None:
        """Snapshot the namespace of every module not seen yet; drop ``sys.modules``
        entries that are not modules loaded from a spec (a place to stash state)."""
        for name, mod in list(sys.modules.items()):
            if name in self._watched:
                continue
            if not isinstance(mod, self._module) or getattr(mod, "__spec__", None) is None:
                if not init:
                    del sys.modules[name]
                continue
            d = vars(mod)
            self._watched[name] = (d, dict(d))
        self._n_modules = len(sys.modules)

    def reset(self) -> None:
        """Restore what an earlier episode may have written (cheap when it wrote nothing)."""
        if len(sys.modules) != self._n_modules:
            self._watch()
        for c in self._checked:
            c.check()
        for d, snap in self._watched.values():
            if len(d) != len(snap):
                _restore(d, snap)
        self._random.setstate(self._rng)
        if self._np_random is not None:
            self._np_random.set_state(self._np_rng)
        if os.environ != self._environ:
            os.environ.clear()
            os.environ.update(self._environ)
        _seal(self._workdir, os.path.basename(self._path))
        self._gc.collect()  # an earlier episode's module and objects: gone, not just unused

    def controller(self, beta: float):
        self.reset()
        module = self._module("candidate")
        module.__file__ = self._path
        sys.modules["candidate"] = module  # while its body runs (dataclasses look it up)
        try:
            exec(self._code, vars(module))  # the candidate's code, jailed
        finally:
            sys.modules.pop("candidate", None)
        spec = self._load(module, name="candidate", config=self._config, cls=self._cls)
        return self._instantiate(spec, beta)


class _Snapshot:
    """A namespace and its snapshot, compared by identity at C speed (same keys, then
    every value the very object it was)."""

    __slots__ = ("d", "keys", "snap", "values")

    def __init__(self, d: dict, snap: dict) -> None:
        self.d, self.snap = d, snap
        self._refresh()

    def _refresh(self) -> None:
        self.keys, self.values = tuple(self.snap), tuple(self.snap.values())

    def check(self) -> None:
        d = self.d
        if (len(d) != len(self.snap) or d.keys() != self.snap.keys()
                or not all(map(is_, map(d.__getitem__, self.keys), self.values))):
            _restore(d, self.snap)
            self._refresh()


def _restore(d: dict, snap: dict) -> None:
    name = snap.get("__name__")
    for k in [k for k in d if k not in snap]:
        v = d[k]
        if isinstance(name, str) and sys.modules.get(f"{name}.{k}") is v:
            snap[k] = v  # a submodule imported since (``import pkg.sub`` binds it)
        else:
            del d[k]
    for k, v in snap.items():
        if d.get(k, _MISSING) is not v:
            d[k] = v


def _seal(workdir: str, keep: str) -> None:
    """The work directory read-only, holding only the candidate's file."""
    try:
        if os.stat(workdir).st_mode & 0o222:
            os.chmod(workdir, 0o555)
        names = os.listdir(workdir)
    except OSError:
        return
    if names != [keep]:
        import shutil

        os.chmod(workdir, 0o755)
        for n in names:
            if n != keep:
                p = os.path.join(workdir, n)
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) \
                    else os.unlink(p)
        os.chmod(workdir, 0o555)


def play(chan: Channel, fresh: Fresh, proxy, msg: dict, cfg: dict) -> None:
    """Play one unit, wave by wave (episodes of one problem never overlap in time)."""
    states, waves = msg["states"], msg["waves"]
    for w in sorted(set(waves)):
        _wave(chan, fresh, proxy, float(msg["beta"]), states,
              [i for i, x in enumerate(waves) if x == w], cfg)


def _wave(chan: Channel, fresh: Fresh, proxy, beta: float, states: list, eps: list[int],
          cfg: dict) -> None:
    """Episodes ``eps`` in up to ``lanes`` greenlets, each with a fresh controller, split in
    two groups so that one group runs while the parent serves the other's calls."""
    import greenlet

    cap = int(cfg["max_answer_chars"])
    todo = eps[::-1]
    hub = greenlet.getcurrent()
    done: list = []

    def lane() -> None:
        while todo:
            ep = todo.pop()
            try:
                ctl = fresh.controller(beta)
            except MemoryError:
                raise Failure("memory", ep, "MemoryError on load") from None
            except BaseException as e:  # whatever the candidate raises
                if isinstance(e, greenlet.GreenletExit):
                    raise
                raise Failure("load", ep, _error(e)) from None
            try:
                answer = ctl.solve(proxy(ep, beta, states[ep], hub))
            except MemoryError:
                raise Failure("memory", ep, "MemoryError in solve") from None
            except BaseException as e:
                if isinstance(e, greenlet.GreenletExit):
                    raise
                raise Failure("runtime_error", ep, f"solve raised {_error(e)}") from None
            ctl = None  # nothing of this episode stays reachable once it has ended
            if answer is not None:
                if not isinstance(answer, str):
                    raise Failure("bad_return", ep, f"solve returned "
                                  f"{type(answer).__name__}, expected a string or None")
                answer = str.__str__(answer)  # a plain str, whatever the subclass does
                if len(answer) > cap:
                    raise Failure("bad_return", ep, f"an answer of {len(answer)} characters "
                                  f"(at most {cap})")
            done.append([ep, answer])

    n_lanes = min(int(cfg["lanes"]), len(todo))
    lanes = [greenlet.greenlet(lane) for _ in range(n_lanes)]
    groups = [lanes[0::2], lanes[1::2]]
    requests: list[list] = [[], []]

    def flush(g: int, pending: list) -> bool:
        """Send group g's calls (and the answers so far); False when the group ended."""
        nonlocal done
        live = [(lane_, req) for lane_, req in zip(groups[g], pending, strict=False)
                if not lane_.dead]
        groups[g] = [lane_ for lane_, _ in live]
        requests[g] = [req for _, req in live]
        chan.send({"t": "batch", "g": g, "calls": requests[g], "done": done})
        done = []
        return bool(live)

    active = [flush(g, [lane_.switch() for lane_ in groups[g]]) if groups[g] else False
              for g in (0, 1)]
    while any(active):
        reply = chan.recv()
        g = reply.get("g")
        if reply.get("t") != "replies" or g not in (0, 1) or not active[g]:
            raise SystemExit(0)
        active[g] = flush(g, [lane_.switch(tuple(r))
                              for lane_, r in zip(groups[g], reply["replies"], strict=False)])


def main() -> None:
    cfg = json.loads(sys.argv[1])
    lock_down(cfg)
    chan = Channel(int(cfg["in_fd"]), int(cfg["out_fd"]))
    try:
        import importlib
        import inspect

        from autotts_gym.contracts import SESSION_METHODS, SESSION_PROPERTIES, SessionAPI
        from autotts_gym.controllers import load_controller

        for name in cfg["shared"]:  # loaded before any candidate code: their clean state
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        init = chan.recv()
        code, cls, config = init["code"], init.get("cls"), init.get("config")
        path = os.path.join(cfg["workdir"], "candidate.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(code)
        before = set(sys.modules)
        load_controller(path if cls is None else f"{path}:{cls}", name="candidate",
                        config=config or None)  # fails early, with the loader's message
        for name in set(sys.modules) - before:
            if name.startswith("autotts_user_controller_"):
                del sys.modules[name]  # episodes use their own module objects
        fresh = Fresh(code, path, cls, config, cfg["shared"])
        arity = {m: len(inspect.signature(getattr(SessionAPI, m)).parameters) - 1
                 for m in SESSION_METHODS}
        proxy = make_proxy(SESSION_METHODS, SESSION_PROPERTIES, arity)
    except MemoryError:
        chan.send({"t": "fail", "kind": "memory", "ep": None, "msg": "MemoryError on load"})
        return
    except BaseException as e:  # noqa: BLE001 (whatever loading the candidate raises)
        chan.send({"t": "fail", "kind": "load", "ep": None, "msg": _error(e)})
        return
    chan.send({"t": "ready"})
    while True:
        msg = chan.recv()
        if msg.get("t") != "unit":
            return
        try:
            play(chan, fresh, proxy, msg, cfg)
        except Failure as f:
            chan.send({"t": "fail", "kind": f.kind, "ep": f.ep, "msg": f.message})
            return


if __name__ == "__main__":
    try:
        main()
    finally:  # what the jail cost, for the parent's record (stderr)
        use = resource.getrusage(resource.RUSAGE_SELF)
        sys.stderr.write(f"\nautotts-jail-cpu {use.ru_utime + use.ru_stime:.3f}\n")
