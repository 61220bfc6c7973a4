"""Train sb3-contrib's MaskablePPO on AutoTTS-v0 (atomic or round-level macro actions).

One policy covers the whole accuracy-cost curve: beta is sampled per episode and is part
of the observation. Training and model selection see only the search set (the protocol's
:class:`~autotts_gym.protocol.Split`; aime24 by default); held-out benchmarks are refused.
A run directory holds ``config.yaml``, ``meta.json`` (seeds, versions, steps, data hashes),
``checkpoints/last.zip`` (what ``--resume`` continues from), ``best.zip`` (chosen among
the periodic search-set evaluations by :func:`autotts_gym.stats.select_best`; its score
and the episodes behind it are stored *inside* the zip: all three written by one
rename), ``final.zip`` (the final weights, always evaluated), ``evals.jsonl`` and
TensorBoard logs in ``tb/``. ``.lock`` keeps one writer per run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import platform
import sys
import typing
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autotts_gym.errors import AutoTTSError, UsageError
from autotts_gym.protocol import ProtocolError, Split

SCORE_ENTRY = "autotts_score.json"  # the evaluation stored inside best.zip
RECORDS_ENTRY = "autotts_records.json"  # and the search-set episodes it was chosen on


class TrainConfigError(UsageError):
    """A training setting that cannot be used."""


class RunFinished(AutoTTSError):
    """``--resume`` of a run that already trained for its ``total_timesteps``."""


@dataclass
class TrainConfig:
    env: str = "macro"  # "macro" (RoundMacroWrapper) or "atomic"
    replay_dir: str | None = None
    models: list[str] | None = None  # None: every model in the store
    search: list[str] | None = None  # None: the Split default (aime24)
    held_out: list[str] | None = None  # None: the Split default (aime25, hmmt25 if present)
    max_width: int = 64
    beta_low: float = 0.0
    beta_high: float = 1.0
    max_rounds: int = 200
    n_envs: int = 2
    vec_env: str = "subproc"  # or "dummy"
    total_timesteps: int = 100_000
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 1.0
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    slot_extractor: bool = True  # atomic env only: SlotSetExtractor
    seed: int = 0
    checkpoint_every: int = 10_000
    eval_every: int = 20_000
    eval_seeds: int = 10
    eval_betas: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    bc_epochs: int = 20  # behaviour cloning epochs of ``train --bc``

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> TrainConfig:
        if "benchmark" in data and "search" not in data:  # configs before the Split
            b = data.pop("benchmark")
            data["search"] = b if isinstance(b, list) else [b]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; "
                                   f"known: {', '.join(sorted(known))}")
        hints = typing.get_type_hints(cls)
        for k, v in data.items():
            data[k] = _coerce(where, k, v, hints[k])
        cfg = cls(**data)
        cfg.validate(where)
        return cfg

    @classmethod
    def from_yaml(cls, path: Path | str) -> TrainConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            first = str(e).splitlines()[0] if str(e) else "syntax error"
            raise TrainConfigError(f"{path}: not valid YAML ({first})") from None
        except OSError as e:
            raise TrainConfigError(f"{path}: cannot read the config ({e.strerror})") from None
        if not isinstance(data, dict):
            raise TrainConfigError(f"{path}: expected a mapping of settings")
        return cls.from_dict(data, str(path))

    def validate(self, where: str = "config") -> None:  # noqa: C901 (a flat list of field checks)
        def bad(name: str, need: str) -> TrainConfigError:
            return TrainConfigError(f"{where}: '{name}' must be {need}, got "
                                    f"{getattr(self, name)!r}")

        if self.search is not None and self.held_out is not None:
            try:
                Split(tuple(self.search), tuple(self.held_out))
            except ProtocolError as e:
                raise TrainConfigError(f"{where}: {e}") from None
        if self.env not in ("macro", "atomic"):
            raise bad("env", "'macro' or 'atomic'")
        if self.vec_env not in ("subproc", "dummy"):
            raise bad("vec_env", "'subproc' or 'dummy'")
        if not 0 <= self.beta_low <= self.beta_high <= 1:
            raise TrainConfigError(f"{where}: need 0 <= beta_low <= beta_high <= 1")
        for name in ("max_width", "max_rounds", "n_envs", "total_timesteps", "n_steps",
                     "batch_size", "n_epochs", "checkpoint_every", "eval_every",
                     "eval_seeds"):
            if getattr(self, name) < 1:
                raise bad(name, "a positive integer")
        if self.n_envs > 64:
            raise bad("n_envs", "at most 64")
        if self.bc_epochs < 0 or self.seed < 0:
            raise bad("bc_epochs" if self.bc_epochs < 0 else "seed", "non-negative")
        if not self.learning_rate > 0:
            raise bad("learning_rate", "positive")
        for name in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, name) <= 1:
                raise bad(name, "in [0, 1]")
        if not self.net_arch or any(n < 1 for n in self.net_arch):
            raise bad("net_arch", "a non-empty list of positive layer widths")
        if not self.eval_betas or any(not 0 <= b <= 1 for b in self.eval_betas):
            raise bad("eval_betas", "a non-empty list of betas in [0, 1]")

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)

    def split(self, available: list[str]) -> Split:
        """The run's split on a store holding the ``available`` benchmarks."""
        return Split.for_benchmarks(available, self.search, self.held_out)


