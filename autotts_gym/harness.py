"""One harness that scores controllers and Gymnasium policies on identical episodes.

An episode is (model, benchmark, problem, seed): the problem under the branch order
``core.branch_order(seed)``, at a beta. Every method evaluated here meets exactly the same
episodes, so numbers are comparable cell by cell.

* Controllers (``make_controller(beta).solve(session)``) run one
  :class:`~autotts_gym.session.Session` per episode, or, with ``fast=True`` and a
  controller that has ``solve_batch``, all seeds of a replay set at once on an
  :class:`~autotts_gym.core.EpisodeBatch` (same answers, tokens and steps).
* Gymnasium policies (an SB3 model with ``predict``, or a callable ``(obs, mask) ->
  action``) act on ``AutoTTS-v0`` episodes pinned by ``reset(options=...)``.

Work is spread over processes by (replay set, beta, seed chunk); records are sorted, so
results do not depend on the worker count.
"""

from __future__ import annotations

import inspect
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from .contracts import NO_ANSWER
from .controllers import ControllerError, ControllerSpec, instantiate, load_controller
from .core import NO_ANSWER_ID, Episode, EpisodeBatch
from .errors import AutoTTSError, UsageError
from .session import Session, StepLimitExceeded
from .store import ReplaySet, ReplayStore


class HarnessError(AutoTTSError, RuntimeError):
    """A controller or policy broke the contract on a named episode."""


class FailureKind(str, Enum):
    """Why a controller's evaluation failed (in-process or in a sandbox)."""

    LOAD = "load"                    # the module or make_controller(beta) failed
    RUNTIME_ERROR = "runtime_error"  # solve raised
    BAD_RETURN = "bad_return"        # solve returned something else than str (capped) or None
    STEP_LIMIT = "step_limit"        # too many session calls in one episode
    TIMEOUT = "timeout"              # a wall-clock or CPU deadline passed
    MEMORY = "memory"                # the memory cap was reached
    CRASH = "crash"                  # the controller's process died
    PROTOCOL = "protocol"            # a malformed, oversized or unexpected message


class EpisodeFailure(HarnessError):
    """An executor's controller failed; ``index`` is the session it failed on (if any)."""

    def __init__(self, kind: FailureKind, message: str, index: int | None = None):
        super().__init__(message)
        self.kind = FailureKind(kind)
        self.message = message
        self.index = index


@runtime_checkable
class Executor(Protocol):
    """Runs a controller's ``solve`` on sessions the harness built (the seam between the one
    scoring loop and where the controller's code runs: in-process or in a jail)."""

    name: str

    def solve(self, beta: float, sessions: Sequence[Session]) -> list[Any]:
        """One answer per session, in order; raises :class:`EpisodeFailure` on the first
        failure. The harness checks the answers and writes the records."""


class InProcess:
    """The in-process executor: ``make_controller(beta).solve(session)`` in this process,
    a fresh controller per episode (unless one ``controller`` is given), as in the sandbox.
    Trusted code only: module state is shared (the sandbox isolates episodes)."""

    def __init__(self, spec: ControllerSpec, controller: Any = None):
        self.spec, self.name, self._ctl = spec, spec.name, controller

    def solve(self, beta: float, sessions: Sequence[Session]) -> list[Any]:
        answers = []
        for i, session in enumerate(sessions):
            ctl = self._ctl if self._ctl is not None else instantiate(self.spec, beta)
            try:
                answers.append(ctl.solve(session))
            except StepLimitExceeded as e:
                raise EpisodeFailure(FailureKind.STEP_LIMIT, f"never stopped ({e})", i) from None
            except HarnessError:
                raise
            except Exception as e:  # noqa: BLE001 (whatever solve raises is the controller's failure)
                raise EpisodeFailure(FailureKind.RUNTIME_ERROR,
                                     f"solve raised {type(e).__name__}: {e}", i) from None
        return answers


