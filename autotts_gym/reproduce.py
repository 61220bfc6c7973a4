"""The AutoTTS paper's Table 1 on the replay data, beside the paper's printed numbers.

:data:`TABLE1_METHODS` are the paper's rows; :func:`table1` scores them on identical
episodes; :func:`table1_markdown` prints the paper's numbers and the protocol's side by
side with problem-level intervals, and footnotes the cells whose printed value differs
from what the paper's own published code computes on this data (column
``printed_matches_code`` of the bundled ``reference_table1.csv``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from .harness import Results, evaluate_many
from .protocol import Split
from .stats import INTERVAL_METHOD
from .store import ReplayStore

# (controller, beta, name in the paper's Table 1)
TABLE1_METHODS: list[tuple[str, float, str]] = [
    ("sc64", 0.5, "SC@64"),
    ("asc", 0.5, "ASC"),
    ("esc", 0.5, "ESC"),
    ("parallel_probe", 0.5, "Parallel-Probe"),
    ("cmc", 0.5, "CMC(beta=0.5)"),
    ("cmc", 1.0, "CMC(beta=1.0)"),
]
REFERENCE = "SC@64"
FOOTNOTE_MARK = "(a)"
FOOTNOTE = (f"{FOOTNOTE_MARK} The paper's printed value differs from what the paper's own "
            "published code computes on this data (it came from another run or setting); "
            "the protocol columns are what that code gives.")


@dataclass(frozen=True)
class PaperCell:
    accuracy_pct: float
    tokens_k: float
    matches_code: bool


def paper_numbers() -> dict[tuple[str, str, str], PaperCell]:
    """The paper's printed Table 1: (model, benchmark, method) -> :class:`PaperCell`."""
    text = resources.files("autotts_gym").joinpath("reference_table1.csv").read_text()
    return {(r["model"], r["benchmark"], r["method"]):
            PaperCell(float(r["paper_accuracy_pct"]), float(r["paper_tokens_k"]),
                      r["printed_matches_code"] == "yes")
            for r in csv.DictReader(text.splitlines())}


def table1(store: ReplayStore, seeds: Iterable[int], workers: int | None = None,
           progress: bool = True, models=None, benchmarks=None) -> tuple[Results, list[dict]]:
    """Score every Table 1 method on the same episodes; returns (Results, table rows).

    Rows: model, benchmark, method, ``accuracy_pct`` (two decimals) and ``mean_tokens``
    (integer) as strings, as the paper's protocol reports them, plus the summary's
    intervals and the paper's printed numbers.
    """
    # the slowest methods first, so the worker pool stays busy to the end
    entries = [(ctl, (beta,), name) for ctl, beta, name in TABLE1_METHODS]
    entries.sort(key=lambda e: e[0] not in ("cmc", "parallel_probe"))
    results = evaluate_many(entries, store, models, benchmarks, seeds, workers,
                            progress=progress)
    results.reference = REFERENCE
    paper = paper_numbers()
    order = {name: i for i, (_, _, name) in enumerate(TABLE1_METHODS)}
    rows = []
    for r in sorted(results.summary(), key=lambda r: (r["model"], r["benchmark"],
                                                      order[r["method"]])):
        p = paper.get((r["model"], r["benchmark"], r["method"]))
        rows.append({**r, "accuracy_pct": f"{r['accuracy_pct']:.2f}",
                     "mean_tokens": f"{r['mean_tokens']:.0f}",
                     "paper_accuracy_pct": None if p is None else p.accuracy_pct,
                     "paper_tokens_k": None if p is None else p.tokens_k,
                     "paper_matches_code": None if p is None else p.matches_code})
    return results, rows


TABLE1_FIELDS = ["model", "benchmark", "method", "accuracy_pct", "accuracy_ci_low",
                 "accuracy_ci_high", "mean_tokens", "delta_vs_ref_pts", "delta_ci_low",
                 "delta_ci_high", "paper_accuracy_pct", "paper_tokens_k",
                 "paper_matches_code"]


def table1_csv(rows: Sequence[dict]) -> str:
    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, bool):
            return "yes" if v else "no"
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = [",".join(TABLE1_FIELDS)]
    lines += [",".join(fmt(r.get(k)) for k in TABLE1_FIELDS) for r in rows]
    return "\n".join(lines) + "\n"


