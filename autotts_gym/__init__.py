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

__all__ = [
    "Episode", "EpisodeBatch", "Problem", "ProblemTables", "ReplayError", "ReplaySet",
    "ReplayStore", "Session", "StepLimitExceeded", "StoreError", "branch_order", "tables_for",
]
