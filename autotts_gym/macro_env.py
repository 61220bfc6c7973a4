"""``AutoTTSMacro-v0``: AutoTTS-v0 under the round-level macro actions, as one registered id.

``gym.make("autotts_gym:AutoTTSMacro-v0")`` trains on the protocol's search set (aime24)
with beta drawn per episode from [0, 1] unless told otherwise; every keyword of
:class:`~autotts_gym.env.AutoTTSEnv` passes through, ``max_rounds`` goes to
:class:`~autotts_gym.wrappers.RoundMacroWrapper`. The wrapper forwards ``action_masks()``,
so sb3-contrib's MaskablePPO and RL Zoo's ``ppo`` train on the id directly.
"""

from __future__ import annotations

from typing import Any

from .env import AutoTTSEnv
from .protocol import DEFAULT_SEARCH
from .wrappers import RoundMacroWrapper


def make_macro_env(max_rounds: int = 200, **env_kwargs: Any) -> RoundMacroWrapper:
    """AutoTTS-v0 (search set, beta in [0, 1] by default) wrapped in RoundMacroWrapper."""
    env_kwargs.setdefault("benchmark", DEFAULT_SEARCH[0])
    env_kwargs.setdefault("beta", (0.0, 1.0))
    if isinstance(env_kwargs["beta"], list):  # JSON round trips (Minari, RLlib configs)
        env_kwargs["beta"] = tuple(env_kwargs["beta"])
    return RoundMacroWrapper(AutoTTSEnv(**env_kwargs), max_rounds=max_rounds)
