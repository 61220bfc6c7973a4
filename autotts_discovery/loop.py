"""The discovery loop: prompt -> explorer -> code check -> jailed beta sweep -> record.

Everything a round produced lies in ``RUN/rounds/rNNNN/`` (see :mod:`.history`). Rounds
are scored on the split's search benchmarks only (:class:`autotts_gym.protocol.Split`,
recorded in ``state.json`` with the data source); held-out benchmarks never enter a prompt
or the choice of the best controller, and are used by :func:`report` only.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autotts_gym.errors import AutoTTSError, UsageError
from autotts_gym.protocol import Split, mean_objective
from autotts_gym.report import records_jsonl, write_text
from autotts_gym.runlock import RunLock
from autotts_gym.store import ReplayStore, atomic_write

from . import jail
from .codecheck import check_reply
from .explorer import Explorer, ExplorerError
from .history import History
from .pricing import PriceTable
from .prompt import build_prompt
from .rounds import Round, RoundKind, best, selection
from .sandbox import Limits, SandboxResult, evaluate_in_sandbox


class DiscoveryError(AutoTTSError):
    """A discovery run, report or accept that produced nothing usable."""


@dataclass
class SeedController:
    """A controller the run starts from (``--controller FILE.py[:CLASS]``): scored in the
    jail as a round of its own before the explorer's first round, so the explorer sees it
    in the history like any other round."""

    source: str
    code: str
    cls: str | None = None
    config: dict | None = None


@dataclass
class LoopConfig:
    rounds: int = 10
    models: list[str] | None = None
    seeds: list[int] = field(default_factory=lambda: list(range(5)))
    betas: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    max_usd: float | None = None
    explorer: str = "offline"
    model: str = "offline"
    search: list[str] | None = None    # default: Split.for_benchmarks
    held_out: list[str] | None = None
    seed_controllers: list[SeedController] = field(default_factory=list)


def split_of(store: ReplayStore, cfg: LoopConfig) -> Split:
    return Split.for_benchmarks(store.benchmarks(), cfg.search, cfg.held_out)


def data_source(store: ReplayStore) -> dict:
    """What a run records about its data, so ``report`` can reuse it."""
    return {"store": str(Path(store.root).resolve()), "synthetic": bool(store.synthetic)}


def sweep_summary(result: SandboxResult, sc64_tokens: dict[str, float]) -> dict:
    """Per beta: accuracy, tokens (and vs SC@64), objective; score = mean objective."""
    rows = result.results.summary()
    per_beta = []
    for beta in sorted({r["beta"] for r in rows}):
        cells = [r for r in rows if r["beta"] == beta]
        acc = sum(r["accuracy_pct"] for r in cells) / len(cells)
        tok = sum(r["mean_tokens"] for r in cells) / len(cells)
        rel = sum(r["mean_tokens"] / sc64_tokens[r["model"]] for r in cells) / len(cells)
        per_beta.append({"beta": beta, "accuracy_pct": acc, "mean_tokens": tok,
                         "tokens_vs_sc64": rel,
                         "objective": mean_objective(
                             [r for r in result.results.records if r.beta == beta])})
    score = mean_objective(result.results.records) if result.results.records else None
    return {"per_beta": per_beta, "score": score, "cells": rows}


def sc64_reference(store: ReplayStore, models, seeds, search: Sequence[str]) -> dict[str, float]:
    from autotts_gym.harness import evaluate

    res = evaluate("sc64", store, models=models, benchmarks=list(search), seeds=seeds,
                   workers=1, progress=False)
    return {r["model"]: r["mean_tokens"] for r in res.summary()}


def run_loop(explorer: Explorer, store: ReplayStore, out: Path | str, cfg: LoopConfig,
             limits: Limits | None = None, prices: PriceTable | None = None,
             resume: bool = False, log=print) -> History:
    """Run rounds until ``cfg.rounds`` exist (one writer per run directory). When no round
    produced a working controller the state says ``failed`` (see :func:`require_success`)."""
    out = Path(out)
    if cfg.rounds < 1:
        raise UsageError(f"--rounds {cfg.rounds}: a discovery run needs at least one round")
    jail.require_jail()  # refuse before any work: there is no weaker mode
    with RunLock(out, "autotts discover"):
        history = History(out)
        saved = history.state()
        if history.indices() and not resume:
            raise DiscoveryError(f"{out}: a discovery run exists here; pass --resume")
        if resume and saved.get("config"):
            old = dict(saved["config"])
            seeds_done = [SeedController(**d) for d in old.pop("seed_controllers", [])]
            cfg = LoopConfig(**{**old, "rounds": cfg.rounds, "max_usd": cfg.max_usd,
                                "seed_controllers": seeds_done})
        split = split_of(store, cfg)
        cfg.search, cfg.held_out = list(split.search), list(split.held_out)
        _run(explorer, store, history, cfg, split, limits or Limits(),
             prices or PriceTable(), log)
    return history


def _state(cfg: LoopConfig, store: ReplayStore, status: str, usd: float = 0.0) -> dict:
    return {"config": asdict(cfg), "data": data_source(store), "status": status,
            "usd": usd}


def _run(explorer: Explorer, store: ReplayStore, history: History, cfg: LoopConfig,
         split: Split, limits: Limits, prices: PriceTable, log) -> None:
    models = cfg.models or store.models()
    sc64 = sc64_reference(store, models, cfg.seeds, split.search)
    baseline = "\n".join(f"- SC@64 on {m}: {t:,.0f} tokens per problem" for m, t in sc64.items())
    history.write_state(_state(cfg, store, "running"))
    spent = sum(r.get("cost.json", {}).get("usd") or 0.0 for r in history.rounds())
    if not prices.known(cfg.model):
        log(f"explorer model {cfg.model!r} has no price in the table: cost.json records "
            "tokens only (pass --prices FILE to count dollars)")
    _seed_rounds(store, history, cfg, split, models, limits, sc64, log)
    while history.next_index() <= cfg.rounds + len(cfg.seed_controllers):
        k = history.next_index()
        if cfg.max_usd is not None and spent >= cfg.max_usd:
            log(f"stopping before round {k}: spent ${spent:.4f} of ${cfg.max_usd:.2f}")
            history.write_state(_state(cfg, store, "budget_reached", spent))
            break
        t0 = time.monotonic()
        past = history.rounds()
        prompt = build_prompt([Round.from_files(r) for r in past], split, baseline)
        files: dict = {"prompt.md": prompt}
        try:
            prop = explorer.propose(prompt, past)
        except ExplorerError as e:
            files["record.json"] = {"round": k, "kind": RoundKind.API_ERROR.value,
                                    "message": str(e)[:300]}
            files["cost.json"] = {"input_tokens": 0, "output_tokens": 0, "usd": 0.0}
            history.write_round(k, files)
            log(f"round {k}: explorer failed: {e}")
            continue
        usd = prices.cost_or_none(prop.model, prop.input_tokens, prop.output_tokens)
        spent += usd or 0.0
        files["reply.md"] = prop.text
        files["cost.json"] = {"model": prop.model, "input_tokens": prop.input_tokens,
                              "output_tokens": prop.output_tokens, "usd": usd,
                              "cumulative_usd": spent}
        check = check_reply(prop.text)
        if check.code:
            files["controller.py"] = check.code
        if not check.ok:
            files["record.json"] = {"round": k, "kind": check.kind,
                                    "message": check.message[:300]}
        else:
            res = evaluate_in_sandbox(check.code, store, models, list(split.search),
                                      cfg.seeds, cfg.betas, limits, method=f"r{k:04d}")
            files.update(_scored_files(k, res, sc64))
        _finish_round(history, k, files, t0, f"round {k}", log)
    else:
        status = "done" if best(history.typed()) else "failed"
        history.write_state(_state(cfg, store, status, spent))


def _seed_rounds(store: ReplayStore, history: History, cfg: LoopConfig, split: Split,
                 models: Sequence[str], limits: Limits, sc64: dict[str, float], log) -> None:
    """Score the seed controllers not yet in the history, each as one round."""
    for i, seed in enumerate(cfg.seed_controllers, start=1):
        if i in history.indices():
            continue
        t0 = time.monotonic()
        res = evaluate_in_sandbox(seed.code, store, models, list(split.search), cfg.seeds,
                                  cfg.betas, limits, method=f"r{i:04d}", cls=seed.cls,
                                  config=seed.config)
        files: dict = {"prompt.md": f"(seed controller {seed.source}; no explorer call)\n",
                       "controller.py": seed.code,
                       "cost.json": {"input_tokens": 0, "output_tokens": 0, "usd": 0.0},
                       **_scored_files(i, res, sc64)}
        files["record.json"]["seed"] = seed.source
        _finish_round(history, i, files, t0, f"round {i} (seed {seed.source})", log)


def _scored_files(k: int, res: SandboxResult, sc64: dict[str, float]) -> dict:
    """A sandboxed round's record, traces and, when it worked, results and records."""
    files: dict = {"record.json": {"round": k, **res.to_dict()},
                   "traces.jsonl": "".join(json.dumps(t) + "\n" for t in res.traces)}
    if res.ok:
        files["results.json"] = sweep_summary(res, sc64)
        files["records.jsonl"] = records_jsonl(res.results.records)
    return files


