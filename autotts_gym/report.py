"""Tables, files and plots of harness results; every number with its interval from
:mod:`autotts_gym.stats`."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .stats import INTERVAL_METHOD, SUMMARY_FIELDS, pooled_summary, summarize
from .store import atomic_write

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.container import Container

    from .harness import EpisodeRecord, Results

__all__ = ["SUMMARY_FIELDS", "average_markdown", "method_colors", "pareto_frontier",
           "plot_frontier", "pooled_summary", "summarize", "summary_csv", "summary_markdown",
           "write_results", "write_text"]

SIGNIFICANT = "*"
MARK_NOTE = (f"Bold with {SIGNIFICANT}: the paired difference's 95% interval excludes 0. "
             f"Intervals: {INTERVAL_METHOD}.")


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
    """``summary.csv`` / ``average.csv``: exactly :data:`SUMMARY_FIELDS`."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n",
                       extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in SUMMARY_FIELDS})
    return buf.getvalue()


def _ci(lo, hi, digits: int = 1, sign: bool = False) -> str:
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"[{f.format(lo)}, {f.format(hi)}]"


def delta_cell(r: dict) -> str:
    """``+2.04 [-2.2, +7.3]``, bold and starred when the interval excludes 0."""
    if r.get("delta_vs_ref_pts") is None:
        return ""
    text = (f"{r['delta_vs_ref_pts']:+.2f} "
            f"{_ci(r['delta_ci_low'], r['delta_ci_high'], digits=2, sign=True)}")
    if r["method"] != r.get("reference") and not (
            r["delta_ci_low"] <= 0 <= r["delta_ci_high"]):
        text = f"**{text}**{SIGNIFICANT}"
    return text


def tokens_cell(r: dict) -> str:
    if r.get("tokens_vs_ref") is None:
        return ""
    lo, hi = r.get("tokens_vs_ref_ci_low"), r.get("tokens_vs_ref_ci_high")
    ci = "" if lo is None or hi is None else f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{100 * r['tokens_vs_ref']:.1f}%{ci}"


def _reference_name(rows: Sequence[dict]) -> str:
    return next((r["reference"] for r in rows if r.get("reference")), "reference")


def summary_markdown(rows: Sequence[dict], pooled: bool = False) -> str:
    """A Markdown table of summary (or pooled) rows with intervals; differences whose
    interval excludes 0 are bold and starred."""
    ref = _reference_name(rows)
    head = ["method", "beta"] if pooled else ["model", "benchmark", "method", "beta"]
    head += ["accuracy % [95% CI]", "mean tokens", f"tokens vs {ref} [95% CI]",
             f"accuracy - {ref} (pts) [95% CI]", "P(improve)",
             "cells x problems x seeds" if pooled else "problems x seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"], f"{r['beta']:g}"]
        if not pooled:
            cells = [r["model"], r["benchmark"], *cells]
        p = "" if r.get("p_improvement") is None else f"{r['p_improvement']:.2f}"
        size = f"{r['n_problems']} x {r['n_seeds']}"
        if pooled:
            size = f"{r.get('n_cells', 1)} x {r['n_problems'] // max(1, r.get('n_cells', 1))}" \
                   f" x {r['n_seeds']}"
        cells += [f"{r['accuracy_pct']:.2f} {_ci(r['accuracy_ci_low'], r['accuracy_ci_high'])}",
                  f"{r['mean_tokens']:,.0f}", tokens_cell(r), delta_cell(r), p, size]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + MARK_NOTE + "\n"


def average_markdown(rows: Sequence[dict]) -> str:
    return summary_markdown(rows, pooled=True)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def records_jsonl(records: Iterable[EpisodeRecord]) -> str:
    """Episode records as ``records.jsonl`` text (what :meth:`Results.read` reads back)."""
    return "".join(map(_record_line, records))


