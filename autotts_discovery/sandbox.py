"""Score untrusted controller code: the harness's one scoring loop, run through a jail.

:class:`SandboxExecutor` is an :class:`~autotts_gym.harness.Executor`: the harness builds
every :class:`~autotts_gym.session.Session` (sets, betas, problems, seeds, ``kappa_probe``,
records, correctness and traces are the harness's), and the executor forwards each session
call of the jailed child (:mod:`.child`, in a :mod:`.jail`) to the right session. The
parent keeps the replay; the child holds only the answers its calls revealed.

The protocol is data only (JSON lines, see :mod:`.wire`). Every message of the child is
checked (type, fields, sizes, which episode it may speak for); the parent never blocks on a
write, reads with deadlines, and bounds the calls per episode. Whatever the candidate
does, the result is a :class:`SandboxResult`: scores, or a
:class:`~autotts_gym.harness.FailureKind` with a short, escaped message.
"""

from __future__ import annotations

import inspect
import json
import operator
import os
import select
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from autotts_gym.contracts import SESSION_METHODS, SESSION_PROPERTIES, SessionAPI
from autotts_gym.harness import EpisodeFailure, FailureKind, Results, evaluate
from autotts_gym.session import Session, StepLimitExceeded
from autotts_gym.store import ReplayStore

from . import jail

STATE = tuple(p for p in SESSION_PROPERTIES if p != "beta")
"""Session properties sent with every reply, so reading them costs no round trip."""
ARITY = {m: len(inspect.signature(getattr(SessionAPI, m)).parameters) - 1
         for m in SESSION_METHODS}
CHILD_KINDS = {FailureKind.LOAD, FailureKind.RUNTIME_ERROR, FailureKind.BAD_RETURN,
               FailureKind.MEMORY}
"""The failure kinds the child may report itself; anything else it says is a protocol fault."""
_INT_BOUND = 1 << 31
_STATE = operator.attrgetter(*STATE)
_BATCH_KEYS = frozenset({"t", "g", "calls", "done"})


@dataclass(frozen=True)
class Limits:
    """Per evaluation (one jail) unless named per episode or per reply."""

    cpu_seconds: int = 600
    memory_mb: int = 1536
    wall_seconds: float = 600.0
    reply_seconds: float = 20.0     # the child must answer each message within this
    load_seconds: float = 60.0      # jail start and candidate import
    work_mb: int = 16               # the jail's tmpfs work directory
    output_mb: int = 4              # any one file the child writes (stdout, stderr)
    max_steps: int = 20_000         # counted session calls per episode (open, advance, ...)
    max_queries: int = 100_000      # all session calls per episode, reads included
    max_answer_chars: int = 256
    max_message_bytes: int = 1 << 20
    max_error_chars: int = 300
    lanes: int = 128                # episodes in flight in the child (greenlets)
    code_bytes: int = 1 << 20


def clean(text: object, cap: int = 300) -> str:
    """Untrusted text made printable ASCII (escapes) and cut to ``cap`` characters."""
    s = str(text) if isinstance(text, str) else repr(text)
    s = s[: cap * 4].encode("ascii", "backslashreplace").decode("ascii")
    s = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in s)
    return s if len(s) <= cap else s[: cap - 3] + "..."


@dataclass
class SandboxResult:
    ok: bool
    kind: FailureKind | None = None
    message: str = ""
    results: Results = field(default_factory=Results)
    traces: list[dict] = field(default_factory=list)  # compact traces of wrong answers
    jail: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"ok": self.ok, "kind": self.kind.value if self.kind else "ok",
                "message": self.message, "jail": self.jail,
                "seconds": round(self.seconds, 3), "episodes": len(self.results.records)}


class _Fault(Exception):
    def __init__(self, kind: FailureKind, message: str, index: int | None = None):
        super().__init__(message)
        self.kind, self.message, self.index = kind, message, index