def _finish_round(history: History, k: int, files: dict, t0: float, label: str, log) -> None:
    """Stamp the round's time, write it whole, and log its outcome."""
    files["record.json"]["seconds"] = round(time.monotonic() - t0, 2)
    history.write_round(k, files)
    r = Round.from_files({"index": k, **files})
    log(f"{label}: {r.kind.value}"
        + (f", score {r.score:.4f}" if r.score is not None else f": {r.message[:120]}"))


def require_success(history: History) -> Round:
    """The best round, or :class:`DiscoveryError` when every round failed."""
    chosen = best(history.typed())
    if chosen is None:
        kinds = ", ".join(sorted({r.kind.value for r in history.typed()})) or "none"
        raise DiscoveryError(f"{history.run}: no round produced a working controller "
                             f"(outcomes: {kinds})")
    return chosen


def best_round(history: History) -> Round | None:
    """The round with the best search-set score (held-out data plays no part)."""
    return best(history.typed())


def run_split(history: History, store: ReplayStore) -> Split:
    """The split a run was made with (recorded in its state), checked against ``store``."""
    cfg = history.state().get("config", {})
    return Split.for_benchmarks(store.benchmarks(), cfg.get("search"), cfg.get("held_out"))


def report(run: Path | str, store: ReplayStore, out: Path | str | None = None,
           seeds: Sequence[int] = range(10), betas: Sequence[float] = (0.0, 0.5, 1.0),
           limits: Limits | None = None, split: Split | None = None) -> Path:
    """Score the best controller on the held-out benchmarks beside SC@64 and CMC."""
    from autotts_gym.harness import evaluate_many

    history = History(run, create=False)
    chosen = best(history.typed())
    if chosen is None:
        raise DiscoveryError(f"{run}: no round produced a working controller")
    split = split or run_split(history, store)
    benches = list(split.require_held_out())
    out = Path(out or Path(run) / "report")
    res = evaluate_in_sandbox(chosen.code or "", store, None, benches, seeds, betas,
                              limits or Limits(wall_seconds=3600.0),
                              method=f"discovered r{chosen.index:04d}")
    if not res.ok:
        raise DiscoveryError(f"the chosen controller (round {chosen.index}) failed on "
                             f"held-out data: {res.kind.value if res.kind else '?'}: "
                             f"{res.message}")
    base = evaluate_many([("sc64", (0.5,), "SC@64"), ("cmc", tuple(betas), "CMC")], store,
                         None, benches, seeds, progress=False)
    paths = (res.results + base).write(out)
    sel = selection(history.typed())
    if sel is not None:
        write_text(out / "selection.md",
                   f"# Round selection on the search set ({', '.join(split.search)})\n\n"
                   f"Rule: {sel.rule}.\n\n{sel.table()}")
    return paths["summary_md"]


