"""Export replay stores to share them: the AutoTTS release's JSON layout, or Parquet.

``autotts-json`` writes ``DIR/<model>/<benchmark>.json`` exactly as the release lays it out
(a list of problems with ``question``, ``gold_answer``, ``probe_freq``,
``final_answers_trace`` and ``each_branch`` triples), so ``autotts data import DIR`` (and
any tool that reads the release) loads it; the store's own attributes (normalizer,
synthetic flag, collect settings) go to ``DIR/autotts-export.json``, which the importer
reads back, so importing an export gives the same store.

``parquet`` writes ``DIR/<model>/<benchmark>.parquet``, one row per branch (model,
benchmark, problem, question, gold answer, interval, branch, probe answers, tokens, final
answer, whether it is correct), loadable with
``datasets.load_dataset("parquet", data_files=...)`` or pandas.

Both write a dataset card ``DIR/README.md`` (model, questions, interval, template,
normalizer, counts). Every file is written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import AutoTTSError
from .store import Problem, ReplaySet, atomic_write

MANIFEST = "autotts-export.json"
FORMATS = ("autotts-json", "parquet")


class ExportError(AutoTTSError, ValueError):
    """An export cannot be written (unknown format, missing optional dependency)."""


def problem_to_json(p: Problem) -> dict:
    """One problem in the release's JSON schema (answer ids back to strings)."""
    v = p.vocab
    branches = []
    for b in range(p.n_branches):
        branches.append([[v[a] for a in p.branch_probes(b)], int(p.tokens[b]), v[p.final[b]]])
    return {"question": p.question, "gold_answer": p.gold_answer, "probe_freq": p.probe_freq,
            "final_answers_trace": [br[2] for br in branches], "each_branch": branches}


def set_attrs(rs: ReplaySet) -> dict:
    return {"normalizer": rs.normalizer, "synthetic": bool(rs.synthetic),
            "source_file": rs.source_file, "source_sha256": rs.source_sha256,
            "extra_attrs": dict(rs.extra_attrs)}


