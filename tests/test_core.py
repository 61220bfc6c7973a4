"""The replay core against the spec, on the bundled synthetic data (JSON written from it)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from autotts_gym.core import Episode, EpisodeBatch, ReplayError, branch_order, tables_for


def _raw(json_dir, model="Qwen3-4B", bench="aime24"):
    return json.loads((json_dir / model / f"{bench}.json").read_text())


def test_branch_order_is_python_shuffle():
    o = list(range(128))
    random.Random(7).shuffle(o)
    assert branch_order(7) == o
    assert branch_order(7) != branch_order(8)


def test_branch_run_to_its_end_costs_max_of_tokens_and_intervals(synthetic_store,
                                                                 synthetic_json_dir):
    raw = _raw(synthetic_json_dir)
    rs = synthetic_store.load("Qwen3-4B", "aime24")
    checked_short = checked_long = 0
    for pi in (0, 7, 19):
        prob = rs.problems[pi]
        order = list(range(128))
        ep = Episode(tables_for(prob), order)
        for b in range(128):
            probes, tokens, final = raw[pi]["each_branch"][b]
            before = ep.tokens
            answer, slot, fin = ep.open()
            assert prob.vocab[answer] == probes[0]
            seen = [prob.vocab[answer]]
            while not fin:
                a, fin = ep.advance_and_probe(slot)
                seen.append(prob.vocab[a])
            L = len(probes)
            assert seen == [*probes, final]  # probe k at interval k, final at L + 1
            assert ep.tokens - before == max(tokens, 500 * L)
            # a finished branch re-reveals its final answer at zero cost
            a, fin = ep.advance_and_probe(slot)
            assert fin and prob.vocab[a] == final and ep.tokens - before == max(tokens, 500 * L)
            checked_short += tokens < 500 * L
            checked_long += tokens > 500 * (L + 1)
    assert checked_short > 0 and checked_long > 0  # both misalignments occur in these problems


def test_read_charges_branch_tokens_and_follows_order(synthetic_store, synthetic_json_dir):
    raw = _raw(synthetic_json_dir)
    prob = synthetic_store.load("Qwen3-4B", "aime24").problems[3]
    ep = Episode.from_seed(prob, 11)
    order = branch_order(11)
    total = 0
    for i in range(128):
        a, slot = ep.read()
        _, tokens, final = raw[3]["each_branch"][order[i]]
        total += tokens
        assert slot == i and prob.vocab[a] == final and ep.tokens == total
    assert ep.read() is None and ep.open() is None


def test_atomic_actions_equal_reference_calls_and_kappa(synthetic_store):
    prob = synthetic_store.load("Qwen3-1.7B", "hmmt25").problems[5]
    ref = Episode.from_seed(prob, 3)
    atom = Episode.from_seed(prob, 3, kappa_probe=2.5)
    n_probes = 0
    for _ in range(5):
        a, slot, _ = ref.open()
        s2 = atom.branch()
        assert atom.revealed[s2] == -1  # BRANCH reveals nothing
        assert atom.probe(s2) == a
        n_probes += 1
    for slot in range(5):
        for _ in range(3):
            a, _ = ref.advance_and_probe(slot)
            atom.advance(slot)
        assert atom.probe(slot) == a
        n_probes += 1
    assert atom.tokens == ref.tokens + 2.5 * n_probes


def test_invalid_core_operations_raise(synthetic_store):
    ep = Episode.from_seed(synthetic_store.load("Qwen3-0.6B", "aime24").problems[0], 0)
    with pytest.raises(ReplayError):
        ep.advance(0)
    with pytest.raises(ReplayError):
        ep.probe(0)
    with pytest.raises(ValueError):
        Episode(tables_for(synthetic_store.load("Qwen3-0.6B", "aime24").problems[0]), [0, 1])


def test_batch_equals_scalar_under_random_actions(synthetic_store):
    rs = synthetic_store.load("Qwen3-0.6B", "aime25")
    probs = rs.problems[:4]
    seeds = [0, 1, 2]
    batch = EpisodeBatch.from_seeds(probs, seeds, kappa_probe=1.0)
    eps = [Episode.from_seed(p, s, kappa_probe=1.0) for p in probs for s in seeds]
    rng = np.random.default_rng(0)
    E, S = batch.n_rows, batch.n_slots
    for _ in range(300):
        kind = rng.integers(5)
        rows = rng.random(E) < 0.6
        if kind == 0:
            ok, slot, ans, fin = batch.open(rows)
            for e, ep in enumerate(eps):
                if rows[e]:
                    r = ep.open()
                    assert ok[e] == (r is not None)
                    if r:
                        assert (ans[e], slot[e], fin[e]) == r
        elif kind == 1:
            ok, ans = batch.read(rows & (rng.random(E) < 0.2))
            for e, ep in enumerate(eps):
                if ok[e]:
                    assert ep.read()[0] == ans[e]
        else:
            mask = (rng.random((E, S)) < 0.3) & batch.opened
            op = {2: "advance", 3: "probe", 4: "prune"}[int(kind)]
            out = getattr(batch, op)(mask)
            for e, ep in enumerate(eps):
                for s in np.nonzero(mask[e])[0]:
                    if op == "advance":
                        assert ep.advance_and_probe(int(s))[0] == out[e, s]
                    elif op == "probe":
                        assert ep.probe(int(s)) == out[e, s]
                    else:
                        ep.prune(int(s))
        for e, ep in enumerate(eps):
            n = ep.n_open
            assert batch.n_open[e] == n and batch.tokens[e] == ep.tokens
            assert list(batch.depth[e, :n]) == ep.depth
            assert list(batch.finished[e, :n]) == ep.finished
            assert list(batch.pruned[e, :n]) == ep.pruned
            assert list(batch.revealed[e, :n]) == ep.revealed
