"""The jailed side of a sandboxed evaluation (runs as ``/sandbox/child.py`` in the jail).

Started by :mod:`.jail` inside a bubblewrap jail as ``python -I -S -B /sandbox/child.py
CONFIG``; it talks to the parent over two pipes (fds named in CONFIG) in JSON lines and never holds
a gold answer, an unrevealed answer or a store path: the parent owns every
:class:`~autotts_gym.session.Session`.

Steps: drop to the jail's own uid (when the jail's setup ran as the namespace's root),
set resource limits, load the candidate with :func:`autotts_gym.controllers.load_controller`
from a file in the work directory, then play the episodes the parent names. Episodes run
in ``lanes`` greenlets, each lane with its own controller instance playing its episodes one
after another; the session calls of all lanes go to the parent in one message and come
back in one reply (see :mod:`.wire` for the messages).

Standard library, greenlet and ``autotts_gym``'s pure-Python modules only: this file is
executed in the jail, where nothing else is mounted.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys

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
    _limit(resource.RLIMIT_CPU, int(cfg["cpu_seconds"]))
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


def play(chan: Channel, spec, instantiate, proxy, msg: dict, cfg: dict) -> None:
    """Play one unit: episodes ``0..n-1`` at ``beta`` in up to ``lanes`` greenlets, split in
    two groups so that one group runs while the parent serves the other's calls."""
    import greenlet

    beta, states = float(msg["beta"]), msg["states"]
    cap = int(cfg["max_answer_chars"])
    todo = list(range(len(states)))[::-1]
    hub = greenlet.getcurrent()
    done: list = []

    def lane() -> None:
        try:
            ctl = instantiate(spec, beta)
        except BaseException as e:  # noqa: BLE001 (whatever the candidate raises)
            raise Failure("load", None, _error(e)) from None
        while todo:
            ep = todo.pop()
            try:
                answer = ctl.solve(proxy(ep, beta, states[ep], hub))
            except MemoryError:
                raise Failure("memory", ep, "MemoryError in solve") from None
            except BaseException as e:
                if isinstance(e, greenlet.GreenletExit):
                    raise
                raise Failure("runtime_error", ep, f"solve raised {_error(e)}") from None
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
        live = [(lane_, req) for lane_, req in zip(groups[g], pending) if not lane_.dead]
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
                              for lane_, r in zip(groups[g], reply["replies"])])


def main() -> None:
    cfg = json.loads(sys.argv[1])
    lock_down(cfg)
    chan = Channel(int(cfg["in_fd"]), int(cfg["out_fd"]))
    try:
        import inspect

        from autotts_gym.contracts import SESSION_METHODS, SESSION_PROPERTIES, SessionAPI
        from autotts_gym.controllers import instantiate, load_controller

        init = chan.recv()
        path = os.path.join(cfg["workdir"], "candidate.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(init["code"])
        spec = load_controller(path, name="candidate")
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
            play(chan, spec, instantiate, proxy, msg, cfg)
        except Failure as f:
            chan.send({"t": "fail", "kind": f.kind, "ep": f.ep, "msg": f.message})
            return


if __name__ == "__main__":
    try:
        main()
    finally:  # what the jail cost, for the parent's record (stderr)
        use = resource.getrusage(resource.RUSAGE_SELF)
        sys.stderr.write(f"\nautotts-jail-cpu {use.ru_utime + use.ru_stime:.3f}\n")