def read_manifest(root: Path) -> dict[str, dict]:
    """``{"model/benchmark": attrs}`` from an export's manifest ({} if there is none)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): dict(v) for k, v in data["sets"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise ExportError(f"{path}: not a valid export manifest: {e}") from None


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def export_sets(sets: Iterable[ReplaySet], out: Path | str, fmt: str) -> list[Path]:
    """Write each replay set to ``out`` in ``fmt``, then the manifest and the card."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    sets = list(sets)
    if not sets:
        raise ExportError("nothing to export: the store has no replay sets")
    out = Path(out)
    written = []
    if fmt == "parquet":
        pq, pa = _pyarrow()
    for rs in sets:
        if fmt == "autotts-json":
            path = out / rs.model / f"{rs.benchmark}.json"
            data = [problem_to_json(p) for p in rs.problems]
            _write_text(path, json.dumps(data, ensure_ascii=False))
        else:
            path = out / rs.model / f"{rs.benchmark}.parquet"
            table = pa.Table.from_pylist(branch_rows(rs), schema=_schema(pa))
            atomic_write(path, lambda tmp, t=table: pq.write_table(t, tmp))
        written.append(path)
    manifest = {"format": fmt, "sets": {f"{rs.model}/{rs.benchmark}": set_attrs(rs)
                                        for rs in sets}}
    _write_text(out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
    _write_text(out / "README.md", dataset_card(sets, fmt))
    return written


def branch_rows(rs: ReplaySet) -> list[dict]:
    rows = []
    for i, p in enumerate(rs.problems):
        v = p.vocab
        for b in range(p.n_branches):
            final = int(p.final[b])
            rows.append({"model": rs.model, "benchmark": rs.benchmark, "problem": i,
                         "question": p.question, "gold_answer": p.gold_answer,
                         "probe_freq": p.probe_freq, "branch": b,
                         "probe_answers": [v[a] for a in p.branch_probes(b)],
                         "tokens": int(p.tokens[b]), "final_answer": v[final],
                         "correct": final == p.gold_id})
    return rows


def _schema(pa):
    return pa.schema([("model", pa.string()), ("benchmark", pa.string()),
                      ("problem", pa.int32()), ("question", pa.string()),
                      ("gold_answer", pa.string()), ("probe_freq", pa.int32()),
                      ("branch", pa.int32()), ("probe_answers", pa.list_(pa.string())),
                      ("tokens", pa.int64()), ("final_answer", pa.string()),
                      ("correct", pa.bool_())])


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("--format parquet needs pyarrow: pip install "
                          "'autotts-gym[export]'") from None
    return pq, pa


_CARD_KEYS = (("collect_api", "collect API"), ("chat_template", "chat template"),
              ("thinking", "thinking"), ("probe_suffix", "probe suffix"),
              ("extract", "extraction"), ("temperature", "temperature"),
              ("max_tokens", "max tokens"), ("token_count", "token counts"))


def dataset_card(sets: list[ReplaySet], fmt: str) -> str:
    """A README.md describing the exported sets (Hugging Face dataset card style)."""
    lines = ["---"]
    if fmt == "parquet":
        lines.append("configs:")
        for rs in sets:
            lines += [f"- config_name: {rs.model}--{rs.benchmark}",
                      f"  data_files: {rs.model}/{rs.benchmark}.parquet"]
    lines += ["tags:", "- test-time-scaling", "- autotts-gym", "---", "",
              "# Reasoning trajectories for test-time scaling (autotts-gym replay store)", "",
              f"Exported by `autotts data export --format {fmt}`. Each problem has N sampled "
              "reasoning trajectories (branches); every branch records its answer probed "
              "after each interval of `probe_freq` tokens, its total token count and its "
              "final answer. "
              + ("Files are `<model>/<benchmark>.json` in the AutoTTS release layout; "
                 "`autotts data import DIR` reads them back."
                 if fmt == "autotts-json" else
                 "Files are `<model>/<benchmark>.parquet`, one row per branch: "
                 "`datasets.load_dataset(\"parquet\", data_files=...)`."), "",
              ("| model | benchmark | questions | branches | interval (tokens) | "
              "mean tokens/branch | final correct % | normalizer | synthetic |"),
              "|---|---|---|---|---|---|---|---|---|"]
    for rs in sets:
        tokens = np.concatenate([p.tokens for p in rs.problems])
        correct = np.concatenate([p.final == p.gold_id for p in rs.problems])
        freqs = sorted({p.probe_freq for p in rs.problems})
        lines.append(f"| {rs.model} | {rs.benchmark} | {len(rs.problems)} | {len(tokens):,} | "
                     f"{'/'.join(map(str, freqs))} | {tokens.mean():,.0f} | "
                     f"{100 * correct.mean():.1f} | {rs.normalizer} | "
                     f"{'yes' if rs.synthetic else 'no'} |")
    for rs in sets:
        attrs = rs.extra_attrs
        settings = [f"- {label}: `{attrs[k]!r}`" for k, label in _CARD_KEYS if k in attrs]
        if "prompt_template" in attrs:
            settings.append(f"- prompt template: `{attrs['prompt_template']!r}`")
        lines += ["", f"## {rs.model} / {rs.benchmark}", "",
                  f"- answer normalizer: `{rs.normalizer}`",
                  f"- source: `{rs.source_file or '-'}`"
                  + (f" (sha256 `{rs.source_sha256}`)" if rs.source_sha256 else ""), *settings]
    return "\n".join(lines) + "\n"


def diff_replay_sets(a: ReplaySet, b: ReplaySet) -> list[str]:
    """Where two replay sets differ (data and attributes, not file provenance)."""
    out = [f"{k}: {getattr(a, k)!r} != {getattr(b, k)!r}"
           for k in ("model", "benchmark", "normalizer", "synthetic", "extra_attrs")
           if getattr(a, k) != getattr(b, k)]
    if len(a.problems) != len(b.problems):
        return [*out, f"problems: {len(a.problems)} != {len(b.problems)}"]
    for i, (p, q) in enumerate(zip(a.problems, b.problems, strict=True)):
        for k in ("question", "gold_answer", "gold_id", "probe_freq", "vocab"):
            if getattr(p, k) != getattr(q, k):
                out.append(f"problem {i}: {k} differs")
        for k in ("n_probes", "tokens", "final", "probe_offsets", "probe_answers"):
            if not np.array_equal(getattr(p, k), getattr(q, k)):
                out.append(f"problem {i}: {k} differs")
    return out
