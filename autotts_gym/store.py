"""The replay store: cached reasoning trajectories in versioned HDF5 files.

A store is a directory laid out ``<root>/<model>/<benchmark>.h5``. Each file holds one
(model, benchmark) replay set. Schema version 1 (all arrays flat, ragged ones by offsets):

File attributes
    ``schema_version`` (int, 1), ``model``, ``benchmark``, ``source_file``,
    ``source_sha256``, ``synthetic`` (bool: made by the project's generator, not a model),
    ``normalizer`` (name of the answer normalizer that built the vocabularies, ``"none"``),
    ``created_by`` (package and version).

Per problem (length P)
    ``question``, ``gold_answer`` (UTF-8 strings), ``probe_freq`` (int32, tokens per
    interval), ``gold_id`` (int32, the gold answer's id in the problem's vocabulary, -1 when
    no branch ever produced it), ``vocab_offsets`` (int64, P + 1) into ``vocab`` (strings,
    each problem's answer vocabulary stored once), ``branch_offsets`` (int64, P + 1) into
    the per-branch arrays.

Per branch (length NB, problems concatenated in stored order)
    ``n_probes`` (int32, L: intermediate answers), ``tokens`` (int64, the trajectory's
    token count), ``final`` (int32, final answer id), ``probe_offsets`` (int64, NB + 1)
    into ``probes`` (int32 answer ids, probe k of a branch at ``probe_offsets[b] + k - 1``).

Numeric datasets carry a Fletcher-32 checksum (a damaged file fails on read, not silently)
and those of 1024 elements or more are gzip-compressed (shuffle filter); h5py reads them
transparently. Files written before the checksums were added still read.

Answer ids index the problem's vocabulary; ids are assigned in first-appearance order over
the branches in stored order (probes, then the final answer), so equal strings share an id
and correctness is ``answer_id == gold_id`` (exact string equality with the gold answer).
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import h5py
import numpy as np

from .errors import AutoTTSError

if TYPE_CHECKING:
    from .core import ProblemTables

SCHEMA_VERSION = 1
STORE_SUFFIX = ".h5"
# The most tokens one trajectory may have (and the largest probe interval): far above any
# model's context, far below where int64 sums over 128 branches and 100,000 seeds overflow.
MAX_BRANCH_TOKENS = 1_000_000_000

_STR = h5py.string_dtype(encoding="utf-8")


class StoreError(AutoTTSError, ValueError):
    """A store file (or a source it is built from) is malformed; the message names where."""


@dataclass(frozen=True, eq=False)
class Problem:
    """One problem's cached trajectories, as numpy arrays of answer ids.

    ``probe_answers[probe_offsets[b]:probe_offsets[b + 1]]`` are branch ``b``'s
    intermediate answers, ``final[b]`` its final answer, ``tokens[b]`` its token count.
    """

    index: int
    question: str
    gold_answer: str
    gold_id: int
    probe_freq: int
    vocab: tuple[str, ...]
    n_probes: np.ndarray
    tokens: np.ndarray
    final: np.ndarray
    probe_offsets: np.ndarray
    probe_answers: np.ndarray

    @property
    def n_branches(self) -> int:
        return int(self.n_probes.shape[0])

    def branch_probes(self, b: int) -> np.ndarray:
        return self.probe_answers[self.probe_offsets[b] : self.probe_offsets[b + 1]]

    def __repr__(self) -> str:
        return (f"Problem({self.index}: {self.n_branches} branches, gold "
                f"{self.gold_answer!r}, {len(self.vocab)} distinct answers)")

    def answer_id(self, answer: str | None) -> int:
        """The id of an answer string in this problem's vocabulary, -1 if never produced."""
        if answer is None:
            return -1
        try:
            return self.vocab.index(answer)
        except ValueError:
            return -1


@dataclass(frozen=True)
class SetBounds:
    """Bounds over the problems of a replay set (what an env needs to size its spaces).

    ``run_tokens[i]``: tokens problem i costs with every branch run to its end
    (``sum max(tokens, probe_freq * L)``); ``depth_sum[i]``: its number of probe-able depths
    (``sum (L + 1)``). Computed once per set from the stored arrays.
    """

    min_branches: int
    max_depth: int  # max(L) + 1
    run_tokens: np.ndarray  # int64 (P,)
    depth_sum: np.ndarray  # int64 (P,)

    def max_episode_tokens(self, kappa_probe: float = 0.0) -> float:
        """Most tokens one episode can charge: every branch run to its end, every depth
        probed at ``kappa_probe``."""
        return float((self.run_tokens + kappa_probe * self.depth_sum).max())


