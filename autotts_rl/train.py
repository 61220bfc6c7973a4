"""Train sb3-contrib's MaskablePPO on AutoTTS-v0 (atomic or round-level macro actions).

One policy covers the whole accuracy-cost curve: beta is sampled per episode and is part
of the observation. Training and model selection see only the search benchmarks of the
run's :class:`~autotts_gym.protocol.Split` (``search``/``held_out`` in the config; by
default aime24 | aime25, hmmt25); the held-out ones never enter a run. A run directory
holds ``config.yaml``, ``meta.json`` (seeds, versions, steps), ``checkpoints/last.zip``
(written atomically, what ``--resume`` continues from), ``best.zip`` (best search-set
objective at the periodic evaluations), ``final.zip``, ``evals.jsonl`` and TensorBoard
logs in ``tb/``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autotts_gym.protocol import ProtocolError, Split


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

    @classmethod
    def from_yaml(cls, path: Path | str) -> TrainConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        if "benchmark" in data and "search" not in data:  # configs before the Split
            data["search"] = [data.pop("benchmark")]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        cfg = cls(**data)
        cfg.validate(str(path))
        return cfg

    def validate(self, where: str = "config") -> None:
        if self.search is not None and self.held_out is not None:
            try:
                Split(tuple(self.search), tuple(self.held_out))
            except ProtocolError as e:
                raise ValueError(f"{where}: {e}") from None
        if self.env not in ("macro", "atomic"):
            raise ValueError(f"{where}: 'env' must be 'macro' or 'atomic', got {self.env!r}")
        if self.vec_env not in ("subproc", "dummy"):
            raise ValueError(f"{where}: 'vec_env' must be 'subproc' or 'dummy'")
        if not 0 <= self.beta_low <= self.beta_high <= 1:
            raise ValueError(f"{where}: need 0 <= beta_low <= beta_high <= 1")

    def split(self, available: list[str]) -> Split:
        """The run's split on a store holding the ``available`` benchmarks."""
        return Split.for_benchmarks(available, self.search, self.held_out)

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


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


def _atomic_write_model(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.zip")
    model.save(str(tmp))
    os.replace(tmp, path)


def _write_json(path: Path, data: dict) -> None:
    from autotts_gym.store import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2)))


def policy_for_harness(model, cfg: TrainConfig, name: str = "RL"):
    """A harness policy acting on the env the model was trained on."""
    from autotts_gym.harness import GymPolicy
    from autotts_gym.wrappers import RoundMacroWrapper

    wrapper = (functools.partial(RoundMacroWrapper, max_rounds=cfg.max_rounds)
               if cfg.env == "macro" else None)
    return GymPolicy(model, name, env_kwargs={"max_width": cfg.max_width}, wrapper=wrapper)


def search_results(model, cfg: TrainConfig, store):
    """The policy's episodes on the run's search benchmarks, no reference added."""
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


def train(cfg: TrainConfig, out: Path | str, resume: bool = False, progress: bool = False):
    """Train (or resume) a run in ``out``; returns the trained model."""
    import sb3_contrib
    import stable_baselines3
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from autotts_gym.data import open_store

    from .features import SlotSetExtractor

    out = Path(out)
    ckpt = out / "checkpoints" / "last.zip"
    if resume:
        if not ckpt.is_file():
            raise FileNotFoundError(f"{ckpt}: no checkpoint to resume from")
        cfg = TrainConfig.from_yaml(out / "config.yaml")
    elif ckpt.is_file():
        raise FileExistsError(f"{out}: a run exists here; pass --resume or another --out")
    cfg.validate()
    store = open_store(cfg.replay_dir)
    split = cfg.split(store.benchmarks())  # recorded in config.yaml as resolved
    cfg.search, cfg.held_out = list(split.search), list(split.held_out)
    replay_dir = str(store.root)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    from autotts_gym.report import write_text

    write_text(out / "config.yaml", cfg.to_yaml())
    vec_cls = SubprocVecEnv if cfg.vec_env == "subproc" else DummyVecEnv
    venv = make_vec_env(functools.partial(make_env, cfg, replay_dir), n_envs=cfg.n_envs,
                        seed=cfg.seed, vec_env_cls=vec_cls)
    if resume:
        model = MaskablePPO.load(str(ckpt), env=venv, tensorboard_log=str(out / "tb"))
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
                            tensorboard_log=str(out / "tb"))
    meta = {"seed": cfg.seed, "python": platform.python_version(),
            "torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__, "replay_dir": replay_dir,
            "synthetic_data": store.synthetic, "split": str(split)}
    best_path = out / "best.zip"
    state_path = out / "meta.json"
    prev = json.loads(state_path.read_text()) if resume and state_path.is_file() else {}
    best = {"objective": prev.get("best_objective", -np.inf)}

    class Periodic(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_ckpt = model.num_timesteps + cfg.checkpoint_every
            self.next_eval = model.num_timesteps + cfg.eval_every
            self.last_eval = -1

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.next_eval += cfg.eval_every
                self._evaluate()
            if self.num_timesteps >= self.next_ckpt:
                self.next_ckpt += cfg.checkpoint_every
                self._checkpoint()
            return True

        def _evaluate(self) -> None:
            if self.last_eval == self.num_timesteps:
                return
            self.last_eval = self.num_timesteps
            res = search_results(self.model, cfg, store)
            score = search_objective(self.model, cfg, store, res)
            for k, v in score.items():
                self.logger.record(f"search/{k}", v)
            with open(out / "evals.jsonl", "a") as f:
                f.write(json.dumps({"timesteps": self.num_timesteps, **score}) + "\n")
            prev = best.get("records")
            if (replaces_best(prev, res.records) if prev is not None
                    else score["objective"] > best["objective"]):
                best.update(score, records=res.records)
                _atomic_write_model(self.model, best_path)

        def _checkpoint(self) -> None:
            _atomic_write_model(self.model, ckpt)
            _write_json(state_path, {**meta, "num_timesteps": self.num_timesteps,
                                     "best_objective": best["objective"]})

    remaining = max(0, cfg.total_timesteps - model.num_timesteps)
    cb = Periodic()
    model.learn(remaining, callback=cb, reset_num_timesteps=not resume,
                progress_bar=progress)
    cb._evaluate()
    cb._checkpoint()
    _atomic_write_model(model, out / "final.zip")
    venv.close()
    return model


def load_policy(spec: str, name: str | None = None):
    """``rl:PATH.zip`` (or a plain path) -> a harness policy, using the run's config.yaml."""
    from sb3_contrib import MaskablePPO

    path = Path(spec[3:] if spec.startswith("rl:") else spec)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved policy")
    cfg_path = next((p / "config.yaml" for p in (path.parent, path.parent.parent)
                     if (p / "config.yaml").is_file()), None)
    if cfg_path is None:
        raise FileNotFoundError(f"{path}: no config.yaml beside it (or one level up)")
    cfg = TrainConfig.from_yaml(cfg_path)
    model = MaskablePPO.load(str(path), device="cpu")
    return policy_for_harness(model, cfg, name or f"RL({path.parent.name})")
