"""``autotts reproduce``, ``autotts eval`` and ``autotts sweep`` (thin: parse the flags,
call :mod:`autotts_gym.reproduce`, :mod:`autotts_gym.harness` and the reports)."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from autotts_gym.errors import AutoTTSError, UsageError
from autotts_gym.harness import MAX_SEEDS, betas_arg
from autotts_gym.reproduce import TABLE1_METHODS

from .. import args as args_

BASELINES = list(dict.fromkeys(ctl for ctl, _, _ in TABLE1_METHODS))


def _betas(text: str) -> list[float]:
    """``--betas``: :func:`autotts_gym.harness.betas_arg`, rejected while parsing."""
    try:
        return betas_arg(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--betas ")) from None


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


def add_reference_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", default="sc64",
                   help="method the paired differences are taken against: a method label "
                        "of the run (e.g. CMC, paired at the same beta) or a controller "
                        "added to the run (default: sc64, labelled SC@<width of the store>)")


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
        p.add_argument("--baselines", default="cmc",
                       type=args_.choices_list(BASELINES, allow_empty=True),
                       help=f"baselines drawn beside the curve, from {', '.join(BASELINES)} "
                            "(comma-separated, '' for none; the reference is always added)")
        add_reference_arg(p)
        p.add_argument("--curves", action="store_true",
                       help="also draw SC@k and pass@k (k = 1..N) beside the frontier and "
                            "write curves.csv")
        p.set_defaults(func=cmd_eval, out_policy="lock")


def open_store_verbose(replay_dir):
    from autotts_gym.data import describe_source, open_store

    store = open_store(replay_dir)
    print(describe_source(store), file=sys.stderr)
    return store


def _seeds(args) -> list[int]:
    return list(args.seeds)  # parsed and capped by args_.seeds


def cmd_reproduce(args) -> int:
    from autotts_gym.report import summary_csv, write_text
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
        write_text(out / "held_out_average.csv", summary_csv(held))
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


def baseline_entries(names, betas, store, args) -> list[tuple]:
    """``(controller, betas, label)`` entries for ``--baselines``/``--controllers``:
    Table 1 methods at their Table 1 beta (CMC and other controllers at every beta), sc64
    labelled after the store's width."""
    from autotts_gym.harness import reference_label

    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = []
    for name in names:
        fixed = [(ctl, (beta,), label) for ctl, beta, label in TABLE1_METHODS if ctl == name]
        if name == "sc64":
            out.append(("sc64", (0.5,),
                        reference_label(store.select(args.models, args.benchmarks))))
        elif name == "cmc" or not fixed:
            out.append((name, tuple(betas), None))
        else:
            out.append(fixed[0])
    return out


def _label(ctl) -> str | None:
    from autotts_gym.controllers import ControllerSpec, load_controller

    if isinstance(ctl, ControllerSpec):
        return ctl.name
    if isinstance(ctl, str):
        return load_controller(ctl).name
    return getattr(ctl, "name", None)


def run_with_reference(entries, store, args, seeds, **kw):
    """Evaluate ``entries`` plus the reference (``--reference``) on the same episodes;
    returns Results whose ``reference`` is set."""
    from autotts_gym.controllers import ControllerError, load_controller
    from autotts_gym.harness import evaluate_many, reference_label

    ref = args.reference
    labels = {}  # label -> controller, of the entries already in the run
    for ctl, _, name in entries:
        name = name or _label(ctl)
        if name is not None:
            labels[name] = ctl
    if ref == "sc64":
        label = reference_label(store.select(args.models, args.benchmarks))
    elif ref in labels:
        label = ref
    elif ref in labels.values():
        label = next(k for k, v in labels.items() if v == ref)
    else:
        try:
            label = load_controller(ref).name
        except ControllerError as e:
            raise UsageError(f"--reference {ref!r}: neither a method of this run nor a "
                             f"controller ({e})") from None
    if label not in labels:
        entries = [*entries, (ref, (0.5,), label)]
    results = evaluate_many(entries, store, args.models, args.benchmarks, seeds,
                            args.workers, **kw)
    if label not in results.methods:
        raise UsageError(f"--reference {ref!r}: not a method of this run "
                         f"({', '.join(results.methods)})")
    results.reference = label
    return results


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
        from autotts_gym.controllers import load_controller

        controller = load_controller(args.controller, config=args.controller_config)
        base = [e for e in base if e[2] is None or e[2] != controller.name]
        entries = [(controller, args.betas, None), *base]
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
    counts = Counter(r.method for r in results.all_records)
    print(", ".join(f"{n} episodes of {m}" for m, n in sorted(counts.items()))
          + f" in {time.perf_counter() - t0:.1f} s; written to "
          + ", ".join(str(p) for p in paths.values()))
    return 0


def _sandboxed(args, store, seeds):
    """Evaluate a controller file (``FILE.py`` or ``FILE.py:CLASS``) in the discovery jail
    (untrusted code); the class name and the checked ``--controller-config`` go to the
    jail as data, where the same loader runs. The static check runs first as advice (the
    jail is the boundary)."""
    from autotts_discovery.codecheck import check_code
    from autotts_discovery.sandbox import Limits, evaluate_in_sandbox
    from autotts_gym.controllers import split_class
    from autotts_gym.release import parse_controller_config

    spec, cls = split_class(args.controller)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--sandbox needs a controller file (FILE.py or FILE.py:CLASS); "
                         f"{path} is not one")
    config = parse_controller_config(args.controller_config)
    code = path.read_text()
    check = check_code(code)
    if not check.ok:
        print(f"codecheck (advisory): {path}: {check.kind}: {check.message}", file=sys.stderr)
    name = cls or path.stem
    res = evaluate_in_sandbox(code, store, args.models, args.benchmarks, seeds, args.betas,
                              Limits(wall_seconds=24 * 3600.0, max_steps=args.max_steps),
                              method=name, trace=args.trace, cls=cls, config=config)
    if not res.ok:  # (no jail: JailUnavailable, one line, never a weaker mode)
        raise AutoTTSError(f"controller {name} failed in the sandbox "
                           f"({res.kind.value if res.kind else '?'}): {res.message}")
    return res.results