def _coerce(where: str, key: str, value: Any, hint: Any) -> Any:
    """``value`` as the setting's type, or a one-line error naming the setting."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    optional = type(None) in args
    if optional and value is None:
        return None
    if optional:
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        if not isinstance(value, list):
            raise TrainConfigError(f"{where}: '{key}' must be a list, got {value!r}")
        return [_coerce(where, key, v, args[0]) for v in value]
    name = getattr(hint, "__name__", str(hint))
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
    }.get(hint, True)
    if not ok:
        raise TrainConfigError(f"{where}: '{key}' must be {'an' if name == 'int' else 'a'} "
                               f"{name}, got {value!r}")
    return float(value) if hint is float else value


# ----------------------------------------------------------------------------- envs


def make_env(cfg: TrainConfig, replay_dir: str, beta: Any = None):
    """One training env on the search benchmarks (macro-wrapped unless
    ``cfg.env == 'atomic'``)."""
    from autotts_gym.data import open_store
    from autotts_gym.env import AutoTTSEnv
    from autotts_gym.wrappers import RoundMacroWrapper

    store = open_store(replay_dir)
    env = AutoTTSEnv(store=store, model=cfg.models,
                     benchmark=list(cfg.split(store.benchmarks()).search),
                     max_width=cfg.max_width,
                     beta=(cfg.beta_low, cfg.beta_high) if beta is None else beta)
    return RoundMacroWrapper(env, cfg.max_rounds) if cfg.env == "macro" else env


def policy_for_harness(model, cfg: TrainConfig | None = None, name: str = "RL",
                       wrapper: str | None = None, max_width: int = 64):
    """A harness policy acting on the env the model was trained on (``cfg``, or
    ``wrapper`` = "macro"/"atomic" for a model without a run config)."""
    from autotts_gym.harness import GymPolicy
    from autotts_gym.wrappers import RoundMacroWrapper

    kind = cfg.env if cfg is not None else wrapper
    rounds = cfg.max_rounds if cfg is not None else 200
    width = cfg.max_width if cfg is not None else max_width
    wrap = (functools.partial(RoundMacroWrapper, max_rounds=rounds)
            if kind == "macro" else None)
    return GymPolicy(model, name, env_kwargs={"max_width": width}, wrapper=wrap)


# ----------------------------------------------------------------------------- files


def _model_bytes(model, extra: dict | None = None, records: list | None = None) -> bytes:
    buf = io.BytesIO()
    model.save(buf)
    if extra is not None:
        with zipfile.ZipFile(buf, "a") as z:
            z.writestr(SCORE_ENTRY, json.dumps(extra))
            if records is not None:
                z.writestr(RECORDS_ENTRY, json.dumps([dataclasses.asdict(r)
                                                      for r in records]))
    return buf.getvalue()


def _atomic_bytes(path: Path, data: bytes) -> None:
    from autotts_gym.store import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def _write_json(path: Path, data: dict) -> None:
    _atomic_bytes(path, json.dumps(data, indent=2).encode())


def read_score(path: Path | str) -> dict | None:
    """The evaluation stored in a ``best.zip`` (None if absent or unreadable)."""
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read(SCORE_ENTRY))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def data_hashes(store, models, benchmark) -> dict[str, str]:
    """sha256 of the source of every replay set the run trains on (the AutoTTS JSON it was
    imported from; the store file for sets without one), keyed ``model/benchmark``."""
    out = {}
    for rs in store.select(models, benchmark):
        digest = rs.source_sha256
        if not digest:
            f = Path(store.root) / rs.model / f"{rs.benchmark}.h5"
            digest = hashlib.sha256(f.read_bytes()).hexdigest() if f.is_file() else ""
        out[f"{rs.model}/{rs.benchmark}"] = digest
    return out


# ----------------------------------------------------------------------------- evaluation


def search_results(model, cfg: TrainConfig, store):
    """The policy's episodes on the search set (``cfg.benchmark`` only), no reference."""
    from autotts_gym.harness import evaluate

    split = cfg.split(store.benchmarks())
    return evaluate(policy_for_harness(model, cfg), store, models=cfg.models,
                    benchmarks=list(split.search), seeds=range(cfg.eval_seeds),
                    betas=cfg.eval_betas, workers=1, progress=False, reference=None)


