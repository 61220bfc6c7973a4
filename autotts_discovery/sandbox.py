"""Score untrusted controller code: the harness's one scoring loop, run through a jail.

:class:`SandboxExecutor` is an :class:`~autotts_gym.harness.Executor`: the harness builds
every :class:`~autotts_gym.session.Session` (sets, betas, problems, seeds, ``kappa_probe``,
records, correctness and traces are the harness's), and the executor forwards each session
call of the jailed worker (:mod:`.child`, in a :mod:`.jail`) to the right session. The
parent keeps the replay; the jail holds only the answers its calls revealed.

A unit of episodes is played in *waves*, each holding at most one episode of a problem,
and each wave runs in a fresh worker process that the jail's zygote forks and, once the
wave is answered, kills and reaps: nothing an episode leaves behind can reach another
episode of its problem (see :mod:`.child`).

The protocol is data only (JSON lines). Every message of the worker is checked (type,
fields, sizes, which episode it may speak for); the parent never blocks on a write, reads
with deadlines, and bounds the calls per episode. Whatever the candidate does, the result
is a :class:`SandboxResult`: scores, or a :class:`~autotts_gym.harness.FailureKind` with a
short, escaped message.

The wire, worker to parent: ``{"t": "batch", "g": 0|1, "calls": [episode, method,
branch, ...], "done": [[episode, answer], ...]}``, the calls flat, three small integers
each (``method`` indexes :data:`~autotts_gym.contracts.SESSION_METHODS`; ``branch`` is 0
for methods without one). Parent to worker: ``{"t": "r", "g": ..., "r": [...]}``, per call
``ok, tokens, n_opened`` and then the result's fields (a tuple result spread out, ``None``
as that many nulls) or, when not ok, the error text, padded with nulls to
:func:`~autotts_gym.contracts.reply_width` fields.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

from autotts_gym.contracts import SESSION_METHODS, reply_width, result_widths, session_arity
from autotts_gym.harness import EpisodeFailure, FailureKind, Results, evaluate
from autotts_gym.session import Session, StepLimitExceeded
from autotts_gym.store import ReplayStore

from . import jail
from .child import codec, spin_until

CHILD_KINDS = {FailureKind.LOAD, FailureKind.RUNTIME_ERROR, FailureKind.BAD_RETURN,
               FailureKind.MEMORY}
"""The failure kinds the worker may report itself; anything else it says is a protocol
fault."""
_INT_BOUND = 1 << 31
_TAKES_BRANCH = tuple(session_arity()[m] == 1 for m in SESSION_METHODS)
_WIDTH = tuple(result_widths().get(m, 0) for m in SESSION_METHODS)
_TAIL = tuple((None,) * (reply_width() - 3 - max(1, w)) for w in _WIDTH)
"""Per method: the nulls that pad a reply after the result's fields to the fixed width."""
_NONE_TAIL = (None,) * (reply_width() - 3)
"""A tuple result that is ``None``, with its padding: nulls in every field."""
_GROUPS = (0, 1)
"""The worker's two groups of lanes (it echoes the number; see :func:`.child.play`)."""
_BATCH_KEYS = frozenset({"t", "g", "calls", "done"})
_INTS = {int}