@dataclass(eq=False)
class ReplaySet:
    """All problems of one (model, benchmark), with the file's provenance.

    The set owns the replay tables of its problems: :meth:`tables` builds them on first use
    and keeps the :attr:`TABLES_CACHE_SIZE` most recently used.
    """

    TABLES_CACHE_SIZE: ClassVar[int] = 64

    model: str
    benchmark: str
    problems: list[Problem]
    source_file: str = ""
    source_sha256: str = ""
    synthetic: bool = False
    normalizer: str = "none"
    path: Path | None = None
    extra_attrs: dict[str, str] = field(default_factory=dict)
    _tables: OrderedDict[int, ProblemTables] = field(
        default_factory=OrderedDict, init=False, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.model, self.benchmark)

    def __len__(self) -> int:
        return len(self.problems)

    @cached_property
    def by_index(self) -> dict[int, Problem]:
        """Problems keyed by their index."""
        return {p.index: p for p in self.problems}

    @cached_property
    def bounds(self) -> SetBounds:
        """:class:`SetBounds` of this set (computed on first use)."""
        if not self.problems:
            raise StoreError(f"replay set {self.model}/{self.benchmark} holds no problem")
        run_tokens = [int(np.maximum(p.tokens, p.probe_freq * p.n_probes.astype(np.int64)).sum())
                      for p in self.problems]
        depth_sum = [int(p.n_probes.sum()) + p.n_branches for p in self.problems]
        return SetBounds(
            min_branches=min(p.n_branches for p in self.problems),
            max_depth=max(int(p.n_probes.max(initial=0)) for p in self.problems) + 1,
            run_tokens=np.asarray(run_tokens, dtype=np.int64),
            depth_sum=np.asarray(depth_sum, dtype=np.int64))

    def tables(self, problem: Problem | int) -> ProblemTables:
        """The :class:`~autotts_gym.core.ProblemTables` of one of this set's problems (a
        :class:`Problem` or its index), from the set's bounded cache."""
        from .core import ProblemTables  # the replay rules live in core

        p = problem if isinstance(problem, Problem) else self.by_index[int(problem)]
        cache = self._tables
        t = cache.get(p.index)
        if t is not None and t.problem is p:
            cache.move_to_end(p.index)
            return t
        t = cache[p.index] = ProblemTables.from_problem(p)
        if len(cache) > self.TABLES_CACHE_SIZE:
            cache.popitem(last=False)
        return t

    def __repr__(self) -> str:
        width = min((p.n_branches for p in self.problems), default=0)
        return (f"ReplaySet({self.model}/{self.benchmark}: {len(self.problems)} problems x "
                f"{width} branches{', SYNTHETIC' if self.synthetic else ''})")


class ProblemBuilder:
    """Builds a :class:`Problem` from answer strings, assigning vocabulary ids."""

    def __init__(self, index: int, question: str, gold_answer: str, probe_freq: int):
        self.index = index
        self.question = question
        self.gold_answer = gold_answer
        self.probe_freq = int(probe_freq)
        self._ids: dict[str, int] = {}
        self._probes: list[list[int]] = []
        self._tokens: list[int] = []
        self._final: list[int] = []

    def _id(self, answer: str) -> int:
        i = self._ids.get(answer)
        if i is None:
            i = self._ids[answer] = len(self._ids)
        return i

    def add_branch(self, probe_answers: Iterable[str], tokens: int, final_answer: str) -> None:
        self._probes.append([self._id(a) for a in probe_answers])
        self._final.append(self._id(final_answer))
        self._tokens.append(int(tokens))

    def build(self) -> Problem:
        n = np.array([len(p) for p in self._probes], dtype=np.int32)
        offsets = np.zeros(len(n) + 1, dtype=np.int64)
        np.cumsum(n, out=offsets[1:])
        flat = [a for p in self._probes for a in p]
        return Problem(
            index=self.index,
            question=self.question,
            gold_answer=self.gold_answer,
            gold_id=self._ids.get(self.gold_answer, -1),
            probe_freq=self.probe_freq,
            vocab=tuple(self._ids),
            n_probes=n,
            tokens=np.asarray(self._tokens, dtype=np.int64),
            final=np.asarray(self._final, dtype=np.int32),
            probe_offsets=offsets,
            probe_answers=np.asarray(flat, dtype=np.int32),
        )