class SandboxExecutor:
    """Runs candidate code in one jail for a whole evaluation (use as a context manager)."""

    def __init__(self, code: str, limits: Limits = Limits(), name: str = "candidate",
                 cls: str | None = None, config: dict | None = None):
        self.code, self.limits, self.name = code, limits, name
        self.cls, self.config = cls, dict(config or {})
        self._jail: jail.Running | None = None
        self._buf = b""
        self._t0 = 0.0
        self.failure: _Fault | None = None
        self._closed = False
        self._n = 0
        self.child_cpu: float | None = None

    # -- lifetime
    def __enter__(self) -> SandboxExecutor:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        lim = self.limits
        if len(self.code.encode()) > lim.code_bytes:
            raise EpisodeFailure(FailureKind.LOAD, f"the code is larger than "
                                 f"{lim.code_bytes} bytes")
        self._t0 = time.monotonic()
        self._jail = jail.start(jail.JailSpec(
            work_mb=lim.work_mb, cpu_seconds=lim.cpu_seconds, memory_mb=lim.memory_mb,
            output_mb=lim.output_mb, lanes=lim.lanes, max_answer_chars=lim.max_answer_chars))
        os.set_blocking(self._jail.to_child, False)
        os.set_blocking(self._jail.from_child, False)
        self._guard(self._load)

    def close(self, grace: float = 1.0) -> None:
        """End the jail (idempotent); keeps the child's reported CPU time."""
        if self._jail is not None and not self._closed:
            self._closed = True
            jail.stop(self._jail, grace)
            self.child_cpu = jail.child_cpu(self._jail)
            jail.discard(self._jail)

    @property
    def uid(self) -> int | None:
        return self._jail.uid if self._jail else None

    def _load(self) -> None:
        self._send({"t": "init", "code": self.code, "cls": self.cls, "config": self.config},
                   self.limits.load_seconds)
        msg = self._recv(self.limits.load_seconds)
        if msg.get("t") == "fail":
            self._child_fail(msg, 0)
        if msg != {"t": "ready"}:
            raise _Fault(FailureKind.PROTOCOL, f"expected ready, got {clean(msg, 80)}")

    # -- the executor
    def solve(self, beta: float, sessions: Sequence[Session]) -> list:
        return self._guard(self._solve, float(beta), sessions)

    def _guard(self, fn, *args):
        if self.failure is not None:  # a jail that failed once is not used again
            raise EpisodeFailure(self.failure.kind, self.failure.message, None)
        try:
            return fn(*args)
        except _Fault as f:
            f.message = clean(f.message, self.limits.max_error_chars)
            self.failure = f
            self.close(grace=0.0)
            raise EpisodeFailure(f.kind, f.message, f.index) from None

    def _solve(self, beta: float, sessions: Sequence[Session]) -> list:  # noqa: C901 (one message loop with its checks, kept in one place)
        lim = self.limits
        n = self._n = len(sessions)
        self._send({"t": "unit", "beta": beta,
                    "states": [[getattr(s, p) for p in STATE] for s in sessions],
                    "waves": _waves(sessions)}, lim.reply_seconds)
        answers: list = [None] * n
        finished = [False] * n
        queries = [0] * n
        left = n
        if not n:
            return answers
        arity, state = ARITY, _STATE
        while True:
            msg = self._recv(lim.reply_seconds)
            if msg.get("t") == "fail":
                self._child_fail(msg, n)
            if msg.get("t") != "batch" or msg.keys() != _BATCH_KEYS or msg["g"] not in (0, 1):
                raise _Fault(FailureKind.PROTOCOL, f"unexpected message {clean(msg, 80)}")
            calls, done = msg["calls"], msg["done"]
            if type(calls) is not list or type(done) is not list or (
                    len(calls) > lim.lanes or len(done) > n):
                raise _Fault(FailureKind.PROTOCOL, "a batch of the wrong shape")
            for item in done:
                ep, answer = _pair(item, n)
                if finished[ep]:
                    raise _Fault(FailureKind.PROTOCOL, f"episode {ep} answered twice", ep)
                if answer is not None and type(answer) is not str:
                    raise _Fault(FailureKind.BAD_RETURN, f"solve returned "
                                 f"{type(answer).__name__}, expected a string or None", ep)
                if answer is not None and len(answer) > lim.max_answer_chars:
                    raise _Fault(FailureKind.BAD_RETURN, f"an answer of {len(answer)} "
                                 f"characters (at most {lim.max_answer_chars})", ep)
                answers[ep], finished[ep] = answer, True
                left -= 1
            if not calls:
                if not left:
                    return answers
                continue  # one of the two groups of lanes ended
            replies = []
            for call in calls:
                # the common case checked inline: [episode, name, [int args]]
                if type(call) is not list or len(call) != 3:
                    raise _Fault(FailureKind.PROTOCOL, f"a malformed call {clean(call, 60)}")
                ep, name, args = call
                if (type(ep) is not int or not 0 <= ep < n or finished[ep]
                        or type(args) is not list or arity.get(name) != len(args)
                        or (args and (type(args[0]) is not int
                                     or not -_INT_BOUND < args[0] < _INT_BOUND))
                        or (len(args) > 1 and not all(
                            type(a) is int and -_INT_BOUND < a < _INT_BOUND for a in args))):
                    raise _Fault(FailureKind.PROTOCOL, f"a malformed call {clean(call, 60)}",
                                 ep if type(ep) is int and 0 <= ep < n else None)
                queries[ep] += 1
                if queries[ep] > lim.max_queries:
                    raise _Fault(FailureKind.STEP_LIMIT, f"more than {lim.max_queries} "
                                 "session calls in one episode", ep)
                session = sessions[ep]
                try:
                    replies.append([True, getattr(session, name)(*args), state(session)])
                except StepLimitExceeded as e:
                    raise _Fault(FailureKind.STEP_LIMIT, f"never stopped ({e})", ep) from None
                except (LookupError, ValueError, TypeError, RuntimeError) as e:
                    replies.append([False, f"{type(e).__name__}: {e}", state(session)])
            self._send({"t": "replies", "g": msg["g"], "replies": replies}, lim.reply_seconds)

    def _child_fail(self, msg: dict, n: int):
        kind, ep, text = msg.get("kind"), msg.get("ep"), msg.get("msg")
        try:
            fk = FailureKind(kind)
        except ValueError:
            fk = None
        if (fk not in CHILD_KINDS or not isinstance(text, str) or set(msg) != {
                "t", "kind", "ep", "msg"} or not (ep is None or (
                type(ep) is int and 0 <= ep < max(n, 1)))):
            raise _Fault(FailureKind.PROTOCOL, f"a malformed failure report "
                         f"{clean(msg, 80)}")
        raise _Fault(fk, text, ep)

    # -- the wire
    def _deadline(self, seconds: float) -> float:
        return min(time.monotonic() + seconds, self._t0 + self.limits.wall_seconds)

    def _send(self, msg: dict, seconds: float) -> None:
        assert self._jail is not None
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        deadline = self._deadline(seconds)
        poll = None
        while data:  # write first: the pipe is nearly always ready, so no poll per message
            if time.monotonic() >= deadline:
                raise self._timeout("stopped reading its input")
            try:
                data = data[os.write(self._jail.to_child, data):]
                continue
            except BlockingIOError:
                pass
            except (BrokenPipeError, OSError):
                raise self._death() from None
            if poll is None:
                poll = select.poll()
                poll.register(self._jail.to_child, select.POLLOUT)
            wait = deadline - time.monotonic()
            if wait > 0:
                poll.poll(wait * 1000)

    def _recv(self, seconds: float) -> dict:
        assert self._jail is not None
        cap = self.limits.max_message_bytes
        deadline = self._deadline(seconds)
        poll = None
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line, self._buf = self._buf[:end], self._buf[end + 1:]
                break
            if len(self._buf) > cap:
                raise _Fault(FailureKind.PROTOCOL, f"a message larger than {cap} bytes")
            try:
                chunk = os.read(self._jail.from_child, 1 << 16)
            except BlockingIOError:
                if poll is None:
                    poll = select.poll()
                    poll.register(self._jail.from_child, select.POLLIN)
                wait = deadline - time.monotonic()
                if wait <= 0 or (not poll.poll(wait * 1000) and time.monotonic() >= deadline):
                    raise self._timeout("gave no answer") from None
                continue
            if not chunk:
                raise self._death()
            self._buf += chunk
        if len(line) > cap:
            raise _Fault(FailureKind.PROTOCOL, f"a message larger than {cap} bytes")
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError):
            raise _Fault(FailureKind.PROTOCOL, f"a message that is not JSON: "
                         f"{clean(line[:60].decode('utf-8', 'replace'), 80)}") from None
        if not isinstance(msg, dict):
            raise _Fault(FailureKind.PROTOCOL, f"a message that is not an object: "
                         f"{clean(msg, 60)}")
        return msg

    def _last_words(self) -> _Fault | None:
        assert self._jail is not None
        buf = self._buf
        try:
            while len(buf) <= self.limits.max_message_bytes:
                chunk = os.read(self._jail.from_child, 1 << 16)
                if not chunk:
                    break
                buf += chunk
        except OSError:
            pass
        for line in buf.split(b"\n")[:-1]:  # complete lines only
            try:
                msg = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(msg, dict) and msg.get("t") == "fail":
                try:
                    self._child_fail(msg, self._n)
                except _Fault as f:
                    return f
        return None

    def _timeout(self, what: str) -> _Fault:
        spent = time.monotonic() - self._t0
        if spent >= self.limits.wall_seconds - 1e-3:
            return _Fault(FailureKind.TIMEOUT, f"wall-clock limit of "
                          f"{self.limits.wall_seconds:g} s reached")
        return _Fault(FailureKind.TIMEOUT, f"the candidate {what} within "
                      f"{self.limits.reply_seconds:g} s")

    def _death(self) -> _Fault:
        """The child closed its pipe: why did it die? (Its last words first: a failure it
        reported may still be unread when a write finds the pipe closed.)"""
        assert self._jail is not None
        proc = self._jail.proc
        try:
            code = proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        said = self._last_words()
        if said is not None:
            return said
        tail = self._jail.output_tail(2000)
        if "MemoryError" in tail or "Cannot allocate memory" in tail:
            return _Fault(FailureKind.MEMORY, "the memory limit was reached")
        if (code is not None and code in (128 + 24, -24)) or "CPU time limit" in tail:
            return _Fault(FailureKind.TIMEOUT, f"the CPU limit of {self.limits.cpu_seconds} s "
                          "was reached")
        last = tail.strip().splitlines()[-1:] or [""]
        return _Fault(FailureKind.CRASH, f"the candidate's process ended (exit {code}) "
                      f"{clean(last[0], 160)}".rstrip())


