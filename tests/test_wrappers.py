"""RoundMacroWrapper's PRUNE_DISSENT against the env's own vote (tiny hand-made stores)."""

from __future__ import annotations

import numpy as np

from autotts_gym.actions import ANSWER, BRANCH, encode
from autotts_gym.core import branch_order
from autotts_gym.env import AutoTTSEnv
from autotts_gym.store import ProblemBuilder, ReplaySet, ReplayStore, write_replay_set
from autotts_gym.wrappers import MACRO_ACTIONS, RoundMacroWrapper

PRUNE_DISSENT = MACRO_ACTIONS.index("prune_dissent")


def _store(tmp_path, answers: list[str]) -> ReplayStore:
    """One problem; the k-th branch met under order seed 0 answers ``answers[k]`` at every
    depth and runs four intervals."""
    order = branch_order(0, len(answers))
    stored: list[str] = [""] * len(answers)
    for k, a in enumerate(answers):
        stored[order[k]] = a
    pb = ProblemBuilder(0, "q", "gold", 500)
    for a in stored:
        pb.add_branch([a] * 3, 1900, a)
    root = tmp_path / "store"
    write_replay_set(root / "m" / "bench.h5", ReplaySet("m", "bench", [pb.build()]))
    return ReplayStore(root)


def _open(wrapper: RoundMacroWrapper, n: int, probe_order: list[int]) -> None:
    """Open n slots, then probe them in ``probe_order``, as atomic steps of the inner env."""
    wrapper.reset(options={"problem": 0, "order_seed": 0})
    for _ in range(n):
        wrapper.env.step(BRANCH)
    for i in probe_order:
        wrapper.env.step(encode("probe", i, n))


def _pruned(wrapper: RoundMacroWrapper, n: int) -> list[int]:
    mask = wrapper.inner.action_masks()
    return [i for i in range(n) if not mask[encode("prune", i, n)]]


def test_prune_dissent_agrees_with_answer_on_a_tie(tmp_path):
    """A 1-1 tie whose second slot was revealed first: ANSWER picks slot 0's "x" (first in
    slot order), so PRUNE_DISSENT must cut slot 1, not slot 0."""
    env = AutoTTSEnv(store=_store(tmp_path, ["x", "y"]), max_width=2)
    w = RoundMacroWrapper(env)
    _open(w, 2, probe_order=[1, 0])
    assert env.vote_counts() == {"x": 1, "y": 1} and env.leader() == "x"
    assert w.action_masks()[PRUNE_DISSENT]
    w.step(PRUNE_DISSENT)
    assert _pruned(w, 2) == [1]
    *_, info = w.step(MACRO_ACTIONS.index("answer"))
    assert info["answer"] == "x"


def test_prune_dissent_follows_a_custom_aggregator(tmp_path):
    """With an aggregator that answers the first listed answer, the majority "y" dissents."""
    env = AutoTTSEnv(store=_store(tmp_path, ["x", "y", "y"]), max_width=3,
                     aggregator=lambda xs: xs[0] if xs else None)
    w = RoundMacroWrapper(env)
    _open(w, 3, probe_order=[0, 1, 2])
    assert env.vote_counts() == {"x": 1, "y": 2} and env.leader() == "x"
    w.step(PRUNE_DISSENT)
    assert _pruned(w, 3) == [1, 2]
    assert not w.action_masks()[PRUNE_DISSENT]  # one active slot left: nothing to prune
    *_, info = w.step(MACRO_ACTIONS.index("answer"))
    assert info["answer"] == "x"


def test_prune_dissent_keeps_the_leader_on_random_play(synthetic_store):
    """On random macro play, PRUNE_DISSENT never changes what ANSWER would give and never
    leaves an active dissenter while two or more slots stay active."""
    rng = np.random.default_rng(0)
    env = AutoTTSEnv(store=synthetic_store, model="Qwen3-1.7B", benchmark="aime24",
                     max_width=8)
    w = RoundMacroWrapper(env, max_rounds=25)
    checked = 0
    for episode in range(30):
        _, info = w.reset(seed=episode)
        done = False
        while not done:
            mask = info["action_mask"]
            if mask[PRUNE_DISSENT]:
                lead = env.leader()
                _, _, term, trunc, info = w.step(PRUNE_DISSENT)
                done = term or trunc
                if not done:
                    checked += 1
                    assert env.leader() == lead
                    active = env.action_masks()[2:2 + 8]
                    answers = env.slot_answers()
                    assert all(answers[i] == lead for i in np.flatnonzero(active)) or (
                        active.sum() == 1)
                continue
            choices = np.flatnonzero(mask[1:]) + 1
            a = ANSWER if rng.random() < 0.05 or not choices.size else int(rng.choice(choices))
            _, _, term, trunc, info = w.step(a)
            done = term or trunc
    assert checked > 10