# ----------------------------------------------------------------------------- writing


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over.

    Readers never see a half-written file; an exception leaves ``path`` as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a store is meant to be shared
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_replay_set(path: Path, rs: ReplaySet) -> None:
    """Write one replay set to ``path`` atomically (schema version 1)."""
    probs = rs.problems

    def _write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["model"] = rs.model
            f.attrs["benchmark"] = rs.benchmark
            f.attrs["source_file"] = rs.source_file
            f.attrs["source_sha256"] = rs.source_sha256
            f.attrs["synthetic"] = bool(rs.synthetic)
            f.attrs["normalizer"] = rs.normalizer
            f.attrs["created_by"] = "autotts-gym"
            for k, v in rs.extra_attrs.items():
                f.attrs[k] = v
            _dataset(f, "question", [p.question for p in probs], _STR)
            _dataset(f, "gold_answer", [p.gold_answer for p in probs], _STR)
            _dataset(f, "probe_freq", [p.probe_freq for p in probs], np.int32)
            _dataset(f, "gold_id", [p.gold_id for p in probs], np.int32)
            _dataset(f, "vocab", [a for p in probs for a in p.vocab], _STR)
            _dataset(f, "vocab_offsets", _offsets(len(p.vocab) for p in probs))
            _dataset(f, "branch_offsets", _offsets(p.n_branches for p in probs))
            _dataset(f, "n_probes", _cat([p.n_probes for p in probs], np.int32))
            _dataset(f, "tokens", _cat([p.tokens for p in probs], np.int64))
            _dataset(f, "final", _cat([p.final for p in probs], np.int32))
            _dataset(f, "probe_offsets", _offsets(int(n) for p in probs for n in p.n_probes))
            _dataset(f, "probes", _cat([p.probe_answers for p in probs], np.int32))

    atomic_write(path, _write)


# Numeric arrays at least this long are stored gzip-compressed (with the byte shuffle filter):
# on the real data a file shrinks about 4x (755 KB -> 191 KB) and reads about 2 ms slower.
# Readers need nothing extra (h5py decompresses transparently).
_COMPRESS_MIN = 1024


def _dataset(f: h5py.File, name: str, data, dtype=None) -> None:
    if dtype is _STR:
        f.create_dataset(name, data=data, dtype=dtype)
        return
    arr = np.asarray(data, dtype=dtype)
    if arr.size == 0:  # a filter needs chunks, and a chunk needs at least one element
        f.create_dataset(name, data=arr)
    elif arr.size >= _COMPRESS_MIN:
        f.create_dataset(name, data=arr, compression="gzip", compression_opts=4, shuffle=True,
                         fletcher32=True)
    else:
        f.create_dataset(name, data=arr, fletcher32=True)


def _offsets(sizes: Iterable[int]) -> np.ndarray:
    s = np.fromiter(sizes, dtype=np.int64)
    out = np.zeros(s.shape[0] + 1, dtype=np.int64)
    np.cumsum(s, out=out[1:])
    return out


def _cat(arrays: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)


# ----------------------------------------------------------------------------- reading

def read_attrs(path: Path) -> dict:
    """The file attributes of a store file (cheap: no dataset is read); {} if unreadable."""
    try:
        with h5py.File(path, "r") as f:
            return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except (OSError, RuntimeError, KeyError, ValueError, TypeError):  # damaged: load() says so
        return {}


_REQUIRED = (
    "question", "gold_answer", "probe_freq", "gold_id", "vocab", "vocab_offsets",
    "branch_offsets", "n_probes", "tokens", "final", "probe_offsets", "probes",
)


def _unreadable(path: Path, e: BaseException) -> StoreError:
    why = " ".join(str(e).split()) or type(e).__name__
    return StoreError(f"{path}: corrupt or unreadable store file ({why})")