def accept(run: Path | str, k: int, dest: Path | str | None = None,
           name: str | None = None) -> Path:
    """Copy round k's controller into the user's controller folder (see
    :func:`autotts_gym.controllers.user_controllers_dir`) with its provenance; it is then
    addressable by name (``--controller NAME``)."""
    from autotts_gym.controllers import user_controllers_dir

    history = History(run, create=False)
    if k not in history.indices():
        raise DiscoveryError(f"{run}: no round {k} (rounds: "
                             f"{', '.join(map(str, history.indices())) or 'none'})")
    r = Round.from_files(history.load(k))
    if not r.ok or not r.code:
        raise DiscoveryError(f"{run}: round {k} has no working controller ({r.kind.value})")
    dest = Path(dest or user_controllers_dir())
    name = name or f"{Path(run).name.replace('-', '_')}_r{k:04d}"
    cost = r.files.get("cost.json", {})
    header = (f'# Discovered by autotts discover: run {Path(run).resolve().name}, round {k}, '
              f"explorer {cost.get('model', '?')}.\n# Search-set score "
              f"{r.score:.4f}; provenance in {name}.json.\n")
    atomic_write(dest / f"{name}.py", lambda p: Path(p).write_text(header + r.code))
    meta = {"run": str(Path(run).resolve()), "round": k, "explorer": cost.get("model"),
            "search_score": r.score,
            "per_beta": r.files.get("results.json", {}).get("per_beta"),
            "sha256": hashlib.sha256(r.code.encode()).hexdigest(),
            "accepted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write(dest / f"{name}.json", lambda p: Path(p).write_text(json.dumps(meta, indent=2)))
    return dest / f"{name}.py"
