"""``autotts train`` and ``autotts compare``: learned policies beside controllers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autotts_gym.errors import UsageError
from autotts_gym.reproduce import TABLE1_METHODS

from .. import args as args_
from .evaluation import _betas, add_reference_arg

FULL_SEEDS = "0-99"  # the protocol's seeds
DEFAULT_COMPARE_SEEDS = "0-19"  # quick; --full gives the protocol


def register(sub) -> None:
    p = sub.add_parser("train", help="train MaskablePPO on AutoTTS-v0 (search set only)")
    p.add_argument("--config", type=Path, help="YAML training config (see docs/rl.md; "
                   "default: TrainConfig's defaults)")
    p.add_argument("--out", required=True, type=Path, help="run directory, e.g. runs/NAME")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint (default: a new run)")
    p.add_argument("--replay-dir", help="overrides the config's replay_dir (default: the "
                   "config's, else $AUTOTTS_REPLAY_DIR > user cache > bundled synthetic)")
    p.add_argument("--total-timesteps", type=args_.positive_int, default=None,
                   help="overrides the config's total_timesteps (on --resume: train on to "
                   "this many steps; default: the config's)")
    p.add_argument("--seed", type=args_.nonnegative_int, default=None,
                   help="overrides the config's seed (default: the config's)")
    p.add_argument("--n-envs", type=args_.positive_int, default=None,
                   help="overrides the config's n_envs (default: the config's)")
    p.add_argument("--bc", metavar="DATASET", default=None,
                   help="warm-start by behaviour cloning on this Minari dataset of rollouts "
                   "(`autotts data rollouts`) before PPO (default: none)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (default: a bar with steps, steps/s and the last "
                   "search objective on stderr)")
    _split_flags(p)
    p.set_defaults(func=cmd_train, out_policy="check")

    p = sub.add_parser("compare", help="RL policies and controllers on the same episodes")
    p.add_argument("--policy", action="append", default=[],
                   help="rl:runs/NAME/best.zip, or any stable-baselines3/sb3-contrib zip "
                   "(repeatable; default: none)")
    p.add_argument("--wrapper", choices=["macro", "atomic"], default=None,
                   help="the env a policy without a run config.yaml acts on (default: macro "
                   "if its observations are the macro features, else atomic)")
    p.add_argument("--max-width", type=args_.positive_int, default=None,
                   help="N of a policy without a run config (default: its observation "
                   "width, 64 for macro policies)")
    p.add_argument("--runner", choices=["auto", "vector", "batched", "episode"],
                   default="auto", help="how policy episodes are stepped (default: auto, "
                   "the fastest that applies; all give identical records)")
    p.add_argument("--controllers", default="sc64,cmc",
                   help="comma-separated controllers (built-in names or files)")
    p.add_argument("--controller-config", metavar="KEY=VALUE,...",
                   help="config of the release-style classes (FILE.py:CLASS), beside beta")
    p.add_argument("--betas", type=_betas, default=_betas("0,0.25,0.5,0.75,1"),
                   help="betas for the policies and beta-aware controllers")
    p.add_argument("--benchmarks", default=None, type=args_.names,
                   help="benchmarks to compare on (default: the split's held-out ones)")
    _split_flags(p)
    p.add_argument("--models", default=None, type=args_.names,
                   help="comma-separated models (default: all)")
    p.add_argument("--seeds", default=None, type=args_.seeds,
                   help=f"seeds (default: {DEFAULT_COMPARE_SEEDS}; --full for the protocol's "
                   f"{FULL_SEEDS})")
    p.add_argument("--full", action="store_true",
                   help=f"the full protocol: seeds {FULL_SEEDS} (default: off)")
    p.add_argument("--replay-dir", help="store or AutoTTS JSON folder (default: see README)")
    p.add_argument("--workers", type=args_.positive_int, default=None,
                   help="processes (default: all cores)")
    p.add_argument("--out", required=True, type=Path,
                   help="output directory (checked and locked before the work starts)")
    add_reference_arg(p)
    p.set_defaults(func=cmd_compare, out_policy="lock")
    _register_rollouts(sub)


def _register_rollouts(sub) -> None:
    """``autotts data rollouts``, added to the ``data`` command (registered before this)."""
    data = sub.choices.get("data")
    if data is None:
        return
    actions = [a for a in data._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        return
    p = actions[0].add_parser("rollouts", help="controller rollouts in AutoTTS-v0 as an "
                              "offline RL dataset (Minari)")
    p.add_argument("--controller", required=True,
                   help="built-in name (sc64, cmc, ...) or a controller file")
    p.add_argument("--format", choices=["minari"], default="minari",
                   help="dataset format (default: minari)")
    p.add_argument("--dataset-id", default=None,
                   help="Minari dataset id (default: autotts/<controller>-<benchmarks>-v0); "
                   "written under $MINARI_DATASETS_PATH (default ~/.minari/datasets)")
    p.add_argument("--models", default=None, type=args_.names,
                   help="comma-separated (default: all)")
    p.add_argument("--benchmarks", default=["aime24"], type=args_.names,
                   help="comma-separated (default: aime24, the search set)")
    p.add_argument("--seeds", default=list(range(10)), type=args_.seeds,
                   help="branch-order seeds (default: 0-9)")
    p.add_argument("--betas", type=_betas, default=_betas("0.5"),
                   help="betas (default: 0.5)")
    p.add_argument("--max-width", type=args_.positive_int, default=64,
                   help="the env's N (default: 64)")
    p.add_argument("--replay-dir", help="store or JSON folder (default: $AUTOTTS_REPLAY_DIR "
                   "> user cache > bundled synthetic)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a local dataset with the same id (default: refuse)")
    p.set_defaults(func=cmd_rollouts)


def cmd_rollouts(args) -> int:
    from autotts_rl.offline import RolloutSpec, write_rollouts

    benches, models, seeds = args.benchmarks, args.models, args.seeds
    ctl = Path(args.controller).stem
    dataset_id = args.dataset_id or f"autotts/{ctl}-{'-'.join(benches)}-v0"
    spec = RolloutSpec(args.controller, models, benches, seeds, args.betas, args.max_width)
    ds = write_rollouts(spec, dataset_id, args.replay_dir, overwrite=args.overwrite)
    print(f"{dataset_id}: {ds.total_episodes} episodes, {ds.total_steps} steps "
          f"(minari.load_dataset({dataset_id!r}))")
    return 0


def _split_flags(p) -> None:
    p.add_argument("--search", type=args_.names, default=None,
                   help="comma-separated search benchmarks (default: aime24)")
    p.add_argument("--held-out", type=args_.names, default=None,
                   help="comma-separated held-out benchmarks (default: aime25,hmmt25 where "
                        "the store has them, else every other benchmark)")


def cmd_train(args) -> int:
    from autotts_rl.train import RunFinished, TrainConfig, train

    if args.resume and (args.config or args.seed is not None or args.n_envs is not None):
        raise UsageError("--resume continues the run's own config.yaml; --config, --seed "
                         "and --n-envs apply to new runs only")
    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    if args.replay_dir:
        cfg.replay_dir = args.replay_dir
    if args.search is not None:
        cfg.search = args.search
    if args.held_out is not None:
        cfg.held_out = args.held_out
    for flag in ("total_timesteps", "seed", "n_envs"):
        if getattr(args, flag) is not None and not args.resume:
            setattr(cfg, flag, getattr(args, flag))
    if not args.resume and args.config is None:
        print("no --config given: training with the defaults of TrainConfig", file=sys.stderr)
    try:
        train(cfg, args.out, resume=args.resume, progress=not args.no_progress, bc=args.bc,
              total_timesteps=args.total_timesteps if args.resume else None)
    except RunFinished as e:
        print(str(e))
        return 0
    print(f"trained; policies in {args.out}/best.zip and {args.out}/final.zip")
    return 0


def cmd_compare(args) -> int:
    from autotts_gym.controllers import load_controllers
    from autotts_gym.harness import seeds_arg
    from autotts_gym.protocol import Split
    from autotts_gym.report import average_markdown, data_note
    from autotts_rl.train import load_policy

    from .evaluation import baseline_entries, open_store_verbose, run_with_reference

    store = open_store_verbose(args.replay_dir)
    split = Split.for_benchmarks(store.benchmarks(), args.search, args.held_out)
    args.benchmarks = args.benchmarks or list(split.require_held_out())
    entries = []
    for spec in args.policy:
        pol = load_policy(spec, wrapper=args.wrapper, max_width=args.max_width)
        pol.runner = args.runner
        entries.append((pol, args.betas, pol.name))
    names = [c for c in args.controllers.split(",") if c]
    table1 = {ctl for ctl, _, _ in TABLE1_METHODS}
    others = [c for c in names if c not in table1]
    loaded = dict(zip(others, load_controllers(others, args.controller_config), strict=True))
    entries += baseline_entries([c for c in names if c in table1], args.betas, store, args)
    entries += [(loaded[c], args.betas, None) for c in others]
    seeds = seeds_arg(FULL_SEEDS) if args.full else (args.seeds or seeds_arg(
        DEFAULT_COMPARE_SEEDS))
    results = run_with_reference(entries, store, args, seeds)
    paths = results.write(args.out)
    print(data_note(results) + "Average over the compared cells:\n\n"
          + average_markdown(results.average()))
    print(f"written to {args.out}/ ({', '.join(p.name for p in paths.values())})")
    return 0