def _record_line(r: EpisodeRecord) -> str:
    return (f'{{"model": {json.dumps(r.model)}, "benchmark": {json.dumps(r.benchmark)}, '
            f'"problem": {r.problem}, "seed": {r.seed}, "beta": {r.beta!r}, '
            f'"method": {json.dumps(r.method)}, "answer": {json.dumps(r.answer)}, '
            f'"correct": {"true" if r.correct else "false"}, "tokens": {r.tokens!r}, '
            f'"steps": {r.steps}}}\n')


def data_note(results: Results) -> str:
    if results.synthetic:
        return "> SYNTHETIC replay data (bundled generator output), not a real model.\n\n"
    return f"> Data: {results.source}\n\n" if results.source else ""


def write_results(results: Results, out: Path, reference: str | None = None,
                  plot: bool = True, curves: Sequence[dict] | None = None
                  ) -> dict[str, Path]:
    """records.jsonl, summary.csv/.md, average.csv/.md (when there are several cells),
    frontier.png (with ``curves`` beside the methods), traces.jsonl."""
    out.mkdir(parents=True, exist_ok=True)
    rows = results.summary(reference)
    paths = {"records": out / "records.jsonl", "summary_csv": out / "summary.csv",
             "summary_md": out / "summary.md"}
    write_text(paths["records"], records_jsonl(results.all_records))
    write_text(paths["summary_csv"], summary_csv(rows))
    note = data_note(results)
    write_text(paths["summary_md"], note + summary_markdown(rows))
    if len({(r["model"], r["benchmark"]) for r in rows}) > 1:
        avg = results.average(reference)
        paths["average_csv"] = out / "average.csv"
        paths["average_md"] = out / "average.md"
        write_text(paths["average_csv"], summary_csv(avg))
        write_text(paths["average_md"], note + "Average over cells (model and benchmark "
                   "`all`), cells weighted equally, problems resampled within cells.\n\n"
                   + average_markdown(avg))
    if plot:
        paths["plot"] = out / "frontier.png"
        plot_frontier(rows, paths["plot"], caption=caption(results), curves=curves)
    if results.traces:
        paths["traces"] = out / "traces.jsonl"
        write_text(paths["traces"], "".join(
            json.dumps({"model": k[0], "benchmark": k[1], "method": k[2], "beta": k[3],
                        "seed": k[4], "problem": k[5], "trace": v}) + "\n"
            for k, v in sorted(results.traces.items())))
    return paths


def caption(results: Results) -> str:
    data = results.source or ("SYNTHETIC replay data" if results.synthetic
                              else "real replay data")
    return f"Data: {data}. Error bars: {INTERVAL_METHOD}."


# ----------------------------------------------------------------------------- plots

_FIXED_COLORS = {"SC": "#444444", "CMC": "#1f77b4", "ASC": "#ff7f0e", "ESC": "#2ca02c",
                 "Parallel-Probe": "#9467bd", "RL": "#d62728", "pass": "#8c564b"}
_PALETTE = ["#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a",
            "#ff9896", "#c5b0d5", "#c49c94"]


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    """One colour per method, the same in every figure for the built-in families (SC@k,
    CMC, ASC, ESC, Parallel-Probe, RL(...), pass@k); others in sorted order."""
    out: dict[str, str] = {}
    rest: list[str] = []
    for m in sorted(set(methods)):
        family = m.split("@")[0].split("(")[0]
        if family in _FIXED_COLORS and _FIXED_COLORS[family] not in out.values():
            out[m] = _FIXED_COLORS[family]
        else:
            rest.append(m)
    free = [c for c in _PALETTE if c not in out.values()]
    for i, m in enumerate(rest):
        out[m] = free[i % len(free)]
    return out