@dataclass(frozen=True)
class Limits:
    """Per evaluation (one jail) unless named per worker, per episode or per reply."""

    cpu_seconds: int = 600          # per worker (one wave)
    memory_mb: int = 1536           # per process in the jail
    wall_seconds: float = 600.0
    reply_seconds: float = 20.0     # the worker must answer each message within this
    load_seconds: float = 60.0      # jail start, and each worker's candidate import
    work_mb: int = 16               # the jail's tmpfs work directory (read-only)
    output_mb: int = 4              # any one file the jail writes (stdout, stderr)
    max_steps: int = 20_000         # counted session calls per episode (open, advance, ...)
    max_queries: int = 100_000      # all session calls per episode, reads included
    max_answer_chars: int = 256
    max_message_bytes: int = 1 << 20
    max_error_chars: int = 300
    lanes: int = 128                # episodes in flight in a worker (greenlets)
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
        self._zbuf = b""
        self._t0 = 0.0
        self.failure: _Fault | None = None
        self._closed = False
        self._n = 0
        self.waves = 0
        self.child_cpu: float | None = None
        self._encode, self._decode = codec()
        self._probe: dict[int, select.poll] = {}  # per pipe from the jail: is it readable?

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
            output_mb=lim.output_mb, lanes=lim.lanes, max_answer_chars=lim.max_answer_chars),
            self.code)
        for fd in (self._jail.to_child, self._jail.from_child, self._jail.to_zygote,
                   self._jail.from_zygote):
            os.set_blocking(fd, False)
        self._guard(self._load)

    def close(self, grace: float = 1.0) -> None:
        """End the jail (idempotent); keeps the jail's reported CPU time."""
        if self._jail is not None and not self._closed:
            self._closed = True
            jail.stop(self._jail, grace)
            self.child_cpu = jail.child_cpu(self._jail)
            jail.discard(self._jail)

    @property
    def uid(self) -> int | None:
        return self._jail.uid if self._jail else None

    def _load(self) -> None:
        """Hand the zygote the loader's options and play an empty wave: its worker loads
        the candidate, so a load failure shows before any episode."""
        self._send({"t": "init", "cls": self.cls, "config": self.config},
                   self.limits.load_seconds, control=True)
        self._wave(0.0, [])

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

    def _solve(self, beta: float, sessions: Sequence[Session]) -> list:
        answers: list = [None] * len(sessions)
        for wave in waves(sessions):
            try:
                got = self._wave(beta, [sessions[i] for i in wave])
            except _Fault as f:
                if f.index is not None:
                    f.index = wave[f.index]
                raise
            for i, a in zip(wave, got, strict=True):
                answers[i] = a
        return answers

    def _wave(self, beta: float, sessions: list[Session]) -> list:
        """One wave in a fresh worker: start it, serve it, then have it killed and reaped."""
        lim = self.limits
        self._n = len(sessions)
        self.waves += 1
        self._stale()
        self._send({"t": "wave", "beta": beta,
                    "states": [[s.tokens, s.n_opened, s.n_opened + s.branches_left]
                               for s in sessions]}, lim.reply_seconds, control=True)
        msg = self._recv(lim.load_seconds)
        if msg.get("t") == "fail":
            self._child_fail(msg, self._n)
        if msg != {"t": "ready"}:
            raise _Fault(FailureKind.PROTOCOL, f"expected ready, got {clean(msg, 80)}")
        answers = self._serve(beta, sessions) if sessions else []
        self._send({"t": "end"}, lim.reply_seconds, control=True)
        while True:
            msg = self._recv(lim.reply_seconds, control=True)
            if msg == {"t": "reaped"}:
                return answers
            if msg.get("t") != "exit" or set(msg) != {"t", "code"}:
                raise _Fault(FailureKind.PROTOCOL, f"the jail said {clean(msg, 80)}")

    def _stale(self) -> None:
        """Nothing may wait on the data pipe between waves (a dead worker's last bytes)."""
        assert self._jail is not None
        try:
            self._buf += os.read(self._jail.from_child, 1 << 16)
        except BlockingIOError:
            pass
        except OSError:
            raise self._death(None) from None
        if self._buf:
            raise _Fault(FailureKind.PROTOCOL, "the candidate wrote after its last answer")

    def _serve(self, beta: float, sessions: Sequence[Session]) -> list:  # noqa: C901 (one message loop with its checks, kept in one place)
        lim = self.limits
        n = len(sessions)
        answers: list = [None] * n
        queries = [0] * n
        left = n
        # per episode still playing: its calls by method index, and its episode's counters
        table = {ep: (_bind(s), s._ep) for ep, s in enumerate(sessions)}
        width, tail, none_tail, max_queries = _WIDTH, _TAIL, _NONE_TAIL, lim.max_queries
        err_pad = (None,) * (reply_width() - 4)
        while True:
            msg = self._recv(lim.reply_seconds)
            if msg.get("t") == "fail":
                self._child_fail(msg, n)
            if msg.get("t") != "batch" or msg.keys() != _BATCH_KEYS or (
                    type(msg["g"]) is not int or msg["g"] not in _GROUPS):
                raise _Fault(FailureKind.PROTOCOL, f"unexpected message {clean(msg, 80)}")
            calls, done = msg["calls"], msg["done"]
            if type(calls) is not list or type(done) is not list or (
                    len(calls) > 3 * lim.lanes or len(calls) % 3 or len(done) > n):
                raise _Fault(FailureKind.PROTOCOL, "a batch of the wrong shape")
            if calls and (set(map(type, calls)) != _INTS or min(calls) <= -_INT_BOUND
                          or max(calls) >= _INT_BOUND):
                raise _Fault(FailureKind.PROTOCOL, f"malformed calls {clean(calls, 60)}")
            for item in done:
                ep, answer = _pair(item, n)
                if ep not in table:
                    raise _Fault(FailureKind.PROTOCOL, f"episode {ep} answered twice", ep)
                if answer is not None and type(answer) is not str:
                    raise _Fault(FailureKind.BAD_RETURN, f"solve returned "
                                 f"{type(answer).__name__}, expected a string or None", ep)
                if answer is not None and len(answer) > lim.max_answer_chars:
                    raise _Fault(FailureKind.BAD_RETURN, f"an answer of {len(answer)} "
                                 f"characters (at most {lim.max_answer_chars})", ep)
                answers[ep] = answer
                del table[ep]
                left -= 1
            if not calls:
                if not left:
                    return answers
                continue  # one of the two groups of lanes ended
            out: list = []
            for ep, m, arg in zip(calls[0::3], calls[1::3], calls[2::3], strict=True):
                try:
                    methods, episode = table[ep]
                    call = methods[m]
                except KeyError:
                    raise _Fault(FailureKind.PROTOCOL, f"a malformed call {[ep, m, arg]}",
                                 ep if 0 <= ep < n else None) from None
                queries[ep] += 1
                if queries[ep] > max_queries:
                    raise _Fault(FailureKind.STEP_LIMIT, f"more than {max_queries} "
                                 "session calls in one episode", ep)
                try:
                    value = call(arg)
                except StepLimitExceeded as e:
                    raise _Fault(FailureKind.STEP_LIMIT, f"never stopped ({e})", ep) from None
                except (LookupError, ValueError, TypeError, RuntimeError) as e:
                    out += (False, episode.tokens, episode.n_open,
                            f"{type(e).__name__}: {e}", *err_pad)
                    continue
                if not width[m]:
                    out += (True, episode.tokens, episode.n_open, value) + tail[m]
                elif value is None:
                    out += (True, episode.tokens, episode.n_open, *none_tail)
                else:
                    out += (True, episode.tokens, episode.n_open) + value + tail[m]
            self._send({"t": "r", "g": msg["g"], "r": out}, lim.reply_seconds)

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

    def _send(self, msg: dict, seconds: float, control: bool = False) -> None:
        assert self._jail is not None
        fd = self._jail.to_zygote if control else self._jail.to_child
        data = self._encode(msg) + b"\n"
        deadline = poll = None
        while True:  # write first: the pipe nearly always has room, so no poll per message
            try:
                n = os.write(fd, data)
            except BlockingIOError:
                n = 0
            except OSError:
                raise self._death(None) from None
            if n == len(data):
                return
            if n:
                data = data[n:]
                continue
            if deadline is None:
                deadline = self._deadline(seconds)
            if time.monotonic() >= deadline:
                raise self._timeout("stopped reading its input")
            if poll is None:
                poll = select.poll()
                poll.register(fd, select.POLLOUT)
            wait = deadline - time.monotonic()
            if wait > 0:
                poll.poll(wait * 1000)

    def _recv(self, seconds: float, control: bool = False) -> dict:
        """The next message of the worker (or, with ``control``, of the zygote). While
        waiting for the worker, a report of its exit from the zygote ends the wait."""
        assert self._jail is not None
        cap = self.limits.max_message_bytes
        fd = self._jail.from_zygote if control else self._jail.from_child
        deadline = 0.0
        while True:
            buf = self._zbuf if control else self._buf
            end = buf.find(b"\n")
            if end >= 0:
                break
            if len(buf) > cap:
                raise _Fault(FailureKind.PROTOCOL, f"a message larger than {cap} bytes")
            if not self._readable(fd):
                deadline = self._wait(fd, seconds, deadline, watch_worker=not control)
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                raise self._death(None) from None
            if not chunk:
                raise self._death(None)
            if control:
                self._zbuf += chunk
            else:
                self._buf += chunk
        if end > cap:
            raise _Fault(FailureKind.PROTOCOL, f"a message larger than {cap} bytes")
        line = buf[:end]
        if control:
            self._zbuf = buf[end + 1:]
        else:
            self._buf = buf[end + 1:]
        try:
            msg = self._decode(line)
        except (ValueError, RecursionError, TypeError):
            raise _Fault(FailureKind.PROTOCOL, f"a message that is not JSON: "
                         f"{clean(line[:60].decode('utf-8', 'replace'), 80)}") from None
        if not isinstance(msg, dict):
            raise _Fault(FailureKind.PROTOCOL, f"a message that is not an object: "
                         f"{clean(msg, 60)}")
        return msg

    def _readable(self, fd: int) -> bool:
        """Whether ``fd`` can be read now: a poll that does not wait (a failed read would
        cost an exception)."""
        probe = self._probe.get(fd)
        if probe is None:
            probe = self._probe[fd] = select.poll()
            probe.register(fd, select.POLLIN)
        return bool(probe.poll(0))

    def _wait(self, fd: int, seconds: float, deadline: float, watch_worker: bool) -> float:
        """Until ``fd`` is readable: spin (a zero-timeout poll, see
        :func:`.child.spin_until`), then sleep in ``poll`` until the deadline (``deadline``, or
        ``seconds`` from now if it is 0; returned for the next wait of the same message, so
        a message trickled in byte by byte still has one deadline). With ``watch_worker``,
        a message of the zygote (the worker exited) while ``fd`` stays empty ends the wait
        as a death."""
        assert self._jail is not None
        deadline = deadline or self._deadline(seconds)
        if time.monotonic() >= deadline:
            raise self._timeout("gave no answer")
        if spin_until(partial(self._readable, fd)):
            return deadline
        sleep = select.poll()
        sleep.register(fd, select.POLLIN)
        if watch_worker:
            sleep.register(self._jail.from_zygote, select.POLLIN)
        while True:
            wait = deadline - time.monotonic()
            ready = {f for f, _ in sleep.poll(wait * 1000)} if wait > 0 else set()
            if fd in ready:
                return deadline
            if ready:
                raise self._death(self._exit_code())
            if time.monotonic() >= deadline:
                raise self._timeout("gave no answer")

    def _exit_code(self) -> int | None:
        """The worker's exit code as the zygote reported it (None if it said otherwise)."""
        try:
            msg = self._recv(self.limits.reply_seconds, control=True)
        except _Fault:
            return None
        code = msg.get("code")
        return code if msg.get("t") == "exit" and type(code) is int else None

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
                msg = self._decode(line)
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

    def _death(self, code: int | None) -> _Fault:
        """The worker (``code``: its exit code or minus its signal) or the whole jail
        (``None``: a pipe closed) ended: why? Its last words first: a failure it reported
        may still be unread."""
        assert self._jail is not None
        if code is None:
            try:
                code = self._jail.proc.wait(timeout=2)
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


def waves(sessions: Sequence[Session]) -> list[list[int]]:
    """The unit's episodes (indices) in waves: the k-th wave holds the k-th episode of each
    problem, so no wave holds two episodes of one problem."""
    seen: dict[int, int] = {}
    out: list[list[int]] = []
    for i, s in enumerate(sessions):
        key = id(s._ep.tables)  # one ProblemTables per problem
        k = seen.get(key, 0)
        seen[key] = k + 1
        if k == len(out):
            out.append([])
        out[k].append(i)
    return out


def _bind(session: Session) -> dict:
    """A session's methods by index, each called with the call's branch field (ignored by
    the methods without a branch)."""
    out = {}
    for m, (name, takes) in enumerate(zip(SESSION_METHODS, _TAKES_BRANCH, strict=True)):
        method = getattr(session, name)
        out[m] = method if takes else (lambda _branch, method=method: method())
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
    info["waves"] = ex.waves - 1  # (without the empty one that checks the load)
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
