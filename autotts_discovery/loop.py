"""The discovery loop: prompt -> explorer -> code check -> sandboxed beta sweep -> record.

Everything a round produced lies in ``RUN/rounds/rNNNN/`` (see :mod:`.history`). The
search set is aime24 of the chosen models; held-out benchmarks never enter a prompt or the
choice of the best controller.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autotts_gym.protocol import mean_objective
from autotts_gym.store import ReplayStore, atomic_write

from .codecheck import check_reply
from .explorer import Explorer, ExplorerError
from .history import History
from .pricing import PriceTable
from .prompt import HELD_OUT, build_prompt
from .sandbox import Limits, SandboxResult, evaluate_in_sandbox

SEARCH_BENCHMARK = "aime24"


@dataclass
class LoopConfig:
    rounds: int = 10
    models: list[str] | None = None
    seeds: list[int] = field(default_factory=lambda: list(range(5)))
    betas: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    max_usd: float | None = None
    explorer: str = "offline"
    model: str = "offline"


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


def sc64_reference(store: ReplayStore, models, seeds) -> dict[str, float]:
    from autotts_gym.harness import evaluate

    res = evaluate("sc64", store, models=models, benchmarks=SEARCH_BENCHMARK, seeds=seeds,
                   workers=1, progress=False)
    return {r["model"]: r["mean_tokens"] for r in res.summary()}


def run_loop(explorer: Explorer, store: ReplayStore, out: Path | str, cfg: LoopConfig,
             limits: Limits = Limits(), prices: PriceTable | None = None,
             resume: bool = False, log=print) -> History:
    out = Path(out)
    history = History(out)
    state_path = out / "state.json"
    if history.indices() and not resume:
        raise FileExistsError(f"{out}: a discovery run exists here; pass --resume")
    if resume and state_path.is_file():
        saved = json.loads(state_path.read_text())["config"]
        cfg = LoopConfig(**{**saved, "rounds": cfg.rounds, "max_usd": cfg.max_usd})
    prices = prices or PriceTable()
    models = cfg.models or store.models()
    assert SEARCH_BENCHMARK not in HELD_OUT
    sc64 = sc64_reference(store, models, cfg.seeds)
    baseline = "\n".join(f"- SC@64 on {m}: {t:,.0f} tokens per problem" for m, t in sc64.items())
    history.write_state({"config": asdict(cfg), "status": "running"})
    spent = sum(r.get("cost.json", {}).get("usd") or 0.0 for r in history.rounds())
    if not prices.known(cfg.model):
        log(f"explorer model {cfg.model!r} has no price in the table: cost.json records "
            "tokens only (pass --prices FILE to count dollars)")
    while history.next_index() <= cfg.rounds:
        k = history.next_index()
        if cfg.max_usd is not None and spent >= cfg.max_usd:
            log(f"stopping before round {k}: spent ${spent:.4f} of ${cfg.max_usd:.2f}")
            history.write_state({"config": asdict(cfg), "status": "budget_reached",
                                 "usd": spent})
            return history
        t0 = time.monotonic()
        past = history.rounds()
        prompt = build_prompt(past, baseline)
        files: dict = {"prompt.md": prompt}
        try:
            prop = explorer.propose(prompt, past)
        except ExplorerError as e:
            files["record.json"] = {"round": k, "kind": "api_error", "message": str(e)}
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
            files["record.json"] = {"round": k, "kind": check.kind, "message": check.message}
        else:
            res = evaluate_in_sandbox(check.code, store, models, SEARCH_BENCHMARK, cfg.seeds,
                                      cfg.betas, limits, method=f"r{k:04d}")
            files["record.json"] = {"round": k, **res.to_dict(), "kind": res.kind}
            files["traces.jsonl"] = "".join(json.dumps(t) + "\n" for t in res.traces)
            if res.ok:
                files["results.json"] = sweep_summary(res, sc64)
        files["record.json"]["seconds"] = round(time.monotonic() - t0, 2)
        history.write_round(k, files)
        score = files.get("results.json", {}).get("score")
        log(f"round {k}: {files['record.json']['kind']}"
            + (f", score {score:.4f}" if score is not None else
               f": {files['record.json'].get('message', '')[:120]}"))
    history.write_state({"config": asdict(cfg), "status": "done", "usd": spent})
    return history


def best_round(history: History) -> dict | None:
    """The round with the best search-set score (held-out data plays no part)."""
    ok = [r for r in history.rounds() if "results.json" in r]
    return max(ok, key=lambda r: r["results.json"]["score"]) if ok else None


def report(run: Path | str, store: ReplayStore, out: Path | str | None = None,
           seeds: Sequence[int] = range(10), betas: Sequence[float] = (0.0, 0.5, 1.0),
           limits: Limits = Limits(wall_seconds=3600.0)) -> Path:
    """Score the best controller on held-out benchmarks and all models beside baselines."""
    from autotts_gym.harness import evaluate_many

    history = History(run)
    best = best_round(history)
    if best is None:
        raise ValueError(f"{run}: no round produced a working controller")
    out = Path(out or Path(run) / "report")
    benches = [b for b in store.benchmarks() if b != SEARCH_BENCHMARK] or store.benchmarks()
    res = evaluate_in_sandbox(best["controller.py"], store, None, benches, seeds, betas,
                              limits, method=f"discovered r{best['index']:04d}")
    if not res.ok:
        raise RuntimeError(f"the chosen controller failed on held-out data: {res.kind}: "
                           f"{res.message}")
    base = evaluate_many([("sc64", (0.5,), "SC@64"), ("cmc", tuple(betas), "CMC")], store,
                         None, benches, seeds, progress=False)
    paths = (res.results + base).write(out)
    return paths["summary_md"]


def accept(run: Path | str, k: int, dest: Path | str | None = None,
           name: str | None = None) -> Path:
    """Copy round k's controller into the user's controller folder (see
    :func:`autotts_gym.controllers.user_controllers_dir`) with its provenance; it is then
    addressable by name (``--controller NAME``)."""
    from autotts_gym.controllers import user_controllers_dir

    history = History(run)
    r = history.load(k)
    if "controller.py" not in r or "results.json" not in r:
        raise ValueError(f"{run}: round {k} has no working controller")
    dest = Path(dest or user_controllers_dir())
    name = name or f"{Path(run).name.replace('-', '_')}_r{k:04d}"
    code = r["controller.py"]
    cost = r.get("cost.json", {})
    header = (f'# Discovered by autotts discover: run {Path(run).resolve().name}, round {k}, '
              f"explorer {cost.get('model', '?')}.\n# Search-set score "
              f"{r['results.json']['score']:.4f}; provenance in {name}.json.\n")
    atomic_write(dest / f"{name}.py", lambda p: Path(p).write_text(header + code))
    meta = {"run": str(Path(run).resolve()), "round": k, "explorer": cost.get("model"),
            "search_score": r["results.json"]["score"],
            "per_beta": r["results.json"]["per_beta"],
            "sha256": hashlib.sha256(code.encode()).hexdigest(),
            "accepted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write(dest / f"{name}.json", lambda p: Path(p).write_text(json.dumps(meta, indent=2)))
    return dest / f"{name}.py"


