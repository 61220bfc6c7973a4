"""Behaviour cloning: warm-start a MaskablePPO policy from a Minari dataset of rollouts."""

from __future__ import annotations

import numpy as np

from autotts_gym.errors import UsageError


def behaviour_clone(model, dataset_id: str, cfg, epochs: int = 20, batch_size: int = 256,
                    lr: float = 1e-3) -> dict:
    """Maximize the masked log-likelihood of the dataset's actions under ``model.policy``.

    The dataset's observations must be the training env's (``cfg.env``): rollouts of
    ``autotts data rollouts`` are atomic AutoTTS-v0 steps, so they fit ``env: atomic`` runs
    of the same ``max_width``. Returns the step count and the final action agreement.
    """
    import torch
    from stable_baselines3.common.utils import obs_as_tensor

    from .offline import dataset_arrays

    obs, actions, masks, _ = dataset_arrays(dataset_id)
    space = model.observation_space
    want = {k: v.shape for k, v in space.spaces.items()} if hasattr(space, "spaces") else (
        space.shape)
    got = ({k: v.shape[1:] for k, v in obs.items()} if isinstance(obs, dict)
           else obs.shape[1:])
    if want != got or masks.shape[1] != model.action_space.n:
        raise UsageError(f"--bc {dataset_id}: its observations/actions ({got}, "
                         f"{masks.shape[1]} actions) do not fit the '{cfg.env}' env of this "
                         f"run ({want}, {model.action_space.n} actions); record rollouts with "
                         f"the same env and max_width")
    policy = model.policy
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    n = len(actions)
    rng = np.random.default_rng(cfg.seed)
    policy.set_training_mode(True)
    for _ in range(max(0, epochs)):
        for idx in np.array_split(rng.permutation(n), max(1, n // batch_size)):
            o = obs_as_tensor({k: v[idx] for k, v in obs.items()} if isinstance(obs, dict)
                              else obs[idx], policy.device)
            dist = policy.get_distribution(o, action_masks=masks[idx])
            loss = -dist.log_prob(torch.as_tensor(actions[idx], device=policy.device)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        o = obs_as_tensor(obs, policy.device)
        pred = policy.get_distribution(o, action_masks=masks).mode().cpu().numpy()
    return {"steps": int(n), "agreement": float(np.mean(pred == actions))}