def read_replay_set(path: Path) -> ReplaySet:
    """Load one store file into numpy arrays, validated (:func:`validate_arrays`); raise
    :class:`StoreError` naming the file and the problem, also for damage found while reading
    (a flipped byte fails the datasets' Fletcher-32 checksums or the decompression)."""
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise StoreError(f"{path}: not a readable HDF5 store file ({e})") from None
    try:
        with f:
            version = f.attrs.get("schema_version")
            if version is None:
                raise StoreError(f"{path}: attribute 'schema_version' is missing")
            if int(version) != SCHEMA_VERSION:
                raise StoreError(
                    f"{path}: attribute 'schema_version' is {int(version)}, "
                    f"this autotts-gym reads version {SCHEMA_VERSION}"
                )
            for name in _REQUIRED:
                if name not in f:
                    raise StoreError(f"{path}: dataset '{name}' is missing")
            d = {name: f[name][()] for name in _REQUIRED}
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        strs = {k: [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in d[k]]
                for k in ("question", "gold_answer", "vocab")}
    except StoreError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, OverflowError) as e:
        raise _unreadable(path, e) from None
    validate_arrays(path, d, strs)
    vo, bo, po = d["vocab_offsets"], d["branch_offsets"], d["probe_offsets"]
    problems = []
    for i in range(len(strs["question"])):
        b0, b1 = int(bo[i]), int(bo[i + 1])
        p0, p1 = int(po[b0]), int(po[b1])
        vocab = tuple(strs["vocab"][int(vo[i]) : int(vo[i + 1])])
        problems.append(
            Problem(
                index=i,
                question=strs["question"][i],
                gold_answer=strs["gold_answer"][i],
                gold_id=int(d["gold_id"][i]),
                probe_freq=int(d["probe_freq"][i]),
                vocab=vocab,
                n_probes=np.asarray(d["n_probes"][b0:b1], dtype=np.int32),
                tokens=np.asarray(d["tokens"][b0:b1], dtype=np.int64),
                final=np.asarray(d["final"][b0:b1], dtype=np.int32),
                probe_offsets=np.asarray(po[b0 : b1 + 1] - p0, dtype=np.int64),
                probe_answers=np.asarray(d["probes"][p0:p1], dtype=np.int32),
            )
        )
    known = {"schema_version", "model", "benchmark", "source_file", "source_sha256",
             "synthetic", "normalizer", "created_by"}
    return ReplaySet(
        model=str(attrs.get("model", path.parent.name)),
        benchmark=str(attrs.get("benchmark", path.stem)),
        problems=problems,
        source_file=str(attrs.get("source_file", "")),
        source_sha256=str(attrs.get("source_sha256", "")),
        synthetic=bool(attrs.get("synthetic", False)),
        normalizer=str(attrs.get("normalizer", "none")),
        path=path,
        extra_attrs={k: str(v) for k, v in attrs.items() if k not in known},
    )


_NUMERIC = ("probe_freq", "gold_id", "vocab_offsets", "branch_offsets", "n_probes", "tokens",
            "final", "probe_offsets", "probes")


def validate_arrays(  # noqa: C901 (a linear list of schema checks, read top to bottom)
        path: Path, d: dict[str, np.ndarray], strs: dict[str, list[str]]) -> None:
    """Check a store file's arrays against the schema, vectorized (once per load): shapes
    and offsets consistent, every answer id inside its problem's vocabulary, ``gold_id``
    in range and naming the gold answer, tokens in ``0..MAX_BRANCH_TOKENS``. Raises
    :class:`StoreError` naming the file, the dataset and the first bad problem."""

    def bad(name: str, msg: str) -> StoreError:
        return StoreError(f"{path}: dataset '{name}' {msg}")

    for name in _NUMERIC:
        a = d[name]
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise bad(name, f"must be a 1-d integer array, got {a.dtype} {a.shape}")
    n_prob = len(strs["question"])
    if n_prob == 0:
        raise bad("question", "holds no problems")
    for name in ("gold_answer", "probe_freq", "gold_id"):
        if len(d[name]) != n_prob:
            raise bad(name, f"has {len(d[name])} entries for {n_prob} problems")
    n_br = len(d["n_probes"])
    for name in ("tokens", "final"):
        if len(d[name]) != n_br:
            raise bad(name, f"has {len(d[name])} entries for {n_br} branches")

    def offsets(name: str, n: int, total: int, min_step: int) -> np.ndarray:
        o = d[name].astype(np.int64)
        if len(o) != n + 1 or o[0] != 0 or o[-1] != total:
            raise bad(name, f"must run from 0 to {total} in {n + 1} entries")
        step = np.diff(o)
        if (step < min_step).any():
            raise bad(name, f"steps below {min_step} at entry {int(np.argmax(step < min_step))}")
        return step

    n_vocab = offsets("vocab_offsets", n_prob, len(strs["vocab"]), 0)
    offsets("branch_offsets", n_prob, n_br, 1)  # every problem has a branch
    n_probes = offsets("probe_offsets", n_br, len(d["probes"]), 0)
    if not np.array_equal(n_probes, d["n_probes"]):
        raise bad("n_probes", "does not match 'probe_offsets'")

    def where(name: str, rows: np.ndarray, per: np.ndarray | None, msg: str) -> None:
        if rows.any():
            k = int(np.argmax(rows))
            if per is not None:  # a branch index: name its problem
                k = int(np.searchsorted(per, k, side="right")) - 1
            raise bad(name, f"{msg} (problem {k})")

    bo = d["branch_offsets"]
    pf = d["probe_freq"]
    where("probe_freq", (pf < 1) | (pf > MAX_BRANCH_TOKENS), None,
          f"must lie in 1..{MAX_BRANCH_TOKENS:,}")
    tok = d["tokens"]
    where("tokens", (tok < 0) | (tok > MAX_BRANCH_TOKENS), bo,
          f"must lie in 0..{MAX_BRANCH_TOKENS:,}")
    # answer ids: the min and max over each problem's segment against its vocabulary size
    po = d["probe_offsets"]
    for name, starts in (("final", bo[:-1]), ("probes", po[bo[:-1]])):
        a = np.append(d[name], 0)  # the sentinel keeps the start of an empty tail valid
        ends = np.append(starts[1:], len(a) - 1)
        lo, hi = np.minimum.reduceat(a, starts), np.maximum.reduceat(a, starts)
        where(name, (ends > starts) & ((lo < 0) | (hi >= n_vocab)), None,
              "holds an id outside the problem's vocabulary")
    gold = d["gold_id"]
    where("gold_id", (gold < -1) | (gold >= n_vocab), None,
          "holds an id outside the problem's vocabulary")
    vo = d["vocab_offsets"]
    for i, g in enumerate(gold.tolist()):
        vocab = strs["vocab"][int(vo[i]) : int(vo[i + 1])]
        answer = strs["gold_answer"][i]
        if (vocab[g] != answer) if g >= 0 else (answer in vocab):
            raise bad("gold_id", f"does not name the gold answer {answer!r} (problem {i})")


