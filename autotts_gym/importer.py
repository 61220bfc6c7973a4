"""Convert the AutoTTS JSON replay release into the project's HDF5 store.

Input: one JSON file, or a folder laid out ``<model>/<benchmark>.json``. The JSON schema is
the public release's (see ``../shared/replay/README.md``): a list of problems, each with
``question``, ``gold_answer``, ``probe_freq``, ``final_answers_trace`` and ``each_branch``
(triples ``[probe_answers, branch_tokens, final_answer]``).

Every malformed input raises :class:`~autotts_gym.store.StoreError` naming the file, the
problem index, the branch index, the field and what is wrong; nothing is written then.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .export import read_manifest
from .store import (
    MAX_BRANCH_TOKENS,
    STORE_SUFFIX,
    ProblemBuilder,
    ReplaySet,
    StoreError,
    read_attrs,
    write_replay_set,
)

Normalizer = Callable[[str], str]


def vocab_map(normalizer, gold: str, answers: Iterable[str]) -> dict[str, str]:
    """Canonical spelling of each answer of one problem: a per-problem normalizer (with
    ``merge``, e.g. math-verify clusters), a string function, or None (identity)."""
    if normalizer is None:
        return {a: a for a in {gold, *answers}}
    if hasattr(normalizer, "merge"):
        return normalizer.merge(gold, answers)
    return {a: normalizer(a) for a in {gold, *answers}}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _where(path: Path, problem: int | None = None, branch: int | None = None) -> str:
    s = str(path)
    if problem is not None:
        s += f": problem {problem}"
    if branch is not None:
        s += f", branch {branch}"
    return s


def _expect(cond: bool, path: Path, problem: int | None, branch: int | None, msg: str) -> None:
    if not cond:
        raise StoreError(f"{_where(path, problem, branch)}: {msg}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def parse_autotts_json(
    path: Path,
    model: str,
    benchmark: str,
    normalizer: Normalizer | None = None,
    normalizer_name: str = "none",
) -> ReplaySet:
    """Read and validate one AutoTTS JSON file into a :class:`ReplaySet`."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise StoreError(f"{path}: not valid JSON (truncated or corrupt): {e}") from None
    except UnicodeDecodeError as e:
        raise StoreError(f"{path}: not UTF-8 text: {e}") from None
    except RecursionError:
        raise StoreError(f"{path}: JSON nested too deeply to be a replay file "
                         "(a list of problem objects)") from None
    _expect(isinstance(data, list), path, None, None,
            f"top level must be a list of problems, got {type(data).__name__}")
    _expect(len(data) > 0, path, None, None, "the list of problems is empty")
    problems = []
    for i, p in enumerate(data):
        _expect(isinstance(p, dict), path, i, None,
                f"must be an object, got {type(p).__name__}")
        for key in ("question", "gold_answer", "probe_freq", "final_answers_trace", "each_branch"):
            _expect(key in p, path, i, None, f"field '{key}' is missing")
        _expect(isinstance(p["question"], str), path, i, None,
                f"field 'question' must be a string, got {type(p['question']).__name__}")
        _expect(isinstance(p["gold_answer"], str), path, i, None,
                f"field 'gold_answer' must be a string, got {type(p['gold_answer']).__name__}")
        freq = p["probe_freq"]
        _expect(_is_int(freq), path, i, None,
                f"field 'probe_freq' must be an integer, got {type(freq).__name__}")
        _expect(freq > 0, path, i, None, f"field 'probe_freq' must be > 0, got {freq}")
        _expect(freq <= MAX_BRANCH_TOKENS, path, i, None,
                f"field 'probe_freq' is too large ({freq} > {MAX_BRANCH_TOKENS:,})")
        branches, trace = p["each_branch"], p["final_answers_trace"]
        _expect(isinstance(branches, list), path, i, None,
                f"field 'each_branch' must be a list, got {type(branches).__name__}")
        _expect(len(branches) > 0, path, i, None, "field 'each_branch' is an empty branch list")
        _expect(isinstance(trace, list), path, i, None,
                f"field 'final_answers_trace' must be a list, got {type(trace).__name__}")
        _expect(len(trace) == len(branches), path, i, None,
                f"field 'final_answers_trace' has {len(trace)} entries, "
                f"'each_branch' has {len(branches)}")
        for j, br in enumerate(branches):
            _expect(isinstance(br, list) and len(br) == 3, path, i, j,
                    "field 'each_branch' entry must be a triple "
                    "[probe_answers, branch_tokens, final_answer]")
            probes, tokens, final = br
            _expect(isinstance(probes, list), path, i, j,
                    f"field 'probe_answers' must be a list, got {type(probes).__name__}")
            _expect(len(probes) > 0, path, i, j, "field 'probe_answers' is empty")
            for k, a in enumerate(probes):
                _expect(isinstance(a, str), path, i, j,
                        f"field 'probe_answers' element {k} must be a string, "
                        f"got {type(a).__name__}")
            _expect(_is_int(tokens), path, i, j,
                    f"field 'branch_tokens' must be an integer, got {type(tokens).__name__}")
            _expect(tokens >= 0, path, i, j, f"field 'branch_tokens' is negative ({tokens})")
            _expect(tokens <= MAX_BRANCH_TOKENS, path, i, j,
                    f"field 'branch_tokens' is too large ({tokens} > {MAX_BRANCH_TOKENS:,})")
            _expect(isinstance(final, str), path, i, j,
                    f"field 'final_answer' must be a string, got {type(final).__name__}")
            _expect(trace[j] == final, path, i, j,
                    f"field 'final_answer' {final!r} differs from "
                    f"'final_answers_trace'[{j}] {trace[j]!r}")
        norm = vocab_map(normalizer, p["gold_answer"],
                         [a for br in branches for a in (*br[0], br[2])])
        builder = ProblemBuilder(i, p["question"], norm[p["gold_answer"]], freq)
        for probes, tokens, final in branches:
            builder.add_branch([norm[a] for a in probes], tokens, norm[final])
        problems.append(builder.build())
    return ReplaySet(
        model=model,
        benchmark=benchmark,
        problems=problems,
        source_file=str(path),
        source_sha256=hashlib.sha256(raw).hexdigest(),
        synthetic=False,
        normalizer=normalizer_name,
    )


