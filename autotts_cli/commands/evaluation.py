"""``autotts reproduce``, ``autotts eval`` and ``autotts sweep`` (thin: parse, call the
library, print)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from autotts_gym.harness import betas_arg

_betas = betas_arg  # kept for command modules that import it from here


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replay-dir", help="store or AutoTTS JSON folder (default: see README)")
    p.add_argument("--models", help="comma-separated models (default: all)")
    p.add_argument("--benchmarks", help="comma-separated benchmarks (default: all)")
    p.add_argument("--seeds", default="0-99", help="branch-order seeds, e.g. 0-99 or 0,1,5")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_reference_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", default="sc64",
                   help="method the paired differences are taken against: a method label "
                        "of the run (e.g. CMC) or a controller added to the run (default: "
                        "sc64, labelled SC@<width of the store>)")


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="the AutoTTS paper's Table 1 on the replay data")
    _common(p)
    p.set_defaults(func=cmd_reproduce)

    for name, helptext in (("eval", "score a controller over a beta sweep"),
                           ("sweep", "a controller's accuracy-cost curve over beta")):
        p = sub.add_parser(name, help=helptext)
        _common(p)
        p.add_argument("--controller", required=True,
                       help="controller file (.py), module path or built-in name "
                            "(sc64, asc, esc, parallel_probe, cmc)")
        p.add_argument("--betas", type=betas_arg,
                       default=betas_arg("0,0.25,0.5,0.75,1" if name == "eval"
                                         else "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"))
        p.add_argument("--no-fast", action="store_true",
                       help="always run one session per episode (no vectorized path)")
        p.add_argument("--trace", action="store_true", help="write execution traces")
        p.add_argument("--sandbox", action="store_true",
                       help="run the controller file in the discovery sandbox (untrusted code)")
        p.add_argument("--max-steps", type=int, default=100_000,
                       help="per-episode cap on session calls")
        p.add_argument("--baselines", default="cmc",
                       help="baselines drawn beside the curve (comma-separated, '' for none; "
                            "the reference is always added)")
        add_reference_arg(p)
        p.add_argument("--curves", action="store_true",
                       help="also draw SC@k and pass@k (k = 1..N) beside the frontier and "
                            "write curves.csv")
        p.set_defaults(func=cmd_eval)


def open_store_verbose(replay_dir):
    from autotts_gym.data import describe_source, open_store

    store = open_store(replay_dir)
    print(describe_source(store), file=sys.stderr)
    return store


def _seeds(args) -> list[int]:
    from autotts_gym.harness import seeds_arg

    return seeds_arg(args.seeds)


def cmd_reproduce(args) -> int:
    from autotts_gym.report import write_text
    from autotts_gym.reproduce import held_out_rows, table1, table1_csv, table1_markdown
    store = open_store_verbose(args.replay_dir)
    t0 = time.perf_counter()
    results, rows = table1(store, _seeds(args), args.workers, not args.no_progress,
                           args.models, args.benchmarks)
    elapsed = time.perf_counter() - t0
    out: Path = args.out
    results.write(out)
    held = held_out_rows(results)
    write_text(out / "table1.csv", table1_csv(rows))
    if held:
        write_text(out / "held_out_average.csv", _contract_csv(held))
    text = table1_markdown(rows, results.synthetic, held)
    write_text(out / "table1.md", text)
    print(text)
    print(f"{len(rows)} cells, {len(results.records)} episodes in {elapsed:.1f} s; "
          f"written to {out}/ (table1.csv, table1.md, held_out_average.csv, summary.csv, "
          f"average.csv, frontier.png, records.jsonl)")
    if results.synthetic:
        print("WARNING: ran on the bundled SYNTHETIC store; get the real data with "
              "`autotts data download` or point --replay-dir at your copy.", file=sys.stderr)
    return 0


def _contract_csv(rows) -> str:
    from autotts_gym.report import summary_csv

    return summary_csv(rows)


def run_with_reference(entries, store, args, seeds, **kw):
    """Evaluate ``entries`` plus the reference (``--reference``) on the same episodes;
    returns Results whose ``reference`` is set."""
    from autotts_gym.controllers import load_controller
    from autotts_gym.harness import evaluate_many, reference_label

    ref = args.reference
    labels = {}  # label -> controller spec, of the entries already in the run
    for ctl, _, name in entries:
        if name is None and isinstance(ctl, str):
            name = load_controller(ctl).name
        if name is not None:
            labels[name] = ctl
    if ref == "sc64":
        label = reference_label(store.select(args.models, args.benchmarks))
    elif ref in labels:
        label = ref
    elif ref in labels.values():
        label = next(k for k, v in labels.items() if v == ref)
    else:
        label = load_controller(ref).name
    if label not in labels:
        entries = [*entries, (ref, (0.5,), label)]
    results = evaluate_many(entries, store, args.models, args.benchmarks, seeds,
                            args.workers, **kw)
    if label not in results.methods:
        raise ValueError(f"--reference {ref!r}: not a method of this run "
                         f"({', '.join(results.methods)})")
    results.reference = label
    return results


def baseline_entries(names: str, betas, store, args) -> list[tuple]:
    """``(controller, betas, label)`` entries for ``--baselines``/``--controllers``:
    Table 1 methods at their Table 1 beta (CMC and unknown controllers at every beta),
    sc64 labelled after the store's width."""
    from autotts_gym.harness import reference_label
    from autotts_gym.reproduce import TABLE1_METHODS

    out = []
    for name in [b.strip() for b in names.split(",") if b.strip()]:
        fixed = [(ctl, (beta,), label) for ctl, beta, label in TABLE1_METHODS if ctl == name]
        if name == "sc64":
            out.append(("sc64", (0.5,),
                        reference_label(store.select(args.models, args.benchmarks))))
        elif name == "cmc" or not fixed:
            out.append((name, tuple(betas), None))
        else:
            out.append(fixed[0])
    return out


