"""``autotts reproduce``, ``autotts eval`` and ``autotts sweep``."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from importlib import resources
from pathlib import Path

from autotts_gym.errors import AutoTTSError, UsageError
from autotts_gym.harness import MAX_SEEDS

from .. import args as args_

# (controller, beta, name in the paper's Table 1)
TABLE1_METHODS = [
    ("sc64", 0.5, "SC@64"),
    ("asc", 0.5, "ASC"),
    ("esc", 0.5, "ESC"),
    ("parallel_probe", 0.5, "Parallel-Probe"),
    ("cmc", 0.5, "CMC(beta=0.5)"),
    ("cmc", 1.0, "CMC(beta=1.0)"),
]
BASELINES = list(dict.fromkeys(ctl for ctl, _, _ in TABLE1_METHODS))


def _betas(text: str) -> list[float]:
    try:
        out = [float(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected numbers separated by commas") from None
    bad = [b for b in out if not 0.0 <= b <= 1.0]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: every beta must lie in [0, 1]")
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"{text!r}: a beta is repeated")
    return out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replay-dir", help="store or AutoTTS JSON folder (default: see README)")
    p.add_argument("--models", type=args_.names,
                   help="comma-separated models (default: all)")
    p.add_argument("--benchmarks", type=args_.names,
                   help="comma-separated benchmarks (default: all)")
    p.add_argument("--seeds", type=args_.seeds, default="0-99",
                   help=f"branch-order seeds, e.g. 0-99 or 0,1,5 (at most {MAX_SEEDS:,})")
    p.add_argument("--workers", type=args_.positive_int, default=None,
                   help="processes (default: all cores)")
    p.add_argument("--out", required=True, type=Path,
                   help="output directory (checked and locked before the work starts)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="the AutoTTS paper's Table 1 on the replay data")
    _common(p)
    p.set_defaults(func=cmd_reproduce, out_policy="lock")

    for name, helptext in (("eval", "score a controller over a beta sweep"),
                           ("sweep", "a controller's accuracy-cost curve over beta")):
        p = sub.add_parser(name, help=helptext)
        _common(p)
        p.add_argument("--controller", required=True,
                       help="controller file (.py), module path or built-in name "
                            "(sc64, asc, esc, parallel_probe, cmc); FILE.py:CLASS runs a "
                            "class written for the AutoTTS release")
        p.add_argument("--controller-config", metavar="KEY=VALUE,...",
                       help="config of a release-style class, beside beta (from --betas)")
        p.add_argument("--betas", type=_betas,
                       default=("0,0.25,0.5,0.75,1" if name == "eval"
                                else "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"),
                       help="comma-separated betas in [0, 1] (cost weight of the objective)")
        p.add_argument("--no-fast", action="store_true",
                       help="always run one session per episode (no vectorized path)")
        p.add_argument("--trace", action="store_true", help="write execution traces")
        p.add_argument("--sandbox", action="store_true",
                       help="run the controller file in the discovery sandbox (untrusted code)")
        p.add_argument("--max-steps", type=args_.positive_int, default=100_000,
                       help="per-episode cap on session calls")
        p.add_argument("--baselines", default="sc64,cmc",
                       type=args_.choices_list(BASELINES, allow_empty=True),
                       help=f"baselines drawn beside the curve, from {', '.join(BASELINES)} "
                            "(comma-separated, '' for none)")
        p.set_defaults(func=cmd_eval, out_policy="lock")


def _open(args):
    from autotts_gym.data import describe_source, open_store

    store = open_store(args.replay_dir)
    print(describe_source(store), file=sys.stderr)
    return store


def _seeds(args) -> list[int]:
    return list(args.seeds)  # parsed and capped by args_.seeds


def paper_numbers() -> dict[tuple[str, str, str], tuple[float, float]]:
    """The paper's printed Table 1: (model, benchmark, method) -> (accuracy %, tokens k)."""
    text = resources.files("autotts_gym").joinpath("reference_table1.csv").read_text()
    return {(r["model"], r["benchmark"], r["method"]):
            (float(r["paper_accuracy_pct"]), float(r["paper_tokens_k"]))
            for r in csv.DictReader(text.splitlines())}


def table1(store, seeds, workers=None, progress=True, models=None, benchmarks=None):
    """Evaluate every Table 1 method; returns (Results, rows of table1.csv)."""
    from autotts_gym.harness import evaluate_many

    # the slowest methods first, so the worker pool stays busy to the end
    entries = [(ctl, (beta,), name) for ctl, beta, name in TABLE1_METHODS]
    entries.sort(key=lambda e: e[0] not in ("cmc", "parallel_probe"))
    results = evaluate_many(entries, store, models, benchmarks, seeds, workers,
                            progress=progress)
    rows = []
    order = {name: i for i, (_, _, name) in enumerate(TABLE1_METHODS)}
    for r in sorted(results.summary(), key=lambda r: (r["model"], r["benchmark"],
                                                      order[r["method"]])):
        rows.append({"model": r["model"], "benchmark": r["benchmark"],
                     "method": r["method"], "accuracy_pct": f"{r['accuracy_pct']:.2f}",
                     "mean_tokens": f"{r['mean_tokens']:.0f}"})
    return results, rows