@dataclass(frozen=True)
class EpisodeRecord:
    model: str
    benchmark: str
    problem: int
    seed: int
    beta: float
    method: str
    answer: str | None
    correct: bool
    tokens: float
    steps: int


@dataclass
class Results:
    """Per-episode records of one or more methods, with summaries, files and intervals.

    ``records`` are the episodes of the methods evaluated; ``reference_records`` those of
    the reference :func:`evaluate` added (SC@<width> by default), kept apart so that
    ``records`` stays the evaluated method's own (objectives, counts); summaries, files
    and :meth:`to_pandas` use both (:attr:`all_records`). ``reference`` names the method
    differences are taken against; ``source`` says where the data came from.
    """

    records: list[EpisodeRecord] = field(default_factory=list)
    synthetic: bool = False
    traces: dict[tuple, list[dict]] = field(default_factory=dict)
    reference: str | None = None
    source: str = ""
    reference_records: list[EpisodeRecord] = field(default_factory=list)

    def __add__(self, other: Results) -> Results:
        own = {_record_key(r) for r in self.records + other.records}
        ref = {_record_key(r): r for r in self.reference_records + other.reference_records
               if _record_key(r) not in own}
        return Results(self.records + other.records, self.synthetic or other.synthetic,
                       {**self.traces, **other.traces}, self.reference or other.reference,
                       self.source or other.source, sorted(ref.values(), key=_record_key))

    @property
    def all_records(self) -> list[EpisodeRecord]:
        """The evaluated methods' episodes and the reference's, sorted."""
        if not self.reference_records:
            return self.records
        return sorted(self.records + self.reference_records, key=_record_key)

    @property
    def methods(self) -> list[str]:
        return sorted({r.method for r in self.all_records})

    def _cached(self, what: str, reference: str | None, fn):
        cache = self.__dict__.setdefault("_summaries", {})
        if reference is None and self.reference in self.methods:
            reference = self.reference
        key = (what, reference, len(self.records), len(self.reference_records))
        if key not in cache:
            cache[key] = fn(self.all_records, reference)
        return cache[key]

    def summary(self, reference: str | None = None) -> list[dict]:
        """Per (model, benchmark, method, beta) rows with problem-level intervals and
        paired differences against ``reference`` (default: :attr:`reference`, else the
        widest SC@k present); see :func:`autotts_gym.stats.summarize`."""
        from .stats import summarize

        return self._cached("summary", reference, summarize)

    def average(self, reference: str | None = None) -> list[dict]:
        """Per (method, beta) averages over all cells (model and benchmark ``all``) with
        stratified-bootstrap intervals; see :func:`autotts_gym.stats.pooled_summary`."""
        from .stats import pooled_summary

        return self._cached("average", reference, pooled_summary)

    def write(self, out: Path | str, reference: str | None = None, plot: bool = True,
              curves: Sequence[dict] | None = None) -> dict[str, Path]:
        """records.jsonl, summary.csv/.md, average.csv/.md (several cells), frontier.png,
        traces.jsonl; returns the paths written."""
        from .report import write_results

        return write_results(self, Path(out), reference, plot, curves)

    @classmethod
    def read(cls, path: Path | str) -> Results:
        """Results from a ``records.jsonl`` (or a directory holding one) that
        :meth:`write` produced."""
        import json

        path = Path(path)
        if path.is_dir():
            path = path / "records.jsonl"
        if not path.is_file():
            raise HarnessError(f"{path}: no records.jsonl to read")
        names = [f.name for f in fields(EpisodeRecord)]
        try:
            recs = [EpisodeRecord(**{k: d[k] for k in names})
                    for d in map(json.loads, path.read_text().splitlines()) if d]
        except (KeyError, TypeError, ValueError) as e:
            raise HarnessError(f"{path}: not a records.jsonl of episode records ({e})") from None
        return cls(recs)

    def to_pandas(self, what: str = "records"):
        """A pandas DataFrame of the ``records`` (every episode, reference included), the
        ``summary`` rows or the ``average`` rows. Needs pandas (``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Results.to_pandas needs pandas: pip install pandas") from None
        if what == "records":
            return pd.DataFrame([r.__dict__ for r in self.all_records],
                                columns=[f.name for f in fields(EpisodeRecord)])
        if what in ("summary", "average"):
            return pd.DataFrame(getattr(self, what)())
        raise ValueError(f"to_pandas({what!r}): expected 'records', 'summary' or 'average'")

    def __repr__(self) -> str:
        recs = self.all_records
        if not recs:
            return "Results(no episodes)"
        methods = self.methods
        shown = ", ".join(methods[:6]) + (", ..." if len(methods) > 6 else "")
        betas = sorted({r.beta for r in recs})
        bshow = ", ".join(f"{b:g}" for b in betas[:6]) + (", ..." if len(betas) > 6 else "")
        data = "SYNTHETIC data" if self.synthetic else "real data"
        return (f"Results({len(recs):,} episodes: methods [{shown}], "
                f"{len({r.model for r in recs})} models x "
                f"{len({r.benchmark for r in recs})} benchmarks, "
                f"{len({r.problem for r in recs})} problems, {len({r.seed for r in recs})} "
                f"seeds, betas [{bshow}]; reference {self.reference or 'auto'}; {data})")

    def _repr_markdown_(self) -> str:
        from .report import summary_markdown

        return f"{self!r}\n\n" + summary_markdown(self.summary())


def _record_key(r: EpisodeRecord) -> tuple:
    return (r.model, r.benchmark, r.method, r.beta, r.seed, r.problem)


# ----------------------------------------------------------------------------- policies


class GymPolicy:
    """Wraps an SB3 model (``predict``) or a callable ``(obs, mask) -> action``.

    ``env_kwargs`` are extra AutoTTS-v0 arguments (e.g. ``max_width``); ``wrapper`` maps
    the env to the one the policy acts on (e.g. :class:`~autotts_gym.wrappers.RoundMacroWrapper`);
    ``"auto"`` picks the macro wrapper for a model whose observation space is the macro
    wrapper's vector, else none. ``runner`` is how episodes are stepped
    (:mod:`autotts_gym.policy_runner`: ``"auto"``, ``"vector"``, ``"batched"``,
    ``"episode"``; all give the same records).
    """

    def __init__(self, policy: Any, name: str | None = None, env_kwargs: dict | None = None,
                 wrapper: Callable[[gym.Env], gym.Env] | str | None = "auto",
                 runner: str = "auto"):
        from .policy_runner import RUNNERS

        self.policy = policy
        self.name = name or type(policy).__name__
        self.env_kwargs = dict(env_kwargs or {})
        if isinstance(wrapper, str):
            if wrapper != "auto":
                raise ValueError(f"wrapper must be a callable, None or 'auto', got {wrapper!r}")
            wrapper = _infer_wrapper(policy)
        self.wrapper: Callable[[gym.Env], gym.Env] | None = wrapper
        if runner not in RUNNERS:
            raise ValueError(f"runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
        self.runner = runner
        predict = getattr(policy, "predict", None)
        self._predict = predict
        self._masked = (predict is not None
                        and "action_masks" in inspect.signature(predict).parameters)

    def act(self, obs: dict, mask: np.ndarray) -> int:
        if self._predict is None:
            return int(self.policy(obs, mask))
        if self._masked:
            action, _ = self._predict(obs, action_masks=mask, deterministic=True)
        else:
            action, _ = self._predict(obs, deterministic=True)
        return int(np.asarray(action).reshape(-1)[0])


def _infer_wrapper(policy: Any) -> Callable[[gym.Env], gym.Env] | None:
    """The macro wrapper for a model seeing its feature vector, else None (atomic env)."""
    from .wrappers import FEATURES, RoundMacroWrapper

    space = getattr(policy, "observation_space", None)
    if isinstance(space, gym.spaces.Box) and space.shape == (len(FEATURES),):
        return RoundMacroWrapper
    return None


def _is_gym_policy(policy: Any) -> bool:
    return isinstance(policy, GymPolicy) or hasattr(policy, "predict")


# ----------------------------------------------------------------------------- work units


@dataclass(frozen=True)
class _Unit:
    entry: int  # which (policy, method) of the job
    model: str
    benchmark: str
    beta: float
    seeds: tuple[int, ...]


_JOB: dict[str, Any] = {}  # what forked workers read: the policy, the store, options


def _run_unit(unit: _Unit) -> tuple[list[EpisodeRecord], dict]:
    job = _JOB
    rs: ReplaySet = job["store"].load(unit.model, unit.benchmark)
    policy, method = job["entries"][unit.entry]
    if isinstance(policy, GymPolicy):
        from .policy_runner import run_episodes

        return run_episodes(policy, method, job["store"], rs, unit.beta, unit.seeds,
                            job["kappa_probe"], job["max_steps"]), {}
    return _run_controller(policy, method, job, rs, unit)


def _where(name: str, rs: ReplaySet, problem: int, seed: int, beta: float) -> str:
    return (f"controller {name} on model {rs.model}, benchmark {rs.benchmark}, problem "
            f"{problem}, seed {seed}, beta {beta}")


def _run_controller(entry: ControllerSpec | Executor, method: str, job: dict, rs: ReplaySet,
                    unit: _Unit):
    out: list[EpisodeRecord] = []
    traces: dict = {}
    if isinstance(entry, ControllerSpec):
        ctl = instantiate(entry, unit.beta)
        batch_fn = getattr(ctl, "solve_batch", None) if job["fast"] else None
        if batch_fn is not None:
            batch = EpisodeBatch.from_seeds([rs.tables(p) for p in rs.problems], unit.seeds,
                                            job["kappa_probe"])
            ids = np.asarray(batch_fn(batch))
            for i, p in enumerate(rs.problems):
                for j, seed in enumerate(unit.seeds):
                    row = i * len(unit.seeds) + j
                    a = int(ids[row])
                    out.append(EpisodeRecord(
                        rs.model, rs.benchmark, p.index, seed, unit.beta, method,
                        p.vocab[a] if a != NO_ANSWER_ID else NO_ANSWER,
                        bool(a != NO_ANSWER_ID and a == p.gold_id),
                        float(batch.tokens[row]), int(batch.steps[row])))
            return out, traces
        executor: Executor = InProcess(entry)  # a fresh controller per episode
    else:
        executor = entry
    cells = [(p, seed) for p in rs.problems for seed in unit.seeds]
    sessions = [Session(Episode.from_seed(rs.tables(p), seed, job["kappa_probe"]), unit.beta,
                        max_steps=job["max_steps"], record_trace=job["trace"])
                for p, seed in cells]
    try:
        answers = executor.solve(unit.beta, sessions)
    except EpisodeFailure as e:
        if e.index is None or not 0 <= e.index < len(cells):
            where = (f"controller {executor.name} on model {rs.model}, benchmark "
                     f"{rs.benchmark}, beta {unit.beta}")
        else:
            where = _where(executor.name, rs, cells[e.index][0].index, cells[e.index][1],
                           unit.beta)
        raise EpisodeFailure(e.kind, f"{where}: {e.message}", e.index) from None
    for (p, seed), session, answer in zip(cells, sessions, answers, strict=True):
        if answer is not None and not isinstance(answer, str):
            raise EpisodeFailure(FailureKind.BAD_RETURN,
                                 f"{_where(executor.name, rs, p.index, seed, unit.beta)}: "
                                 f"solve returned {type(answer).__name__} {answer!r:.80}, "
                                 "expected a string or None")
        out.append(EpisodeRecord(rs.model, rs.benchmark, p.index, seed, unit.beta,
                                 method, answer, answer == p.gold_answer,
                                 float(session.tokens), session.steps))
        if job["trace"]:
            traces[(rs.model, rs.benchmark, method, unit.beta, seed, p.index)] = [
                e.to_dict() for e in session.trace]
    return out, traces


# ----------------------------------------------------------------------------- evaluate


def evaluate(
    policy: Any,
    store: ReplayStore,
    models: Iterable[str] | str | None = None,
    benchmarks: Iterable[str] | str | None = None,
    seeds: Iterable[int] = range(100),
    betas: Sequence[float] = (0.5,),
    workers: int | None = None,
    fast: bool = True,
    max_steps: int = 100_000,
    method: str | None = None,
    progress: bool = True,
    trace: bool = False,
    kappa_probe: float = 0.0,
    seed_chunk: int = 25,
    reference: Any = "sc64",
) -> Results:
    """Score a controller or a Gymnasium policy on every (set, problem, seed, beta).

    ``policy``: a controller (built-in name such as ``"cmc"``, module path, ``.py`` file,
    module, ``make_controller`` callable or :class:`ControllerSpec`), an :class:`Executor`
    (e.g. the discovery sandbox; it runs in this process, one unit per replay set and beta),
    or a Gymnasium policy (an SB3 model, a :class:`GymPolicy`). ``max_steps`` caps session
    calls (controllers) or env steps (policies) per episode. Results do not depend on ``workers``.

    ``reference`` (default ``"sc64"``, named ``SC@<width>`` after the store's branch
    count): a controller scored on the same episodes, as the CLI does, so summaries carry
    paired differences; its episodes go to ``Results.reference_records`` (``records``
    holds the policy's own). ``None``: no reference.
    """
    res = evaluate_many([(policy, betas, method)], store, models, benchmarks, seeds,
                        workers, fast, max_steps, progress, trace, kappa_probe, seed_chunk)
    if reference is None:
        return res
    sets = store.select(models, benchmarks)
    if reference == "sc64":
        label = reference_label(sets)
    elif isinstance(reference, str) and reference in res.methods:
        label = reference
    else:
        label = load_controller(reference).name
    if label not in res.methods:
        ref = evaluate_many([(reference, (0.5,), label)], store, models, benchmarks, seeds,
                            workers, fast, max_steps, False, False, kappa_probe, seed_chunk)
        res.reference_records = ref.records
    res.reference = label
    return res


def reference_label(sets: Sequence[ReplaySet]) -> str:
    """The name of the default reference on these replay sets: ``SC@<width>``, where the
    width is how many branches SC@64 really reads (``SC@16`` on a 16-branch store)."""
    from .baselines.sc import N_DEFAULT

    width = min((p.n_branches for rs in sets for p in rs.problems), default=N_DEFAULT)
    return f"SC@{min(N_DEFAULT, width)}"


def evaluate_many(
    entries: Sequence[tuple[Any, Sequence[float], str | None]],
    store: ReplayStore,
    models: Iterable[str] | str | None = None,
    benchmarks: Iterable[str] | str | None = None,
    seeds: Iterable[int] = range(100),
    workers: int | None = None,
    fast: bool = True,
    max_steps: int = 100_000,
    progress: bool = True,
    trace: bool = False,
    kappa_probe: float = 0.0,
    seed_chunk: int = 25,
) -> Results:
    """:func:`evaluate` for several ``(policy, betas, method name)`` entries in one pool."""
    sets = store.select(models, benchmarks)
    seeds = tuple(int(s) for s in seeds)
    resolved = []
    units = []
    local = False  # an Executor runs in this process (it holds a jail, a connection, ...)
    for k, (policy, betas, name) in enumerate(entries):
        if _is_gym_policy(policy):
            pol: Any = policy if isinstance(policy, GymPolicy) else GymPolicy(policy)
            batched = pol.runner != "episode"
        elif isinstance(policy, Executor) and not isinstance(policy, type):
            pol, batched, local = policy, False, True
        else:
            pol = load_controller(policy)
            batched = fast and not trace  # traces come from per-episode sessions
        if name is None and getattr(pol, "source", None) == "sc64":
            name = reference_label(sets)  # SC@64 named after the width it really reads
        resolved.append((pol, name or pol.name))
        chunk = len(seeds) if batched or isinstance(pol, Executor) else max(1, seed_chunk)
        units += [_Unit(k, rs.model, rs.benchmark, float(b), seeds[i:i + chunk])
                  for rs in sets for b in betas for i in range(0, len(seeds), chunk)]
    if not units:
        raise UsageError("nothing to evaluate: no replay set, seed or beta selected")
    _JOB.clear()
    _JOB.update(entries=resolved, store=store, fast=fast and not trace, max_steps=max_steps,
                trace=trace,
                kappa_probe=kappa_probe)
    n_workers = 1 if local else min(workers or os.cpu_count() or 1, len(units))
    records: list[EpisodeRecord] = []
    traces: dict = {}
    names = ", ".join(name for _, name in resolved)
    bar = _progress(len(units), f"eval {names}", progress)
    if n_workers <= 1 or "fork" not in mp.get_all_start_methods():
        for u in units:
            r, t = _run_unit(u)
            records += r
            traces.update(t)
            bar.update(1)
    else:
        with mp.get_context("fork").Pool(n_workers) as pool:
            for r, t in pool.imap_unordered(_run_unit, units):
                records += r
                traces.update(t)
                bar.update(1)
    bar.close()
    records.sort(key=_record_key)
    return Results(records, any(rs.synthetic for rs in sets), traces, source=_source(store))


def _source(store: ReplayStore) -> str:
    from .data import describe_source

    try:
        return describe_source(store)
    except (OSError, AutoTTSError):
        return ""


class _NoBar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, desc: str, enabled: bool):
    if not enabled or total < 4:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="unit", leave=False)


__all__ = [
    "ControllerError",
    "EpisodeFailure",
    "EpisodeRecord",
    "Executor",
    "FailureKind",
    "GymPolicy",
    "HarnessError",
    "InProcess",
    "Results",
    "betas_arg",
    "evaluate",
    "evaluate_many",
    "reference_label",
    "seeds_arg",
]


def betas_arg(text: str) -> list[float]:
    """Parse ``0,0.5,1`` into betas, each in [0, 1]."""
    try:
        out = [float(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--betas {text!r}: expected numbers separated by commas") from None
    bad = [b for b in out if not 0.0 <= b <= 1.0]
    if not out or bad:
        raise UsageError(f"--betas {text!r}: every beta must lie in [0, 1]")
    if len(set(out)) != len(out):
        raise UsageError(f"--betas {text!r}: a beta is repeated")
    return out


MAX_SEEDS = 100_000  # 30 problems x 100,000 seeds is already 3 million episodes per set


def seeds_arg(text: str | Iterable[int], max_seeds: int = MAX_SEEDS) -> list[int]:
    """Parse ``0-99`` or ``0,3,7`` or ``0-9,20`` into distinct seeds >= 0, at most
    ``max_seeds`` of them (counted before anything is built); :class:`UsageError` else.
    An already parsed list of seeds is checked the same way."""
    if not isinstance(text, str):
        text = ",".join(str(int(s)) for s in text)
    ranges: list[tuple[int, int]] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if sep else lo
        except ValueError:
            raise UsageError(f"--seeds {text!r}: {part!r} is not a seed or a range like "
                             "0-99 (seeds are whole numbers >= 0)") from None
        if hi < lo:
            raise UsageError(f"--seeds {text!r}: the range {part!r} is empty")
        ranges.append((lo, hi))
    total = sum(hi - lo + 1 for lo, hi in ranges)
    if total == 0:
        raise UsageError(f"--seeds {text!r}: no seeds given")
    if total > max_seeds:
        raise UsageError(f"--seeds {text!r}: {total:,} seeds; at most {max_seeds:,} "
                         "(the paper's protocol uses 100)")
    out = [s for lo, hi in ranges for s in range(lo, hi + 1)]
    seen: set[int] = set()
    for s in out:
        if s in seen:
            raise UsageError(f"--seeds {text!r}: seed {s} is given twice")
        seen.add(s)
    return out
