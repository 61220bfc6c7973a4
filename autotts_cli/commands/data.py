"""``autotts data``: import, inspect, download and generate replay stores."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from autotts_gym.collect.normalize import NORMALIZER_NAMES

from .. import args as args_


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="import, inspect, download or generate replay data")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    imp = sub.add_parser("import", help="convert AutoTTS JSON into an HDF5 replay store")
    imp.add_argument("src", type=Path, help="a JSON file or a <model>/<benchmark>.json folder")
    imp.add_argument("--out", type=Path, required=True, help="the store directory")
    imp.add_argument("--model", help="model name to store under (default: the folder name)")
    imp.add_argument("--force", action="store_true", help="rewrite even if unchanged")
    imp.add_argument("--normalize", default="none", choices=NORMALIZER_NAMES,
                     help="merge spellings of one value in each problem's answer vocabulary "
                          "(math-verify: by verified equivalence)")
    imp.set_defaults(func=cmd_import, out_policy="check")

    exp = sub.add_parser("export", help="write a store as AutoTTS JSON or Parquet to share it")
    exp.add_argument("store", type=Path, help="the store directory")
    exp.add_argument("--format", choices=["autotts-json", "parquet"], default="autotts-json")
    exp.add_argument("--out", type=Path, required=True, help="the export directory")
    exp.add_argument("--models", default=None, help="comma-separated (default: all)")
    exp.add_argument("--benchmarks", default=None, help="comma-separated (default: all)")
    exp.set_defaults(func=cmd_export, out_policy="check")

    info = sub.add_parser("info", help="describe a replay store")
    info.add_argument("dir", nargs="?", type=Path,
                      help="store or JSON folder (default: $AUTOTTS_REPLAY_DIR > user cache "
                           "> bundled synthetic)")
    info.set_defaults(func=cmd_info)

    dl = sub.add_parser("download", help="fetch the public AutoTTS release into the cache")
    dl.add_argument("--base-url", help="where <model>/<benchmark>.json live "
                                       "(default: the release on GitHub)")
    dl.add_argument("--cache", type=Path, help="cache directory (default: the user cache)")
    dl.set_defaults(func=cmd_download)

    gen = sub.add_parser("generate-synthetic", help="write a synthetic replay store")
    gen.add_argument("--out", type=Path, required=True, help="the store directory to write")
    gen.add_argument("--seed", type=args_.nonnegative_int, default=0, help="generator seed")
    gen.set_defaults(func=cmd_generate, out_policy="check")


def cmd_import(args: argparse.Namespace) -> int:
    from autotts_gym.collect.normalize import get_vocab_normalizer
    from autotts_gym.importer import import_sources

    for r in import_sources(args.src, args.out, model=args.model, force=args.force,
                            normalizer=get_vocab_normalizer(args.normalize),
                            normalizer_name=args.normalize):
        state = "unchanged (same sha256)" if r.skipped else "imported"
        print(f"{r.model}/{r.benchmark}: {state} -> {r.path}")
    return 0


def _q(a: np.ndarray) -> str:
    return (f"mean {a.mean():,.0f}  median {np.median(a):,.0f}  "
            f"min {a.min():,}  max {a.max():,}")


def cmd_info(args: argparse.Namespace) -> int:
    from autotts_gym.data import describe_source, open_store

    store = open_store(args.dir)
    print(describe_source(store))
    keys = store.keys()
    if not keys:
        print("(no replay sets)")
        return 1
    for rs in store.select():
        tokens = np.concatenate([p.tokens for p in rs.problems])
        depth = np.concatenate([p.n_probes for p in rs.problems])
        branches = sorted({p.n_branches for p in rs.problems})
        print(f"\n{rs.model}/{rs.benchmark}  [{'synthetic' if rs.synthetic else 'real'}]")
        print(f"  problems {len(rs)}  branches/problem "
              f"{'/'.join(map(str, branches))}  (total {len(tokens):,})")
        print(f"  tokens/branch  {_q(tokens)}")
        print(f"  depth (probes) {_q(depth)}")
        print(f"  normalizer {rs.normalizer}")
        for key in _COLLECT_KEYS:
            if key in rs.extra_attrs:
                print(f"  {key.replace('_', ' ')} {rs.extra_attrs[key]!r}")
        print(f"  source {rs.source_file or '-'}")
        print(f"  sha256 {rs.source_sha256 or '-'}")
    print(f"\n{len(store.models())} models, {len(store.benchmarks())} benchmarks, "
          f"{len(keys)} replay sets")
    return 0


_COLLECT_KEYS = ("collect_api", "chat_template", "thinking", "prompt_template", "probe_suffix",
                 "extract", "interval", "n", "temperature", "max_tokens", "probe_max_tokens",
                 "token_count", "seed")


def cmd_export(args: argparse.Namespace) -> int:
    from autotts_gym.export import export_sets
    from autotts_gym.store import ReplayStore

    store = ReplayStore(args.store)
    sets = store.select(args.models, args.benchmarks)
    for path in export_sets(sets, args.out, args.format):
        print(f"exported -> {path}")
    print(f"dataset card -> {args.out / 'README.md'}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from autotts_gym.download import DEFAULT_BASE_URL, check_base_url, download_release
    from autotts_gym.outputs import check_out

    base_url = args.base_url or DEFAULT_BASE_URL
    check_base_url(base_url)
    if args.cache is not None:
        check_out(args.cache, "--cache")

    def progress(url: str, done: int) -> None:
        if done % (1 << 20) < (1 << 16):
            print(f"  {url}: {done / 1e6:.1f} MB", flush=True)

    results = download_release(args.cache, base_url=base_url,
                               progress=progress)
    for r in results:
        print(f"{r.model}/{r.benchmark}: {'unchanged' if r.skipped else 'imported'} -> {r.path}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from autotts_gym.synthetic import generate_store

    for path in generate_store(args.out, seed=args.seed):
        print(path)
    return 0