def table1_markdown(rows, synthetic: bool) -> str:
    paper = paper_numbers()
    lines = []
    if synthetic:
        lines += ["> **SYNTHETIC replay data**: these numbers come from the bundled generator,",
                  "> not from a real model; they are not comparable with the paper.", ""]
    lines += ["| model | benchmark | method | accuracy % | tokens (k) | paper accuracy % "
              "| paper tokens (k) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        pa, pt = paper.get((r["model"], r["benchmark"], r["method"]), (None, None))
        lines.append(f"| {r['model']} | {r['benchmark']} | {r['method']} | "
                     f"{r['accuracy_pct']} | {float(r['mean_tokens']) / 1e3:.1f} | "
                     f"{'' if pa is None else pa} | {'' if pt is None else pt} |")
    return "\n".join(lines) + "\n"


def cmd_reproduce(args) -> int:
    from autotts_gym.report import plot_frontier, write_text

    store = _open(args)
    t0 = time.perf_counter()
    results, rows = table1(store, _seeds(args), args.workers, not args.no_progress,
                           args.models, args.benchmarks)
    elapsed = time.perf_counter() - t0
    out: Path = args.out
    results.write(out / "episodes", plot=False)
    buf = ["model,benchmark,method,accuracy_pct,mean_tokens"]
    buf += [f"{r['model']},{r['benchmark']},{r['method']},{r['accuracy_pct']},"
            f"{r['mean_tokens']}" for r in rows]
    write_text(out / "table1.csv", "\n".join(buf) + "\n")
    write_text(out / "table1.md", table1_markdown(rows, results.synthetic))
    plot_frontier(results.summary(), out / "frontier.png", title="Table 1 methods")
    print(table1_markdown(rows, results.synthetic))
    print(f"{len(rows)} cells, {len(results.records)} episodes in {elapsed:.1f} s; "
          f"written to {out}/table1.csv, table1.md, frontier.png, episodes/")
    if results.synthetic:
        print("WARNING: ran on the bundled SYNTHETIC store; get the real data with "
              "`autotts data download` or point --replay-dir at your copy.", file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    from autotts_gym.harness import evaluate

    store = _open(args)
    seeds = _seeds(args)
    t0 = time.perf_counter()
    if args.sandbox and args.controller_config:
        raise ValueError("--controller-config does not reach --sandbox runs yet; "
                         "set the defaults in the class instead")
    if args.sandbox:
        results = _sandboxed(args, store, seeds)
    else:
        from autotts_gym.controllers import load_controller

        controller = load_controller(args.controller, config=args.controller_config)
        results = evaluate(controller, store, models=args.models,
                           benchmarks=args.benchmarks, seeds=seeds, betas=args.betas,
                           workers=args.workers, fast=not args.no_fast,
                           max_steps=args.max_steps, progress=not args.no_progress,
                           trace=args.trace)
    present = {r.method for r in results.records}  # e.g. --controller sc64 is SC@64 already
    for name in args.baselines:
        for ctl, beta, label in TABLE1_METHODS:
            if ctl == name and ctl != args.controller and label not in present:
                results = results + evaluate(ctl, store, models=args.models,
                                             benchmarks=args.benchmarks, seeds=seeds,
                                             betas=(beta,), workers=args.workers,
                                             method=label, progress=False)
    paths = results.write(args.out)
    from autotts_gym.report import summary_markdown

    print(summary_markdown(results.summary()))
    print(f"{len(results.records)} episodes in {time.perf_counter() - t0:.1f} s; "
          f"written to {', '.join(str(p) for p in paths.values())}")
    return 0


def _sandboxed(args, store, seeds):
    """Evaluate a controller file in the discovery jail (untrusted code); the static check
    runs first as advice (the jail is the boundary)."""
    from autotts_discovery.codecheck import check_code
    from autotts_discovery.sandbox import Limits, evaluate_in_sandbox

    path = Path(args.controller)
    if not path.is_file():
        raise UsageError(f"--sandbox needs a controller file; {path} is not one")
    code = path.read_text()
    check = check_code(code)
    if not check.ok:
        print(f"codecheck (advisory): {path}: {check.kind}: {check.message}", file=sys.stderr)
    res = evaluate_in_sandbox(code, store, args.models, args.benchmarks, seeds, args.betas,
                              Limits(wall_seconds=24 * 3600.0, max_steps=args.max_steps),
                              method=path.stem, trace=args.trace)
    if not res.ok:  # (no jail: JailUnavailable, one line, never a weaker mode)
        raise AutoTTSError(f"controller {path.stem} failed in the sandbox "
                           f"({res.kind.value if res.kind else '?'}): {res.message}")
    return res.results