def held_out_rows(results: Results, split: Split | None = None) -> list[dict]:
    """The held-out average (aime25 and hmmt25 by default, every model) per method, with
    stratified-bootstrap intervals and the paper's printed average over the same cells."""
    from .stats import pooled_summary

    split = split or Split.for_benchmarks(sorted({r.benchmark for r in results.records}))
    held = set(split.held_out)
    recs = [r for r in results.all_records if r.benchmark in held]
    if not recs:
        return []
    paper = paper_numbers()
    cells = sorted({(r.model, r.benchmark) for r in recs})
    rows = pooled_summary(recs, REFERENCE if any(r.method == REFERENCE for r in recs)
                          else None)
    for r in rows:
        found = [paper.get((m, b, r["method"])) for m, b in cells]
        ps = [p for p in found if p is not None]
        ok = len(ps) == len(found)  # the paper's average only when it printed every cell
        r["benchmark"] = "+".join(split.held_out)
        r["paper_accuracy_pct"] = sum(p.accuracy_pct for p in ps) / len(ps) if ok else None
        r["paper_tokens_k"] = sum(p.tokens_k for p in ps) / len(ps) if ok else None
    order = {name: i for i, (_, _, name) in enumerate(TABLE1_METHODS)}
    return sorted(rows, key=lambda r: order.get(r["method"], 99))


def _ci(lo: float | None, hi: float | None, sign: bool = False) -> str:
    if lo is None:
        return ""
    f = "{:+.1f}" if sign else "{:.1f}"
    return f"[{f.format(lo)}, {f.format(hi)}]"


def table1_markdown(rows: Sequence[dict], synthetic: bool,
                    held_out: Sequence[dict] = ()) -> str:
    """Paper and protocol side by side, intervals, the footnoted cells, the held-out
    average."""
    from .report import delta_cell, tokens_cell

    lines = []
    if synthetic:
        lines += ["> **SYNTHETIC replay data**: these numbers come from the bundled generator,",
                  "> not from a real model; they are not comparable with the paper.", ""]
    lines += [("| model | benchmark | method | paper accuracy % | accuracy % [95% CI] "
               "| paper tokens (k) | tokens (k) | accuracy - SC@64 (pts) [95% CI] |"),
              "|---|---|---|---|---|---|---|---|"]
    noted = 0
    for r in rows:
        pa, pt = r.get("paper_accuracy_pct"), r.get("paper_tokens_k")
        mark = ""
        if r.get("paper_matches_code") is False:
            mark, noted = f" {FOOTNOTE_MARK}", noted + 1
        lines.append(
            f"| {r['model']} | {r['benchmark']} | {r['method']} | "
            f"{'' if pa is None else f'{pa:.1f}'}{mark} | {r['accuracy_pct']} "
            f"{_ci(r['accuracy_ci_low'], r['accuracy_ci_high'])} | "
            f"{'' if pt is None else f'{pt:.1f}'}{mark} | "
            f"{float(r['mean_tokens']) / 1e3:.1f} | {delta_cell(r)} |")
    if held_out:
        bench = held_out[0]["benchmark"]
        lines += ["", (f"Held-out average ({bench}, every model; cells weighted equally, "
                       "problems resampled within cells):"), "",
                  ("| method | paper accuracy % | accuracy % [95% CI] | paper tokens (k) | "
                   "tokens (k) | tokens vs SC@64 [95% CI] | accuracy - SC@64 (pts) [95% CI] | "
                   "P(improve) |"), "|---|---|---|---|---|---|---|---|"]
        for r in held_out:
            pa, pt = r.get("paper_accuracy_pct"), r.get("paper_tokens_k")
            rel = tokens_cell(r)
            p = "" if r.get("p_improvement") is None else f"{r['p_improvement']:.2f}"
            lines.append(
                f"| {r['method']} | {'' if pa is None else f'{pa:.2f}'} | "
                f"{r['accuracy_pct']:.2f} {_ci(r['accuracy_ci_low'], r['accuracy_ci_high'])}"
                f" | {'' if pt is None else f'{pt:.1f}'} | {r['mean_tokens'] / 1e3:.1f} | "
                f"{rel} | {delta_cell(r)} | {p} |")
    lines += ["", (f"Intervals: {INTERVAL_METHOD}. Bold with *: the paired difference's "
                   "interval excludes 0.")]
    if noted:
        lines += ["", FOOTNOTE]
    return "\n".join(lines) + "\n"
