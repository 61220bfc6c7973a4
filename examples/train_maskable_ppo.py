"""MaskablePPO on AutoTTS-v0 in about ten lines of ordinary stable-baselines3 code.

    python examples/train_maskable_ppo.py [--replay-dir DIR]
"""

import argparse

from sb3_contrib import MaskablePPO
from stable_baselines3.common.env_util import make_vec_env

from autotts_gym.env import AutoTTSEnv
from autotts_gym.wrappers import RoundMacroWrapper

ap = argparse.ArgumentParser()
ap.add_argument("--replay-dir", default=None)
args = ap.parse_args()



def make() -> RoundMacroWrapper:
    """Train on the search set (aime24) with beta sampled per episode: one policy, every
    beta."""
    return RoundMacroWrapper(AutoTTSEnv(replay_dir=args.replay_dir, benchmark="aime24",
                                        beta=(0.0, 1.0)))


env = make_vec_env(make, n_envs=2, seed=0)
model = MaskablePPO("MlpPolicy", env, n_steps=256, batch_size=256, gamma=1.0, seed=0)
model.learn(total_timesteps=10_000)  # masks come from env.action_masks()
model.save("maskable_ppo_autotts")