def search_objective(model, cfg: TrainConfig, store, results=None) -> dict:
    """The protocol's mean episode objective on the search set, with its 95% interval
    over problems (:func:`autotts_gym.stats.select_best`)."""
    from autotts_gym.protocol import mean_objective
    from autotts_gym.stats import select_best

    res = results if results is not None else search_results(model, cfg, store)
    iv = select_best({"policy": res.records}).candidates[0].objective
    return {"objective": mean_objective(res.records), "objective_ci_low": iv.low,
            "objective_ci_high": iv.high,
            "accuracy": float(np.mean([r.correct for r in res.records])),
            "tokens": float(np.mean([r.tokens for r in res.records]))}


def replaces_best(best_records, new_records) -> bool:
    """Whether a new evaluation replaces the best so far: the one rule of
    :func:`autotts_gym.stats.select_best` (higher objective beyond noise, or a tie within
    noise at fewer tokens)."""
    from autotts_gym.stats import select_best

    return select_best({"best": best_records, "new": new_records}).best == "new"


def read_best_records(path: Path | str) -> list | None:
    """The search-set episodes that chose a ``best.zip`` (stored inside it), or None."""
    from autotts_gym.harness import EpisodeRecord

    try:
        with zipfile.ZipFile(path) as z:
            rows = json.loads(z.read(RECORDS_ENTRY))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return [EpisodeRecord(**r) for r in rows]


# ----------------------------------------------------------------------------- training


def run_state(out: Path | str) -> dict | None:
    """``meta.json`` of a run (None when there is none)."""
    p = Path(out) / "meta.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def train(cfg: TrainConfig, out: Path | str, resume: bool = False, progress: bool = False,
          bc: str | None = None, total_timesteps: int | None = None):
    """Train (or resume) a run in ``out``; returns the trained model.

    ``total_timesteps`` (resume only) extends a run's budget. ``bc``: a Minari dataset id
    of controller rollouts to warm-start the policy from by behaviour cloning (new runs).
    Raises :class:`RunFinished` for ``resume`` of a run that already reached its budget.
    """
    from autotts_gym.runlock import RunLock

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    with RunLock(out, "train"):
        return _train_locked(cfg, out, resume, progress, bc, total_timesteps)


