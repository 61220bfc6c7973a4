"""A plain Gymnasium loop on AutoTTS-v0 with a random masked policy.

    python examples/gym_loop.py [--replay-dir DIR]
"""

import argparse

import gymnasium as gym
import numpy as np

import autotts_gym  # noqa: F401  (registers AutoTTS-v0)

ap = argparse.ArgumentParser()
ap.add_argument("--replay-dir", default=None)
args = ap.parse_args()

env = gym.make("AutoTTS-v0", replay_dir=args.replay_dir, max_width=16, beta=0.5,
               render_mode="ansi")
rng = np.random.default_rng(0)
for episode in range(3):
    obs, info = env.reset(seed=episode)
    done = False
    while not done:
        mask = info["action_mask"]
        # answer with probability 2%, else a random admissible action
        valid = np.flatnonzero(mask[1:]) + 1
        action = 0 if rng.random() < 0.02 or not len(valid) else int(rng.choice(valid))
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    print(env.render())
    print(f"episode {episode}: answer={info['answer']!r} correct={info['correct']} "
          f"tokens={info['tokens']:,.0f} width={info['width']}")