def cmd_eval(args) -> int:
    from autotts_gym.report import summary_markdown

    store = open_store_verbose(args.replay_dir)
    seeds = _seeds(args)
    t0 = time.perf_counter()
    base = [e for e in baseline_entries(args.baselines, args.betas, store, args)
            if e[0] != args.controller]
    if args.sandbox:
        results = _sandboxed(args, store, seeds)
        results = results + run_with_reference(base, store, args, seeds,
                                               progress=not args.no_progress)
    else:
        entries = [(args.controller, args.betas, None), *base]
        results = run_with_reference(entries, store, args, seeds, fast=not args.no_fast,
                                     max_steps=args.max_steps,
                                     progress=not args.no_progress, trace=args.trace)
    curves = None
    if args.curves:
        from autotts_gym.curves import curves_csv, reference_curves
        from autotts_gym.report import write_text

        curves = reference_curves(store, args.models, args.benchmarks, seeds)
        args.out.mkdir(parents=True, exist_ok=True)
        write_text(args.out / "curves.csv", curves_csv(curves))
    paths = results.write(args.out, curves=curves)
    print(summary_markdown(results.summary()))
    print(f"{len(results.all_records)} episodes in {time.perf_counter() - t0:.1f} s; "
          f"written to {', '.join(str(p) for p in paths.values())}")
    return 0


def _sandboxed(args, store, seeds):
    """Evaluate a controller file through the discovery sandbox (one locked-down process)."""
    from autotts_discovery.sandbox import Limits, evaluate_in_sandbox

    path = Path(args.controller)
    if not path.is_file():
        raise ValueError(f"--sandbox needs a controller file; {path} is not one")
    res = evaluate_in_sandbox(path.read_text(), store, args.models, args.benchmarks, seeds,
                              args.betas, Limits(wall_seconds=24 * 3600.0,
                                                 max_steps=args.max_steps),
                              method=path.stem)
    if not res.ok:
        raise ValueError(f"controller {path.stem} failed in the sandbox ({res.kind}): "
                         f"{res.message}")
    return res.results