def _train_locked(cfg, out: Path, resume, progress, bc, total_timesteps):  # noqa: C901
    import sb3_contrib
    import stable_baselines3
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from autotts_gym.data import open_store
    from autotts_gym.report import write_text

    from .features import SlotSetExtractor

    ckpt = out / "checkpoints" / "last.zip"
    if resume:
        if not ckpt.is_file():
            raise UsageError(f"{ckpt}: no checkpoint to resume from")
        cfg = TrainConfig.from_yaml(out / "config.yaml")
        if total_timesteps is not None:
            cfg.total_timesteps = int(total_timesteps)
        state = run_state(out) or {}
        done_steps = int(state.get("num_timesteps", 0))
        if (out / "final.zip").is_file() and done_steps >= cfg.total_timesteps:
            raise RunFinished(f"{out}: already finished ({done_steps:,} of "
                              f"{cfg.total_timesteps:,} steps); nothing changed. Pass "
                              f"--total-timesteps N to train further")
    elif ckpt.is_file() or (out / "config.yaml").is_file():
        raise UsageError(f"{out}: a run exists here; pass --resume or another --out")
    cfg.validate()
    store = open_store(cfg.replay_dir)
    split = cfg.split(store.benchmarks())  # recorded in config.yaml as resolved
    cfg.search, cfg.held_out = list(split.search), list(split.held_out)
    replay_dir = str(store.root)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", cfg.to_yaml())
    if cfg.vec_env == "subproc" and cfg.n_envs > 1:
        vec_cls = SubprocVecEnv
    else:
        vec_cls = DummyVecEnv
    venv = make_vec_env(functools.partial(make_env, cfg, replay_dir), n_envs=cfg.n_envs,
                        seed=cfg.seed, vec_env_cls=vec_cls)
    if resume:
        model = MaskablePPO.load(str(ckpt), env=venv, tensorboard_log=str(out / "tb"),
                                 device="cpu")
        _trim_evals(out / "evals.jsonl", model.num_timesteps)
    else:
        policy_kwargs: dict[str, Any] = {"net_arch": list(cfg.net_arch)}
        policy = "MlpPolicy"
        if cfg.env == "atomic":
            policy = "MultiInputPolicy"
            if cfg.slot_extractor:
                policy_kwargs.update(features_extractor_class=SlotSetExtractor,
                                     features_extractor_kwargs={"per_slot_dim": 4})
        model = MaskablePPO(policy, venv, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
                            n_epochs=cfg.n_epochs, learning_rate=cfg.learning_rate,
                            gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, ent_coef=cfg.ent_coef,
                            policy_kwargs=policy_kwargs, seed=cfg.seed, verbose=0,
                            tensorboard_log=str(out / "tb"), device="cpu")
        if bc:
            from .bc import behaviour_clone

            stats = behaviour_clone(model, bc, cfg, epochs=cfg.bc_epochs)
            print(f"behaviour cloning from {bc}: {stats['steps']:,} steps, action "
                  f"agreement {100 * stats['agreement']:.1f}%", file=sys.stderr)
    meta = {"seed": cfg.seed, "python": platform.python_version(),
            "torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__, "replay_dir": replay_dir,
            "synthetic_data": store.synthetic,
            "split": str(split), "bc_dataset": bc,
            "data_sha256": data_hashes(store, cfg.models, list(split.search))}
    if resume:
        meta["bc_dataset"] = (run_state(out) or {}).get("bc_dataset")
    best_path = out / "best.zip"
    best = read_score(best_path) or {"objective": -np.inf}
    best_records = [read_best_records(best_path)]
    bar = _Progress(cfg.total_timesteps, model.num_timesteps, progress)

    class Periodic(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_ckpt = model.num_timesteps + cfg.checkpoint_every
            self.next_eval = model.num_timesteps + cfg.eval_every
            self.last_eval = -1

        def _on_step(self) -> bool:
            bar.update(self.num_timesteps)
            if self.num_timesteps >= self.next_eval:
                self.next_eval += cfg.eval_every
                self.evaluate()
            if self.num_timesteps >= self.next_ckpt:
                self.next_ckpt += cfg.checkpoint_every
                self.checkpoint()
            return True

        def evaluate(self) -> None:
            if self.last_eval == self.num_timesteps:
                return
            self.last_eval = self.num_timesteps
            res = search_results(self.model, cfg, store)
            score = {"timesteps": self.num_timesteps,
                     **search_objective(self.model, cfg, store, res)}
            bar.objective(score["objective"])
            for k, v in score.items():
                self.logger.record(f"search/{k}", v)
            with open(out / "evals.jsonl", "a") as f:
                f.write(json.dumps(score) + "\n")
            prev = best_records[0]
            if (replaces_best(prev, res.records) if prev is not None
                    else score["objective"] > best["objective"]):
                best.clear()
                best.update(score)
                best_records[0] = res.records
                # the weights, their score and the episodes behind it: one file, one rename
                _atomic_bytes(best_path, _model_bytes(self.model, score, res.records))

        def checkpoint(self) -> None:
            _atomic_bytes(ckpt, _model_bytes(self.model))
            _write_json(out / "meta.json", {**meta, "num_timesteps": self.num_timesteps,
                                            "best_objective": best["objective"],
                                            "best_timesteps": best.get("timesteps")})

    remaining = max(0, cfg.total_timesteps - model.num_timesteps)
    cb = Periodic()
    model.learn(remaining, callback=cb, reset_num_timesteps=not resume)
    cb.num_timesteps = model.num_timesteps
    cb.evaluate()  # the final weights are always scored
    cb.checkpoint()
    _atomic_bytes(out / "final.zip", _model_bytes(model))
    bar.close()
    venv.close()
    return model


def _trim_evals(path: Path, upto: int) -> None:
    """Drop evaluations past the checkpoint resumed from (their steps are retrained)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln in lines if json.loads(ln).get("timesteps", 0) <= upto]
    if len(keep) != len(lines):
        _atomic_bytes(path, "".join(ln + "\n" for ln in keep).encode())


class _Progress:
    """A tqdm bar on stderr: steps, steps/s and the last search objective."""

    def __init__(self, total: int, start: int, enabled: bool):
        self.bar = None
        self.last = start
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", unit_scale=True,
                            desc="train", mininterval=1.0 if sys.stderr.isatty() else 30.0,
                            dynamic_ncols=True, file=sys.stderr)

    def update(self, n: int) -> None:
        if self.bar is not None and n > self.last:
            self.bar.update(n - self.last)
            self.last = n

    def objective(self, value: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"search objective {value:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------- loading


ALGOS = ("MaskablePPO", "PPO", "A2C", "DQN")


def _algo_of(path: Path) -> str:
    """The SB3 algorithm a zip was saved by, from its policy class."""
    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        raise UsageError(f"{path}: not a stable-baselines3 zip (no readable 'data' entry)"
                         ) from None
    pc = data.get("policy_class", {})
    text = json.dumps(pc)
    if "maskable" in text.lower():
        return "MaskablePPO"
    if "dqn" in text.lower() or "QNetwork" in text:
        return "DQN"
    return "PPO"


def load_model(path: Path | str, algo: str | None = None):
    """Any stable-baselines3 / sb3-contrib zip (the algorithm read from the zip)."""
    path = Path(path)
    algo = algo or _algo_of(path)
    if algo not in ALGOS:
        raise UsageError(f"--algo {algo!r}: expected one of {', '.join(ALGOS)}")
    if algo == "MaskablePPO":
        from sb3_contrib import MaskablePPO as cls
    else:
        import stable_baselines3

        cls = getattr(stable_baselines3, algo)
    try:
        return cls.load(str(path), device="cpu")
    except Exception as e:  # noqa: BLE001 -- SB3 raises many kinds for foreign zips
        raise UsageError(f"{path}: cannot load as {algo} ({type(e).__name__}: {e})"
                         ) from None


def load_policy(spec: str, name: str | None = None, wrapper: str | None = None,
                max_width: int | None = None):
    """``rl:PATH.zip`` (or a plain path) -> a harness policy.

    With a ``config.yaml`` beside the zip (or one level up: a run directory) the env comes
    from it; otherwise from ``wrapper`` ("macro" or "atomic"; default: the macro wrapper
    if the model's observations are its feature vector, else the atomic env) and
    ``max_width`` (default: the atomic observation's width, else 64).
    """
    from autotts_gym.wrappers import FEATURES

    path = Path(spec.removeprefix("rl:"))
    if not path.is_file():
        raise UsageError(f"--policy {path}: no such file")
    if wrapper not in (None, "macro", "atomic"):
        raise UsageError(f"--wrapper {wrapper!r}: expected macro or atomic")
    model = load_model(path)
    label = name or f"RL({path.parent.name or path.stem})"
    cfg_path = next((p / "config.yaml" for p in (path.parent, path.parent.parent)
                     if (p / "config.yaml").is_file()), None)
    if cfg_path is not None and wrapper is None and max_width is None:
        return policy_for_harness(model, TrainConfig.from_yaml(cfg_path), label)
    space = model.observation_space
    if wrapper is None:
        wrapper = ("macro" if getattr(space, "shape", None) == (len(FEATURES),)
                   else "atomic")
    if max_width is None:
        depth = space.spaces.get("depth") if hasattr(space, "spaces") else None
        max_width = int(depth.shape[0]) if depth is not None else 64
    return policy_for_harness(model, None, label, wrapper=wrapper, max_width=max_width)