class ReplayStore:
    """A directory of replay sets, ``<root>/<model>/<benchmark>.h5``."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        if not self.root.is_dir():
            raise StoreError(f"{self.root}: replay store directory does not exist")
        self._cache: dict[tuple[str, str], ReplaySet] = {}

    def keys(self) -> list[tuple[str, str]]:
        """All (model, benchmark) pairs, sorted."""
        return sorted(
            (p.parent.name, p.stem) for p in self.root.glob(f"*/*{STORE_SUFFIX}")
        )

    def models(self) -> list[str]:
        return sorted({m for m, _ in self.keys()})

    def benchmarks(self, model: str | None = None) -> list[str]:
        return sorted({b for m, b in self.keys() if model is None or m == model})

    def path(self, model: str, benchmark: str) -> Path:
        return self.root / model / f"{benchmark}{STORE_SUFFIX}"

    def load(self, model: str, benchmark: str) -> ReplaySet:
        key = (model, benchmark)
        if key not in self._cache:
            p = self.path(model, benchmark)
            if not p.is_file():
                raise StoreError(
                    f"{self.root}: no replay set for model {model!r}, benchmark {benchmark!r} "
                    f"(have: {', '.join(f'{m}/{b}' for m, b in self.keys()) or 'none'})"
                )
            self._cache[key] = read_replay_set(p)
        return self._cache[key]

    def select(
        self,
        models: Iterable[str] | str | None = None,
        benchmarks: Iterable[str] | str | None = None,
    ) -> list[ReplaySet]:
        """The replay sets matching the given models and benchmarks (None: all)."""
        ms = _as_set(models)
        bs = _as_set(benchmarks)
        for wanted, what in ((ms, "model"), (bs, "benchmark")):
            if wanted is not None and not wanted:
                raise StoreError(f"{self.root}: no {what} selected (an empty list); "
                                 f"leave it out for all")
        keys = [(m, b) for m, b in self.keys()
                if (ms is None or m in ms) and (bs is None or b in bs)]
        for wanted, have, what in ((ms, {m for m, _ in keys}, "model"),
                                   (bs, {b for _, b in keys}, "benchmark")):
            missing = (wanted or set()) - have
            if missing:
                raise StoreError(
                    f"{self.root}: no replay set for {what} {', '.join(sorted(missing))} "
                    f"(have: {', '.join(f'{m}/{b}' for m, b in self.keys()) or 'none'})"
                )
        return [self.load(m, b) for m, b in keys]

    def __iter__(self) -> Iterator[ReplaySet]:
        return iter(self.select())

    @property
    def synthetic(self) -> bool:
        return any(rs.synthetic for rs in self)

    def __repr__(self) -> str:
        keys = self.keys()
        models = sorted({m for m, _ in keys})
        benches = sorted({b for _, b in keys})
        origin = getattr(self, "origin", None)
        return (f"ReplayStore({str(self.root)!r}: {len(keys)} sets, models "
                f"[{', '.join(models)}], benchmarks [{', '.join(benches)}]"
                f"{f', from {origin}' if origin else ''})")


def _as_set(x: Iterable[str] | str | None) -> set[str] | None:
    if x is None:
        return None
    if isinstance(x, str):
        return {s for s in x.split(",") if s}
    return set(x)
