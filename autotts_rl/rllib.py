"""Ray RLlib: PPO with action masking on AutoTTSMacro-v0 across env runners.

RLlib's new API stack masks actions in an RLModule that reads a ``Dict`` observation with
``"observations"`` and ``"action_mask"`` (RLlib's ``ActionMaskingTorchRLModule``);
:class:`MaskedObs` provides exactly that from the macro env. After training,
:class:`RLlibPolicy` puts the module behind the ``predict(obs, action_masks=...)`` call the
project's harness uses, so the result is scored on the same episodes as every controller
(batched: one forward pass per round for all episodes of a unit).

Requires ``pip install 'autotts-gym[ray]'``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

ENV_NAME = "autotts_macro_masked"


class MaskedObs(gym.ObservationWrapper):
    """The macro env with ``{"observations": features, "action_mask": 0/1 floats}``."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        n = env.action_space.n
        self.observation_space = gym.spaces.Dict({
            "observations": env.observation_space,
            "action_mask": gym.spaces.Box(0.0, 1.0, (n,), np.float32),
        })

    def observation(self, obs):
        mask = self.env.get_wrapper_attr("action_masks")()
        return {"observations": obs, "action_mask": mask.astype(np.float32)}


def env_creator(config: dict | None = None) -> gym.Env:
    """What ``register_env`` calls on each env runner: AutoTTSMacro-v0 kwargs in ``config``."""
    from autotts_gym.macro_env import make_macro_env

    return MaskedObs(make_macro_env(**dict(config or {})))


def register() -> str:
    """Register the masked macro env with RLlib (``ray.tune.registry.register_env``)."""
    from ray.tune.registry import register_env

    register_env(ENV_NAME, env_creator)
    return ENV_NAME


def ppo_config(env_config: dict, num_env_runners: int = 2, train_batch_size: int = 512,
               minibatch_size: int = 128, num_epochs: int = 5, hidden: tuple = (64, 64),
               seed: int = 0):
    """A PPOConfig (new API stack) with RLlib's action-masking RLModule."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.rllib.examples.rl_modules.classes.action_masking_rlm import (
        ActionMaskingTorchRLModule,
    )

    return (
        PPOConfig()
        .environment(ENV_NAME, env_config=env_config)
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=1)
        .training(train_batch_size=train_batch_size, minibatch_size=minibatch_size,
                  num_epochs=num_epochs, gamma=1.0, lambda_=0.95, lr=3e-4)
        .rl_module(rl_module_spec=RLModuleSpec(
            module_class=ActionMaskingTorchRLModule,
            model_config={"head_fcnet_hiddens": list(hidden),
                          "head_fcnet_activation": "tanh"}))
        .debugging(seed=seed)
    )


class RLlibPolicy:
    """An RLlib RLModule as a masked ``predict`` for the harness (macro observations)."""

    def __init__(self, module: Any, observation_space: gym.Space, n_actions: int):
        self.module = module
        self.observation_space = observation_space  # the macro env's feature vector
        self.action_space = gym.spaces.Discrete(n_actions)

    def predict(self, observation, state=None, episode_start=None, deterministic=True,
                action_masks=None):
        import torch
        from ray.rllib.core.columns import Columns

        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        obs = obs[None] if single else obs
        mask = (np.ones((len(obs), self.action_space.n), np.float32) if action_masks is None
                else np.asarray(action_masks, np.float32).reshape(len(obs), -1))
        batch = {Columns.OBS: {"observations": torch.as_tensor(obs),
                               "action_mask": torch.as_tensor(mask)}}
        with torch.no_grad():
            out = self.module.forward_inference(batch)
        logits = out[Columns.ACTION_DIST_INPUTS].cpu().numpy()
        actions = np.argmax(np.where(mask > 0, logits, -np.inf), axis=1)
        return (actions[0] if single else actions), state

    @classmethod
    def from_algorithm(cls, algo) -> RLlibPolicy:
        from ray.rllib.core import DEFAULT_MODULE_ID

        from autotts_gym.wrappers import FEATURES, MACRO_ACTIONS

        module = algo.get_module(DEFAULT_MODULE_ID)
        space = gym.spaces.Box(0.0, 1.0, (len(FEATURES),), np.float32)
        return cls(module, space, len(MACRO_ACTIONS))


def harness_policy(algo, name: str = "RLlib-PPO"):
    """The trained module as a harness :class:`~autotts_gym.harness.GymPolicy` on the
    macro env."""
    from autotts_gym.harness import GymPolicy
    from autotts_gym.wrappers import RoundMacroWrapper

    return GymPolicy(RLlibPolicy.from_algorithm(algo), name, wrapper=RoundMacroWrapper)
