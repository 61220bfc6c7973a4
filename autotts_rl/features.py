"""A permutation-invariant features extractor for AutoTTS-v0's per-slot observations.

Each slot becomes a small feature vector (depth, flags, the vote share of its latest
answer, whether that answer leads); one shared MLP embeds every slot; mean and max pooling
over opened slots make the summary independent of slot order. Global entries (tokens,
budget, beta, opened fraction, the sorted vote shares) are appended. Optionally each
slot's own embedding is appended too (``per_slot_dim``), so an atomic policy can still
address CONTINUE(i) / PROBE(i) / PRUNE(i) slot by slot with the same shared weights.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

SLOT_FEATURES = 7
TOP_VOTES = 4


class SlotSetExtractor(BaseFeaturesExtractor):
    """Usable as ``policy_kwargs={"features_extractor_class": SlotSetExtractor}``."""

    def __init__(self, observation_space: gym.spaces.Dict, hidden: int = 64,
                 per_slot_dim: int = 0):
        n = observation_space["depth"].shape[0]
        self.max_depth = float(observation_space["depth"].high.max())
        out = 2 * hidden + 4 + TOP_VOTES + n * per_slot_dim
        super().__init__(observation_space, features_dim=out)
        self.n = n
        self.phi = nn.Sequential(nn.Linear(SLOT_FEATURES, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())
        self.per_slot = nn.Linear(hidden, per_slot_dim) if per_slot_dim else None

    def slot_features(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        depth = obs["depth"] / self.max_depth
        pruned = obs["pruned"].float()
        opened = (obs["depth"] > 0).float()
        votes = obs["votes"]
        n_votes = votes.sum(dim=1, keepdim=True).clamp(min=1.0)
        rank = obs["answer"].long()
        has = (rank >= 0).float()
        share = torch.gather(votes, 1, rank.clamp(min=0)) / n_votes * has
        leads = (share >= votes.max(dim=1, keepdim=True).values / n_votes - 1e-6).float() * has
        x = torch.stack([depth, obs["active"].float(), pruned, obs["finished"].float(),
                         has, share, leads], dim=-1)
        return x, opened

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        x, opened = self.slot_features(obs)
        h = self.phi(x)  # (B, N, hidden), one shared network for every slot
        m = opened.unsqueeze(-1)
        count = m.sum(dim=1).clamp(min=1.0)
        mean = (h * m).sum(dim=1) / count
        mx = (h * m - (1 - m) * 1e4).max(dim=1).values * (count > 0).float()
        mx = torch.where(opened.any(dim=1, keepdim=True), mx, torch.zeros_like(mx))
        votes = obs["votes"]
        top = torch.sort(votes / votes.sum(1, keepdim=True).clamp(min=1.0), dim=1,
                         descending=True).values[:, :TOP_VOTES]
        parts = [mean, mx, obs["tokens"], obs["budget_left"], obs["beta"], obs["n_open"], top]
        if self.per_slot is not None:
            parts.append((self.per_slot(h) * m).flatten(1))
        return torch.cat(parts, dim=1)