@dataclass
class ImportResult:
    model: str
    benchmark: str
    path: Path
    skipped: bool  # True when the store already held this exact source


def find_sources(src: Path) -> list[tuple[str, str, Path]]:
    """(model, benchmark, json path) for a file, a ``<model>/<benchmark>.json`` folder, or
    one model's folder of ``<benchmark>.json`` (the model is the folder's name)."""
    src = Path(src)
    if src.is_file():
        return [(src.parent.name, src.stem, src)]
    if not src.is_dir():
        raise StoreError(f"{src}: no such file or directory")
    found = sorted(src.glob("*/*.json")) or sorted(src.glob("*.json"))  # store or one model
    if not found:
        raise StoreError(f"{src}: no '<model>/<benchmark>.json' files found")
    return [(p.parent.name, p.stem, p) for p in found]


def import_sources(
    src: Path,
    out: Path,
    model: str | None = None,
    normalizer: Normalizer | None = None,
    normalizer_name: str = "none",
    force: bool = False,
) -> list[ImportResult]:
    """Import every JSON file under ``src`` into the store ``out``.

    All sources are parsed and validated before anything is written, and all new files are
    written to a staging folder inside ``out`` first and only then renamed into place, so a
    bad source or an interruption leaves the store as it was. Re-importing a source whose
    sha256 (and normalizer) the store already records is a no-op (the file is not touched)
    unless ``force``.
    """
    out = Path(out)
    todo: list[tuple[ImportResult, ReplaySet | None]] = []
    manifests: dict[Path, dict] = {}
    for m, b, path in find_sources(src):
        root = path.parent.parent
        if root not in manifests:
            manifests[root] = read_manifest(root)
        meta = manifests[root].get(f"{path.parent.name}/{b}")
        name = _normalizer_name(meta, normalizer_name)
        m = model or m
        dest = out / m / f"{b}{STORE_SUFFIX}"
        if not force and _already_imported(dest, path, name):
            todo.append((ImportResult(m, b, dest, True), None))
            continue
        rs = parse_autotts_json(path, m, b, normalizer, name)
        if meta:  # an autotts export: the store's own attributes come back with it
            rs.synthetic = bool(meta.get("synthetic", False))
            rs.extra_attrs = {str(k): str(v) for k, v in meta.get("extra_attrs", {}).items()}
        todo.append((ImportResult(m, b, dest, False), rs))
    pending = [(r, rs) for r, rs in todo if rs is not None]
    if pending:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=out))
        try:
            staged = []
            for k, (result, rs) in enumerate(pending):
                tmp = staging / f"{k}.staged"
                write_replay_set(tmp, rs)
                staged.append((tmp, result.path))
            for tmp, dest in staged:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [r for r, _ in todo]


def _normalizer_name(meta: dict | None, name: str) -> str:
    """The normalizer a store records: an exported store was normalized already."""
    prior = (meta or {}).get("normalizer", "none")
    if prior == "none":
        return name
    return prior if name in ("none", prior) else f"{prior}+{name}"


def _already_imported(dest: Path, source: Path, normalizer_name: str) -> bool:
    if not dest.is_file():
        return False
    attrs = read_attrs(dest)
    return (attrs.get("source_sha256") == sha256_file(source)
            and attrs.get("normalizer", "none") == normalizer_name)
