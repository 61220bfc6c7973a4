"""``autotts discover run|report|accept``: the discovery loop, its held-out report, and
adopting a discovered controller. ``autotts discover --explorer ...`` is ``discover run``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .evaluation import _betas


def _run_flags(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
    p.add_argument("--explorer", choices=["offline", "anthropic", "openai"],
                   default=d("offline"), help="who writes controllers (default: offline)")
    p.add_argument("--model", default=d(None),
                   help="explorer model (anthropic, openai; default: none)")
    p.add_argument("--base-url", default=d(None),
                   help="API base URL (openai: e.g. http://localhost:8000/v1; default: the SDK's)")
    llm = p.add_argument_group("--explorer openai (any OpenAI-compatible chat server)")
    llm.add_argument("--api-key-env", default=d(None), metavar="VAR",
                     help="environment variable holding the key (default: none; local "
                          "servers need none)")
    llm.add_argument("--temperature", type=float, default=d(None),
                     help="sampling temperature (default: the server's)")
    llm.add_argument("--max-tokens", type=int, default=d(4000),
                     help="per reply (default: 4000)")
    llm.add_argument("--timeout", type=float, default=d(120.0),
                     help="seconds per request (default: 120)")
    llm.add_argument("--retries", type=int, default=d(4),
                     help="on 429, 5xx and timeouts (default: 4)")
    p.add_argument("--rounds", type=int, default=d(10), help="rounds to run (default: 10)")
    p.add_argument("--out", type=Path, default=d(None),
                   help="run directory, e.g. runs/NAME (default: none, required)")
    p.add_argument("--replay-dir", default=d(None),
                   help="replay store (default: $AUTOTTS_REPLAY_DIR, the user cache, else the "
                        "bundled synthetic one)")
    p.add_argument("--models", default=d(None), help="search models (default: all)")
    p.add_argument("--search", default=d(None),
                   help="search benchmarks, comma-separated (default: aime24)")
    p.add_argument("--held-out", default=d(None),
                   help="held-out benchmarks (default: aime25,hmmt25 where present)")
    p.add_argument("--seeds", default=d("0-4"), help="branch-order seeds (default: 0-4)")
    p.add_argument("--betas", type=_betas, default=d(_betas("0,0.5,1")),
                   help="betas of the sweep (default: 0,0.5,1)")
    p.add_argument("--max-usd", type=float, default=d(None),
                   help="explorer budget in dollars (default: none)")
    p.add_argument("--prices", type=Path, default=d(None),
                   help="price table (YAML/JSON model: [in, out]; default: built-in)")
    p.add_argument("--resume", action="store_true", default=d(False),
                   help="continue the run in --out (default: off)")
    p.add_argument("--seed", type=int, default=d(0), help="offline explorer seed (default: 0)")
    p.add_argument("--controller", action="append", default=d(None), metavar="FILE.py[:CLASS]",
                   help="a seed controller, scored in the jail as a round before the "
                        "explorer's first (repeatable; default: none)")
    p.add_argument("--controller-config", default=d(None), metavar="KEY=VALUE,...",
                   help="config of release-style seed classes, beside beta (default: none)")


def register(sub) -> None:
    p = sub.add_parser(
        "discover", help="an explorer writes controllers, a jail scores them",
        description="autotts discover run --explorer offline|anthropic --rounds N --out DIR; "
                    "autotts discover report RUN; autotts discover accept RUN --round K")
    _run_flags(p)
    p.set_defaults(func=cmd_discover, action="run")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    run = actions.add_parser("run", help="run discovery rounds")
    _run_flags(run, defaults=False)
    rep = actions.add_parser("report", help="score a run's best controller on held-out data")
    rep.add_argument("run_dir", type=Path, help="the run directory")
    rep.add_argument("--replay-dir", default=None,
                     help="replay store (default: the one the run recorded)")
    rep.add_argument("--out", type=Path, default=None, help="output (default: RUN/report)")
    rep.add_argument("--seeds", default="0-9", help="branch-order seeds (default: 0-9)")
    rep.add_argument("--betas", type=_betas, default=_betas("0,0.5,1"),
                     help="betas (default: 0,0.5,1)")
    rep.add_argument("--held-out", default=None,
                     help="held-out benchmarks (default: the run's split)")
    acc = actions.add_parser("accept", help="adopt a round's controller by name")
    acc.add_argument("run_dir", type=Path, help="the run directory")
    acc.add_argument("--round", type=int, required=True, help="the round to accept")
    acc.add_argument("--name", default=None, help="controller name (default: RUN_rNNNN)")
    acc.add_argument("--dest", type=Path, default=None,
                     help="folder (default: $AUTOTTS_CONTROLLERS_DIR, else "
                          "~/.local/share/autotts-gym/controllers)")


def _names(text: str | None, flag: str) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"{flag} {text!r}: names no benchmark")
    return names


def cmd_discover(args) -> int:
    from autotts_discovery.explorer import ExplorerError
    from autotts_gym.errors import AutoTTSError, UsageError

    try:
        return _dispatch(args)
    except ExplorerError as e:
        print(f"autotts discover: error: {e}", file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"autotts discover: error: {e}", file=sys.stderr)
        return 2
    except AutoTTSError as e:
        print(f"autotts discover: error: {e}", file=sys.stderr)
        return 1


def _dispatch(args) -> int:
    from autotts_discovery.loop import accept, report

    if args.action == "accept":
        print(f"accepted: {accept(args.run_dir, args.round, args.dest, args.name)}")
        return 0
    if args.action == "report":
        return _report(args, report)
    return _run(args)


def _report(args, report) -> int:
    from autotts_discovery.history import History
    from autotts_discovery.loop import DiscoveryError, run_split
    from autotts_gym.data import describe_source, open_store
    from autotts_gym.harness import seeds_arg
    from autotts_gym.protocol import Split

    history = History(args.run_dir, create=False)
    recorded = history.state().get("data", {}).get("store")
    if args.replay_dir is None and recorded is None:
        raise DiscoveryError(f"{args.run_dir}: the run recorded no data source; pass "
                             "--replay-dir")
    store = open_store(args.replay_dir or recorded)
    print(describe_source(store), file=sys.stderr)
    split = run_split(history, store)
    held = _names(args.held_out, "--held-out")
    if held is not None:
        split = Split(split.search, tuple(held))
    path = report(args.run_dir, store, args.out, seeds_arg(args.seeds), args.betas,
                  split=split)
    print(path.read_text())
    print(f"written to {path.parent}")
    return 0


def _run(args) -> int:
    from autotts_discovery import explorer as ex
    from autotts_discovery.loop import LoopConfig, require_success, run_loop
    from autotts_discovery.pricing import PriceTable
    from autotts_gym.data import describe_source, open_store
    from autotts_gym.errors import UsageError
    from autotts_gym.harness import seeds_arg

    if args.out is None:
        raise UsageError("--out is required for a discovery run")
    if args.rounds < 1:
        raise UsageError(f"--rounds {args.rounds}: a discovery run needs at least one round")
    store = open_store(args.replay_dir)
    print(describe_source(store), file=sys.stderr)
    if args.explorer == "anthropic":
        if not args.model:
            raise UsageError("--explorer anthropic needs --model NAME")
        explorer = ex.AnthropicExplorer(args.model, base_url=args.base_url)
    elif args.explorer == "openai":
        explorer = _openai_explorer(args, ex)
    else:
        explorer = ex.OfflineExplorer(args.seed)
    cfg = LoopConfig(rounds=args.rounds,
                     models=args.models.split(",") if args.models else None,
                     seeds=seeds_arg(args.seeds), betas=list(args.betas),
                     max_usd=args.max_usd, explorer=args.explorer, model=explorer.model,
                     search=_names(args.search, "--search"),
                     held_out=_names(args.held_out, "--held-out"))
    cfg.seed_controllers = _seed_controllers(args.controller or [], args.controller_config)
    prices = PriceTable.load(args.prices) if args.prices else None
    if args.max_usd is not None and not (prices or PriceTable()).known(explorer.model):
        raise UsageError(f"--max-usd needs a price for {explorer.model!r}: pass --prices FILE")
    history = run_loop(explorer, store, args.out, cfg, prices=prices, resume=args.resume)
    chosen = require_success(history)  # every round failed: exit 1
    print(f"history in {args.out}/rounds/; best round {chosen.index}, "
          f"search-set score {chosen.score:.4f}")
    return 0


def _seed_controllers(specs: list[str], config_text: str | None) -> list:
    """``--controller FILE.py[:CLASS]`` values as seed controllers (files read now, the
    config checked now, so a bad one fails before any work)."""
    from autotts_discovery.loop import SeedController
    from autotts_gym.controllers import split_class
    from autotts_gym.errors import UsageError
    from autotts_gym.release import parse_controller_config

    config = parse_controller_config(config_text)
    seeds = []
    for text in specs:
        spec, cls = split_class(text)
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"--controller {text}: a seed controller must be a file "
                             f"(FILE.py or FILE.py:CLASS)")
        seeds.append(SeedController(str(path), path.read_text(), cls, config or None))
    if config and not any(s.cls for s in seeds):
        raise UsageError("--controller-config applies to release-style classes "
                         "(--controller FILE.py:CLASS)")
    return seeds


def _openai_explorer(args, ex):
    from autotts_gym.errors import UsageError

    if not args.model or not args.base_url:
        raise UsageError("--explorer openai needs --model NAME and --base-url URL")
    try:
        return ex.OpenAIExplorer(args.model, args.base_url, api_key_env=args.api_key_env,
                                 temperature=args.temperature, max_tokens=args.max_tokens,
                                 timeout=args.timeout, max_retries=args.retries)
    except ex.ExplorerError as e:
        raise UsageError(f"--explorer openai: {e}") from None
