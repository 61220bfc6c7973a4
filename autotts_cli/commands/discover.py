"""``autotts discover``: run the discovery loop; ``discover report`` and ``discover accept``."""

from __future__ import annotations

import sys
from pathlib import Path

from .evaluation import _betas


def register(sub) -> None:
    p = sub.add_parser(
        "discover", help="an explorer writes controllers, a sandbox scores them",
        description="autotts discover [run] --explorer offline|anthropic --rounds N --out DIR; "
                    "autotts discover report RUN; autotts discover accept RUN --round K")
    p.add_argument("action", nargs="?", default="run", choices=["run", "report", "accept"])
    p.add_argument("run_dir", nargs="?", type=Path, help="the run (report, accept)")
    p.add_argument("--explorer", choices=["offline", "anthropic", "openai"],
                   default="offline")
    p.add_argument("--model", default=None, help="explorer model (anthropic, openai)")
    p.add_argument("--base-url", default=None,
                   help="API base URL (openai: e.g. http://localhost:8000/v1)")
    llm = p.add_argument_group("--explorer openai (any OpenAI-compatible chat server)")
    llm.add_argument("--api-key-env", default=None, metavar="VAR",
                     help="environment variable holding the key (local servers need none)")
    llm.add_argument("--temperature", type=float, default=None)
    llm.add_argument("--max-tokens", type=int, default=4000, help="per reply")
    llm.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    llm.add_argument("--retries", type=int, default=4, help="on 429, 5xx and timeouts")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--out", type=Path, help="run directory, e.g. runs/NAME")
    p.add_argument("--replay-dir")
    p.add_argument("--models", default=None, help="search models (default: all)")
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--betas", type=_betas, default=_betas("0,0.5,1"))
    p.add_argument("--max-usd", type=float, default=None)
    p.add_argument("--prices", type=Path, help="price table (YAML/JSON model: [in, out])")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="offline explorer seed")
    p.add_argument("--round", type=int, help="the round to accept")
    p.add_argument("--name", help="module name for accept")
    p.add_argument("--dest", type=Path, help="folder for accept (default: $AUTOTTS_CONTROLLERS_DIR, else ~/.local/share/autotts-gym/controllers)")
    p.set_defaults(func=cmd_discover)


def cmd_discover(args) -> int:
    from autotts_discovery import explorer as ex
    from autotts_discovery.loop import LoopConfig, accept, report, run_loop
    from autotts_discovery.pricing import PriceTable

    from autotts_gym.data import describe_source, open_store
    from autotts_gym.harness import seeds_arg

    if args.action == "accept":
        if args.run_dir is None or args.round is None:
            raise ValueError("usage: autotts discover accept RUN --round K")
        print(f"accepted: {accept(args.run_dir, args.round, args.dest, args.name)}")
        return 0
    store = open_store(args.replay_dir)
    print(describe_source(store), file=sys.stderr)
    if args.action == "report":
        if args.run_dir is None:
            raise ValueError("usage: autotts discover report RUN")
        path = report(args.run_dir, store, args.out, seeds_arg(args.seeds), args.betas)
        print(path.read_text())
        print(f"written to {path.parent}")
        return 0
    if args.out is None:
        raise ValueError("--out is required for a discovery run")
    if args.explorer == "anthropic":
        if not args.model:
            raise ValueError("--explorer anthropic needs --model NAME")
        explorer = ex.AnthropicExplorer(args.model, base_url=args.base_url)
    elif args.explorer == "openai":
        explorer = _openai_explorer(args, ex)
    else:
        explorer = ex.OfflineExplorer(args.seed)
    cfg = LoopConfig(rounds=args.rounds,
                     models=args.models.split(",") if args.models else None,
                     seeds=seeds_arg(args.seeds), betas=list(args.betas),
                     max_usd=args.max_usd, explorer=args.explorer, model=explorer.model)
    prices = PriceTable.load(args.prices) if args.prices else None
    if args.max_usd is not None and not (prices or PriceTable()).known(explorer.model):
        from autotts_gym.errors import UsageError

        raise UsageError(f"--max-usd needs a price for {explorer.model!r}: pass --prices FILE")
    run_loop(explorer, store, args.out, cfg, prices=prices, resume=args.resume)
    print(f"history in {args.out}/rounds/")
    return 0


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
