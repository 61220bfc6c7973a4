"""Run untrusted controller code in its own locked-down process (see :mod:`.child`).

The parent owns the replay (the real :class:`~autotts_gym.session.Session`) and answers
each session call the child sends with only what that call reveals. The child gets the
code, the beta and the answers, never a gold answer, an unrevealed answer or a path.
A candidate that fails, hangs, runs out of memory or tries to escape yields a
:class:`SandboxResult` with the kind of failure and its message; nothing is raised.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from autotts_gym.core import Episode
from autotts_gym.harness import EpisodeRecord, Results
from autotts_gym.session import Session, StepLimitExceeded
from autotts_gym.store import ReplayStore

FAILURE_KINDS = ("syntax", "rejected", "import", "runtime_error", "bad_return", "timeout",
                 "memory", "escape", "crash", "step_limit")

_SESSION_CALLS = {"open", "advance", "read", "probe", "prune", "depth", "is_finished",
                  "is_pruned", "latest_answer"}
_SESSION_PROPS = {"tokens", "n_opened", "branches_left"}


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 120
    memory_mb: int = 1024
    wall_seconds: float = 300.0
    episode_seconds: float = 20.0
    output_mb: int = 4
    max_steps: int = 20_000  # session calls per episode


@dataclass
class SandboxResult:
    ok: bool
    kind: str = "ok"  # or one of FAILURE_KINDS
    message: str = ""
    results: Results = field(default_factory=Results)
    traces: list[dict] = field(default_factory=list)  # compact traces of wrong answers
    applied: dict = field(default_factory=dict)  # what lock-down the child achieved
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"ok": self.ok, "kind": self.kind, "message": self.message,
                "applied": self.applied, "seconds": round(self.seconds, 3),
                "episodes": len(self.results.records)}


class _Child:
    def __init__(self, code: str, limits: Limits):
        self.workdir = tempfile.mkdtemp(prefix="autotts-sandbox-")
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        env = {"PATH": "/usr/bin:/bin", "HOME": self.workdir, "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1"}
        self.log = open(os.path.join(self.workdir, "output.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "autotts_discovery.child", str(p2c_r),
             str(c2p_w)], pass_fds=(p2c_r, c2p_w), env=env, cwd=self.workdir,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        os.close(p2c_r)
        os.close(c2p_w)
        self.out = Connection(p2c_w, readable=False)
        self.inp = Connection(c2p_r, writable=False)
        self.out.send({"code": code, "workdir": self.workdir,
                       "limits": {"cpu_seconds": limits.cpu_seconds,
                                  "memory_mb": limits.memory_mb,
                                  "output_mb": limits.output_mb}})

    def recv(self, timeout: float):
        if not self.inp.poll(timeout):
            raise TimeoutError
        return self.inp.recv()

    def output_tail(self, n: int = 600) -> str:
        try:
            self.log.flush()
            data = Path(self.workdir, "output.log").read_bytes()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace")

    def close(self) -> None:
        try:
            self.out.send(("stop",))
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except OSError:
                self.proc.kill()
            self.proc.wait()
        for c in (self.out, self.inp):
            c.close()
        self.log.close()
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)


def _death_kind(child: _Child) -> tuple[str, str]:
    code = child.proc.wait(timeout=5)
    tail = child.output_tail()
    if code in (-24, -9) or "CPU time limit" in tail:  # SIGXCPU / SIGKILL
        return "timeout", f"CPU time limit reached (exit {code})"
    if "MemoryError" in tail:
        return "memory", "the memory limit was reached"
    return "crash", f"the candidate's process died (exit {code}): {tail.strip()[-300:]}"


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
) -> SandboxResult:
    """Score controller code over (set, problem, seed, beta) episodes in one child."""
    t0 = time.monotonic()
    sets = store.select(models, benchmarks)
    child = _Child(code, limits)
    records: list[EpisodeRecord] = []
    traces: list[dict] = []

    def fail(kind: str, message: str, applied: dict | None = None) -> SandboxResult:
        return SandboxResult(False, kind, message, Results(records), traces, applied or {},
                             time.monotonic() - t0)

    try:
        try:
            status, info = child.recv(min(60.0, limits.wall_seconds))
        except (TimeoutError, EOFError, OSError):
            return fail(*_death_kind(child)) if child.proc.poll() is not None else fail(
                "timeout", "the candidate did not load in time")
        if status == "fatal":
            kind = "import" if info.startswith(("ImportError", "ModuleNotFound")) else (
                "escape" if "not allowed" in info else "runtime_error")
            return fail(kind, f"loading the candidate failed: {info}")
        applied = info
        for rs in sets:
            for beta in betas:
                for p in rs.problems:
                    for seed in seeds:
                        if time.monotonic() - t0 > limits.wall_seconds:
                            return fail("timeout", f"wall-clock limit of "
                                        f"{limits.wall_seconds:g} s reached", applied)
                        where = (f"model {rs.model}, benchmark {rs.benchmark}, problem "
                                 f"{p.index}, seed {seed}, beta {beta}")
                        ep = Episode.from_seed(p, seed)
                        session = Session(ep, beta, max_steps=limits.max_steps)
                        child.out.send(("episode", float(beta)))
                        deadline = time.monotonic() + limits.episode_seconds
                        while True:
                            left = min(deadline, t0 + limits.wall_seconds) - time.monotonic()
                            try:
                                msg = child.recv(max(0.0, left))
                            except TimeoutError:
                                return fail("timeout", f"no answer within "
                                            f"{limits.episode_seconds:g} s on {where}", applied)
                            except (EOFError, OSError):
                                kind, message = _death_kind(child)
                                return fail(kind, f"{message} on {where}", applied)
                            if msg[0] != "call":
                                break
                            child.out.send(_serve(session, msg[1], msg[2]))
                            if session.steps > limits.max_steps:
                                return fail("step_limit", f"more than {limits.max_steps} "
                                            f"session calls on {where}", applied)
                        status, value = msg
                        if status != "done":
                            return fail(status, f"{value} on {where}", applied)
                        correct = value is not None and value == p.gold_answer
                        records.append(EpisodeRecord(rs.model, rs.benchmark, p.index, seed,
                                                     float(beta), method, value, correct,
                                                     float(ep.tokens), session.steps))
                        if not correct and len(traces) < max_traces:
                            traces.append({"model": rs.model, "benchmark": rs.benchmark,
                                           "problem": p.index, "seed": seed, "beta": beta,
                                           "answer": value, "tokens": ep.tokens,
                                           "last_calls": [e.to_dict()
                                                          for e in session.trace[-8:]]})
        return SandboxResult(True, "ok", "", Results(records, store.synthetic), traces,
                             applied, time.monotonic() - t0)
    finally:
        child.close()


def _serve(session: Session, name: str, args: tuple):
    """Answer one session call from the child: ("ok", value) or ("error", message)."""
    try:
        if name in _SESSION_PROPS and not args:
            return ("ok", getattr(session, name))
        if name in _SESSION_CALLS:
            return ("ok", getattr(session, name)(*args))
        return ("error", f"unknown session call {name!r}")
    except StepLimitExceeded as e:
        return ("error", str(e))
    except Exception as e:
        return ("error", f"{type(e).__name__}: {e}")


