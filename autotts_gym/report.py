"""Summaries, tables, Pareto frontiers and plots of harness results."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from .store import atomic_write

if TYPE_CHECKING:
    from .harness import EpisodeRecord, Results

SUMMARY_FIELDS = ["model", "benchmark", "method", "beta", "accuracy_pct", "ci95_low",
                  "ci95_high", "mean_tokens", "tokens_vs_ref", "seeds", "problems"]


def summarize(records: Sequence[EpisodeRecord], reference_method: str = "SC@64") -> list[dict]:
    """One row per (model, benchmark, method, beta).

    Accuracy: per seed the fraction of problems answered correctly, then the mean over
    seeds (in %), with a 95% t-interval over seeds. Tokens: per seed the mean cost per
    problem, then the mean over seeds. ``tokens_vs_ref``: mean tokens over those of the
    reference method (SC@64) on the same model and benchmark, when present.
    """
    cells: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        cells[(r.model, r.benchmark, r.method, r.beta)][r.seed].append(r)
    rows = []
    for (m, b, meth, beta), by_seed in sorted(cells.items()):
        acc = np.array([np.mean([x.correct for x in v]) for _, v in sorted(by_seed.items())])
        tok = np.array([np.mean([x.tokens for x in v]) for _, v in sorted(by_seed.items())])
        n = len(acc)
        half = (stats.t.ppf(0.975, n - 1) * acc.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        rows.append({
            "model": m, "benchmark": b, "method": meth, "beta": beta,
            "accuracy_pct": 100 * acc.mean(), "ci95_low": 100 * (acc.mean() - half),
            "ci95_high": 100 * (acc.mean() + half), "mean_tokens": tok.mean(),
            "tokens_vs_ref": None, "seeds": n,
            "problems": len(next(iter(by_seed.values()))),
        })
    ref = {(r["model"], r["benchmark"]): r["mean_tokens"] for r in rows
           if r["method"] == reference_method}
    for row in rows:
        t = ref.get((row["model"], row["benchmark"]))
        if t:
            row["tokens_vs_ref"] = row["mean_tokens"] / t
    return rows


def pareto_frontier(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (tokens, accuracy) points no other point beats on both (fewer tokens, higher
    accuracy), sorted by tokens."""
    front: list[tuple[float, float]] = []
    for t, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or a > front[-1][1]:
            front.append((t, a))
    return front


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def summary_csv(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in SUMMARY_FIELDS})
    return buf.getvalue()


def summary_markdown(rows: Sequence[dict]) -> str:
    lines = ["| model | benchmark | method | beta | accuracy % (95% CI) | mean tokens "
             "| tokens vs SC@64 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        rel = "" if r["tokens_vs_ref"] is None else f"{100 * r['tokens_vs_ref']:.1f}%"
        lines.append(
            f"| {r['model']} | {r['benchmark']} | {r['method']} | {r['beta']:g} | "
            f"{r['accuracy_pct']:.2f} ({r['ci95_low']:.1f}-{r['ci95_high']:.1f}) | "
            f"{r['mean_tokens']:,.0f} | {rel} |")
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _record_line(r: EpisodeRecord) -> str:
    return (f'{{"model": {json.dumps(r.model)}, "benchmark": {json.dumps(r.benchmark)}, '
            f'"problem": {r.problem}, "seed": {r.seed}, "beta": {r.beta!r}, '
            f'"method": {json.dumps(r.method)}, "answer": {json.dumps(r.answer)}, '
            f'"correct": {"true" if r.correct else "false"}, "tokens": {r.tokens!r}, '
            f'"steps": {r.steps}}}\n')


def write_results(results: Results, out: Path, reference_method: str = "SC@64",
                  plot: bool = True) -> dict[str, Path]:
    """records.jsonl, summary.csv, summary.md, frontier.png (and traces.jsonl)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = results.summary(reference_method)
    paths = {"records": out / "records.jsonl", "summary_csv": out / "summary.csv",
             "summary_md": out / "summary.md", "plot": out / "frontier.png"}
    write_text(paths["records"], "".join(map(_record_line, results.records)))
    write_text(paths["summary_csv"], summary_csv(rows))
    note = ("> SYNTHETIC replay data (bundled generator output), not a real model.\n\n"
            if results.synthetic else "")
    write_text(paths["summary_md"], note + summary_markdown(rows))
    if plot:
        plot_frontier(rows, paths["plot"])
    else:
        del paths["plot"]
    if results.traces:
        paths["traces"] = out / "traces.jsonl"
        write_text(paths["traces"], "".join(
            json.dumps({"model": k[0], "benchmark": k[1], "method": k[2], "beta": k[3],
                        "seed": k[4], "problem": k[5], "trace": v}) + "\n"
            for k, v in sorted(results.traces.items())))
    return paths


def plot_frontier(rows: Sequence[dict], path: Path, title: str | None = None) -> None:
    """Accuracy against tokens, one panel per (model, benchmark): a method evaluated at
    several betas is a line with its Pareto frontier; single points are markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["model"], r["benchmark"]) for r in rows})
    if not panels:
        return
    cols = min(3, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), squeeze=False)
    methods = sorted({r["method"] for r in rows})
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    for ax, (m, b) in zip(axes.flat, panels, strict=False):  # the grid may have spare cells
        for meth in methods:
            pts = sorted((r["mean_tokens"] / 1e3, r["accuracy_pct"]) for r in rows
                         if r["model"] == m and r["benchmark"] == b and r["method"] == meth)
            if not pts:
                continue
            if len(pts) == 1:
                ax.scatter(*zip(*pts, strict=True), color=colors[meth], label=meth, zorder=3)
            else:
                ax.plot(*zip(*pts, strict=True), "o-", color=colors[meth], label=meth,
                        alpha=0.5, ms=3)
                ax.plot(*zip(*pareto_frontier(pts), strict=True), "-", color=colors[meth], lw=2)
        ax.set_title(f"{m} / {b}", fontsize=9)
        ax.set_xlabel("mean tokens per problem (k)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buf.getvalue()))
