"""autotts-gym: test-time scaling of reasoning LLMs as a Gymnasium environment.

Importing the package registers ``AutoTTS-v0`` (atomic actions) and ``AutoTTSMacro-v0``
(round-level macro actions, :mod:`autotts_gym.macro_env`);
``gym.make("autotts_gym:AutoTTSMacro-v0")`` works without a prior import.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from .core import Episode, EpisodeBatch, ProblemTables, ReplayError, branch_order, tables_for
from .session import Session, StepLimitExceeded
from .store import Problem, ReplaySet, ReplayStore, StoreError

__version__ = "0.1.0"

if "AutoTTS-v0" not in registry:
    register(id="AutoTTS-v0", entry_point="autotts_gym.env:AutoTTSEnv")
if "AutoTTSMacro-v0" not in registry:
    register(id="AutoTTSMacro-v0", entry_point="autotts_gym.macro_env:make_macro_env")

# public names imported on first use, so ``import autotts_gym`` stays light
_LAZY = {
    "AutoTTSEnv": "env", "RoundMacroWrapper": "wrappers",
    "evaluate": "harness", "evaluate_many": "harness", "Results": "harness",
    "GymPolicy": "harness", "EpisodeRecord": "harness",
    "open_store": "data", "describe_source": "data",
    "Interval": "stats", "cell_stats": "stats", "pooled_stats": "stats",
    "summarize": "stats", "pooled_summary": "stats", "paired_difference": "stats",
    "mean_interval": "stats", "probability_of_improvement": "stats", "select_best": "stats",
    "reference_curves": "curves",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'autotts_gym' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "AutoTTSEnv",
    "Episode",
    "EpisodeBatch",
    "EpisodeRecord",
    "GymPolicy",
    "Interval",
    "Problem",
    "ProblemTables",
    "ReplayError",
    "ReplaySet",
    "ReplayStore",
    "Results",
    "RoundMacroWrapper",
    "Session",
    "StepLimitExceeded",
    "StoreError",
    "branch_order",
    "cell_stats",
    "describe_source",
    "evaluate",
    "evaluate_many",
    "mean_interval",
    "open_store",
    "paired_difference",
    "pooled_stats",
    "pooled_summary",
    "probability_of_improvement",
    "reference_curves",
    "select_best",
    "summarize",
    "tables_for",
]