def _waves(sessions: Sequence[Session]) -> list[int]:
    """Each session's wave: how many sessions of its problem come before it (the child
    never runs two episodes of one problem at the same time)."""
    seen: dict[int, int] = {}
    out = []
    for s in sessions:
        key = id(s._ep.tables)  # one ProblemTables per problem
        out.append(seen.get(key, 0))
        seen[key] = out[-1] + 1
    return out


def _int(v: object, what: str) -> int:
    if type(v) is not int or not -_INT_BOUND < v < _INT_BOUND:
        raise _Fault(FailureKind.PROTOCOL, f"{what} is not a small integer: {clean(v, 40)}")
    return v


def _pair(item: object, n: int) -> tuple[int, object]:
    if not isinstance(item, list) or len(item) != 2:
        raise _Fault(FailureKind.PROTOCOL, f"a malformed answer {clean(item, 60)}")
    ep = _int(item[0], "an episode index")
    if not 0 <= ep < n:
        raise _Fault(FailureKind.PROTOCOL, f"an answer for unknown episode {ep}")
    return ep, item[1]


def evaluate_in_sandbox(
    code: str,
    store: ReplayStore,
    models: Iterable[str] | str | None = None,
    benchmarks: Iterable[str] | str | None = "aime24",
    seeds: Sequence[int] = range(5),
    betas: Sequence[float] = (0.0, 0.5, 1.0),
    limits: Limits = Limits(),
    method: str = "candidate",
    max_traces: int = 6,
    trace: bool = True,
    cls: str | None = None,
    config: dict | None = None,
) -> SandboxResult:
    """Score controller code over (set, beta, problem, seed) in one jail, through the
    harness. ``cls`` picks a release-style class of the code (``FILE.py:CLASS``) and
    ``config`` (JSON-able, already checked) goes to it, through the same loader as
    in-process. Never raises for anything the candidate does; raises
    :class:`~.jail.JailUnavailable` when no jail can be made."""
    t0 = time.monotonic()
    jail.require_jail()
    ex = SandboxExecutor(code, limits, method, cls, config)
    info: dict = {}
    try:
        ex.start()
        info = {"uid": ex.uid, "tool": "bwrap"}
        res = evaluate(ex, store, models, benchmarks, seeds, betas, workers=1, fast=False,
                       max_steps=limits.max_steps, method=method, progress=False,
                       trace=trace, reference=None)
    except EpisodeFailure as e:
        ex.close()
        return SandboxResult(False, e.kind, clean(e.message, limits.max_error_chars),
                             jail=info, seconds=time.monotonic() - t0)
    finally:
        ex.close()
    info["child_cpu_seconds"] = ex.child_cpu
    return SandboxResult(True, None, "", res, _wrong_traces(res, max_traces), info,
                         time.monotonic() - t0)


def _wrong_traces(res: Results, k: int) -> list[dict]:
    """Compact traces (last session calls) of up to ``k`` wrong answers."""
    out = []
    for r in res.records:
        if len(out) >= k:
            break
        if r.correct:
            continue
        events = res.traces.get((r.model, r.benchmark, r.method, r.beta, r.seed, r.problem), [])
        out.append({"model": r.model, "benchmark": r.benchmark, "problem": r.problem,
                    "seed": r.seed, "beta": r.beta, "answer": r.answer, "tokens": r.tokens,
                    "last_calls": events[-8:]})
    return out