def plot_frontier(rows: Sequence[dict], path: Path, title: str | None = None,
                  caption: str = "", curves: Sequence[dict] | None = None) -> None:
    """Accuracy against tokens, one panel per (model, benchmark), one colour per method.

    Each point carries its 95% problem-level interval as an error bar and its beta as a
    label; a method evaluated at several betas is a line with its Pareto frontier drawn
    bold. ``curves`` (rows of :func:`autotts_gym.curves.reference_curves`) add SC@k and
    pass@k for k = 1..N as thin lines with shaded intervals. One legend per figure and a
    caption line naming the data and the interval method.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = list(curves or [])
    panels = sorted({(r["model"], r["benchmark"]) for r in [*rows, *curves]})
    if not panels:
        return
    cols = min(3, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    height = 3.6 * nrows + 0.75  # inches: panels, then a legend row and the caption
    fig, axes = plt.subplots(nrows, cols, figsize=(5.0 * cols, height), squeeze=False)
    methods = sorted({r["method"] for r in rows})
    curve_names = sorted({c["curve"] for c in curves})
    colors = method_colors([*methods, *curve_names])
    # a line (Line2D) per curve, an ErrorbarContainer per method: both legend handles
    handles: dict[str, Artist | Container] = {}
    for ax, (m, b) in zip(axes.flat, panels, strict=False):  # spare axes are blanked
        for name in curve_names:
            pts = sorted((c["mean_tokens"] / 1e3, c["accuracy_pct"], c["accuracy_ci_low"],
                          c["accuracy_ci_high"]) for c in curves
                         if c["model"] == m and c["benchmark"] == b and c["curve"] == name)
            if not pts:
                continue
            x, y, lo, hi = zip(*pts, strict=True)
            (h,) = ax.plot(x, y, "-", color=colors[name], lw=1, alpha=0.8,
                           label=f"{name} (k = 1..{len(pts)})")
            ax.fill_between(x, lo, hi, color=colors[name], alpha=0.12, lw=0)
            handles.setdefault(h.get_label(), h)
        for meth in methods:
            points = sorted((r["mean_tokens"] / 1e3, r["accuracy_pct"], r["accuracy_ci_low"],
                             r["accuracy_ci_high"], r["beta"]) for r in rows
                            if r["model"] == m and r["benchmark"] == b and r["method"] == meth)
            if not points:
                continue
            x, y, lo, hi, betas = zip(*points, strict=True)
            err = [[yi - li for yi, li in zip(y, lo, strict=True)],
                   [hi_ - yi for yi, hi_ in zip(y, hi, strict=True)]]
            eb = ax.errorbar(x, y, yerr=err, fmt="o" if len(points) == 1 else "o-",
                            color=colors[meth], ms=4, lw=1, capsize=2, alpha=0.85,
                            label=meth)
            handles.setdefault(meth, eb)
            if len(points) > 1:
                fx, fy = zip(*pareto_frontier(zip(x, y, strict=True)), strict=True)
                ax.plot(fx, fy, "-", color=colors[meth], lw=2.2)
            if len(set(betas)) > 1 or len(methods) > 1:
                labels: dict[tuple[float, float], list[str]] = {}
                # coincident points share one label
                for xi, yi, bi in zip(x, y, betas, strict=True):
                    labels.setdefault((round(xi, 1), round(yi, 2)), []).append(f"{bi:g}")
                for (xi, yi), bs in labels.items():
                    ax.annotate(",".join(bs), (xi, yi), textcoords="offset points",
                                xytext=(3, 3), fontsize=6, color=colors[meth])
        ax.set_title(f"{m} / {b}", fontsize=9)
        ax.set_xlabel("mean tokens per problem (k)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    names = list(handles)
    # the stub wants Artists only; matplotlib's legend also takes containers (errorbar)
    fig.legend([handles[k] for k in names], names,  # type: ignore[call-overload]
               loc="lower center", ncol=min(len(names), 6), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 0.3 / height))
    note = " ".join(x for x in ("Numbers next to points: beta." if methods else "", caption)
                    if x)
    fig.text(0.5, 0.005, "\n".join(textwrap.wrap(note, 60 * cols)), ha="center",
             va="bottom", fontsize=6.5, color="#333333")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.65 / height, 1, 0.97 if title else 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buf.getvalue()))
