"""Vectorized versions of the Table 1 controllers over an EpisodeBatch.

Each function runs one controller on every row (problem x seed) of a batch at once and
returns the answer id per row (-1 for none). They make the same calls as the per-episode
controllers in this package (so ``batch.tokens`` and ``batch.steps`` equal theirs) and go
through :class:`~autotts_gym.core.EpisodeBatch` for every charge and reveal. The tests
check them against the per-episode controllers and the reference table.
"""

from __future__ import annotations

import numpy as np

from autotts_gym.core import NO_ANSWER_ID as NONE
from autotts_gym.core import EpisodeBatch
from autotts_gym.voting import BatchTally, batch_majority, confidence_table

from .cmc import MAX_STEPS, schedule


def _n_ids(batch: EpisodeBatch) -> int:
    return max(len(t.vocab) for t in batch.tables)


def _all(batch: EpisodeBatch) -> np.ndarray:
    return np.ones(batch.n_rows, dtype=bool)


def sc_batch(batch: EpisodeBatch, n: int = 64) -> np.ndarray:
    """SC@n: read n whole branches (fewer if they run out), majority of their finals."""
    answers = np.full((batch.n_rows, n), NONE, dtype=np.int64)
    going = _all(batch)
    for k in range(n):
        ok, a = batch.read(going)
        answers[:, k] = np.where(ok, a, NONE)
        going &= ok
    return batch_majority(answers, _n_ids(batch))[0]


def asc_batch(batch: EpisodeBatch, max_samples: int = 64, threshold: float = 0.95
              ) -> np.ndarray:
    """ASC: read one by one; stop when the beta confidence exceeds the threshold."""
    E = batch.n_rows
    votes = BatchTally(E, _n_ids(batch))
    table = confidence_table(max_samples + 1)
    out = np.full(E, NONE, dtype=np.int64)
    going = _all(batch)
    for k in range(max_samples):
        ok, a = batch.read(going)
        going &= ok
        r = np.nonzero(ok)[0]
        votes.add(r, a[r].astype(np.int64))
        if k + 1 >= 2 and r.size:
            w, t, s = votes.top(r)
            stop = table[t, s] > threshold
            out[r[stop]] = w[stop]
            going[r[stop]] = False
        if not going.any():
            break
    rest = out == NONE
    w, _, _ = votes.top()
    out[rest] = w[rest]
    return out


def esc_batch(batch: EpisodeBatch, max_samples: int = 64, window: int = 8) -> np.ndarray:
    """ESC: windows of reads; stop at the first window whose answers all agree."""
    E = batch.n_rows
    votes = BatchTally(E, _n_ids(batch))
    out = np.full(E, NONE, dtype=np.int64)
    running = _all(batch)
    for _ in range(max_samples // window):
        win = np.full((E, window), NONE, dtype=np.int64)
        reading = running.copy()
        for k in range(window):
            ok, a = batch.read(reading)
            reading &= ok
            win[:, k] = np.where(ok, a, NONE)
            r = np.nonzero(ok)[0]
            votes.add(r, a[r].astype(np.int64))
        got = win[:, 0] != NONE
        same = got & ((win == win[:, :1]) | (win == NONE)).all(axis=1)
        stop = running & same
        out[stop] = win[stop, 0]
        running &= ~stop
        if not running.any():
            break
    rest = out == NONE
    w, _, _ = votes.top()
    out[rest] = w[rest]
    return out


def parallel_probe_batch(batch: EpisodeBatch, num_chains: int = 64, T: int = 40,
                         prune_patience: int = 7, warm_up: int = 15, probe_burst: int = 1,
                         max_steps: int = 100) -> np.ndarray:
    """Parallel-Probe: lockstep deepening, off-track pruning, stable-winner stop."""
    E, W = batch.n_rows, min(num_chains, batch.n_slots)
    V = _n_ids(batch)
    fin, prn = batch.finished[:, :W], batch.pruned[:, :W]  # views of the batch state
    going = _all(batch)
    for _ in range(num_chains):
        ok, _, _, _ = batch.open(going)
        going &= ok
    chain = np.arange(W)[None, :] < np.minimum(batch.n_open, num_chains)[:, None]
    latest = np.where(chain, batch.revealed[:, :W], NONE).astype(np.int64)
    off = np.zeros((E, W), dtype=np.int64)
    prev = np.full(E, -2, dtype=np.int64)  # -2: no winner yet
    stable = np.zeros(E, dtype=np.int64)
    out = np.full(E, -2, dtype=np.int64)
    running = np.asarray(chain.any(axis=1))
    out[~running] = NONE
    for step in range(max_steps):
        # only the rows still running take part: gather their state, step, scatter back
        idx = np.flatnonzero(running)
        if idx.size == 0:
            break
        ch, lat, of = chain[idx], latest[idx], off[idx]
        pv = prev[idx]
        live = ch & ~prn[idx]
        for _ in range(probe_burst):
            mask = live & ~fin[idx]
            if not mask.any():
                break
            got = batch.advance(mask, rows=idx)
            lat = np.where(mask, got, lat)
        fin_i = fin[idx]
        active = live
        go = active.any(axis=1)  # (b) nothing active: stop with the previous winner
        winner = batch_majority(np.where(active, lat, NONE), V)[0]
        if step >= warm_up:
            cand = active & ~fin_i & (go & (active.sum(axis=1) > 1))[:, None]
            of = np.where(cand, np.where(lat != winner[:, None], of + 1, 0), of)
            cut = cand & (of >= prune_patience)
            if cut.any():
                batch.prune(cut, rows=idx)
                rows = cut.any(axis=1)
                active = active & ~cut
                go &= ~(rows & ~active.any(axis=1))
                rows &= go
                winner[rows] = batch_majority(np.where(active[rows], lat[rows], NONE), V)[0]
        st = np.where(winner == pv, stable[idx] + 1, 0)
        won = go & (st >= T)
        exhausted = go & ~won & ~(ch & ~fin_i & ~prn[idx]).any(axis=1)
        out[idx[~go]] = pv[~go]
        out[idx[won]] = winner[won]
        out[idx[exhausted]] = winner[exhausted]
        latest[idx], off[idx] = lat, of
        stable[idx] = np.where(go, st, stable[idx])
        prev[idx] = np.where(go, winner, pv)
        running[idx] = go & ~won & ~exhausted
    out[running] = prev[running]
    return np.where(out == -2, NONE, out)


def cmc_batch(batch: EpisodeBatch, beta: float) -> np.ndarray:
    """CMC at one beta, following the per-episode controller step for step."""
    s = schedule(beta)
    E, S = batch.n_rows, min(s.max_branch_use, batch.n_slots)  # CMC opens at most S
    V = _n_ids(batch)
    table = confidence_table(S + 1)
    fin, rev = batch.finished[:, :S], batch.revealed[:, :S]  # views of the batch state
    comp = BatchTally(E, V)  # answers of finished branches, in the order they finished
    probes = np.zeros((E, S), dtype=np.int64)
    disagree = np.zeros((E, S), dtype=np.int64)
    aband = np.zeros((E, S), dtype=bool)
    slot_idx = np.arange(S)[None, :]

    def spawn(rows: np.ndarray) -> np.ndarray:
        ok, slot, ans, ended = batch.open(rows)
        r = np.nonzero(ok)[0]
        probes[r, slot[r]] = 1
        f = r[ended[r]]
        comp.add(f, ans[f].astype(np.int64))
        return ok

    def pool():
        w, t, sc = comp.top()
        return w, np.where(w >= 0, table[t, sc], 0.0)

    going = _all(batch)
    for _ in range(s.n_init):
        going &= spawn(going)
    ema = np.zeros(E)
    hist = np.zeros((E, s.T_ema))
    hlen = np.zeros(E, dtype=np.int64)
    out = np.full(E, -2, dtype=np.int64)
    running = _all(batch)
    alpha = s.ema_alpha
    for step in range(MAX_STEPS):
        # only the rows still running take part: gather their state, step, scatter back
        idx = np.flatnonzero(running)
        if idx.size == 0:
            break
        loc = np.arange(idx.size)
        fin_i, rev_i = fin[idx], rev[idx]
        ab, dis, pr = aband[idx], disagree[idx], probes[idx]
        em, hi, hl = ema[idx], hist[idx], hlen[idx]
        opened = slot_idx < batch.n_open[idx, None]
        # (a) momentum of the pool's confidence
        w, t, sc = comp.top(idx)
        conf = np.where(w >= 0, table[t, sc], 0.0)
        warm = step >= s.warm_up
        em = (1 - alpha) * em + alpha * conf
        full = hl >= s.T_ema
        hi[full, :-1] = hi[full, 1:]
        hi[loc, np.where(full, s.T_ema - 1, hl)] = em
        hl = np.where(full, hl, hl + 1)
        live = opened & ~fin_i & ~ab
        # (b) abandon persistent dissenters, most disagreeing first
        if warm:
            judge = (w >= 0)[:, None] & live
            dis = np.where(judge, np.where(rev_i != w[:, None], dis + 1, 0), dis)
            stale = judge & (dis >= s.abandon_patience)
            n_cut = np.maximum(0, live.sum(axis=1) - 2)
            rows = np.nonzero(stale.any(axis=1) & (n_cut > 0))[0]
            if rows.size:
                key = np.where(stale[rows], -dis[rows] * (S + 1) + slot_idx, 1 << 40)
                rank = np.empty_like(key)
                np.put_along_axis(rank, np.argsort(key, axis=1, kind="stable"),
                                  np.arange(S)[None, :].repeat(rows.size, 0), axis=1)
                cut = np.zeros((idx.size, S), dtype=bool)
                cut[rows] = stale[rows] & (rank < n_cut[rows, None])
                ab |= cut
                batch.prune(cut, rows=idx)
                live &= ~cut
        # (c) depth, deepest first; completions recorded in that order
        aligned = live & ((w >= 0) & warm)[:, None] & (rev_i == w[:, None])
        n_adv = np.where(live, np.where(aligned, s.burst_aligned, 1), 0)
        before = pr.copy()
        finished_now = np.zeros((idx.size, S), dtype=bool)
        for k in range(int(n_adv.max(initial=0))):
            mask = (n_adv > k) & ~fin_i
            if not mask.any():
                break
            batch.advance(mask, rows=idx)
            pr += mask
            fin_i = fin[idx]
            finished_now |= mask & fin_i
        rev_i = rev[idx]
        fr = np.nonzero(finished_now.any(axis=1))[0]
        if fr.size:
            key = np.where(finished_now[fr], -before[fr] * (S + 1) + slot_idx, 1 << 40)
            order = np.argsort(key, axis=1, kind="stable")
            counts = finished_now[fr].sum(axis=1)
            for k in range(int(counts.max())):
                has = counts > k
                comp.add(idx[fr[has]], rev_i[fr[has], order[has, k]].astype(np.int64))
        # (d) second momentum update, replacing the newest value
        w, t, sc = comp.top(idx)
        conf = np.where(w >= 0, table[t, sc], 0.0)
        em = (1 - alpha) * em + alpha * conf
        last = np.maximum(hl - 1, 0)
        hi[loc, last] = em
        delta = np.where(hl >= 2, hi[loc, last] - hi[:, 0], 0.0)
        aband[idx], disagree[idx], probes[idx] = ab, dis, pr
        ema[idx], hist[idx], hlen[idx] = em, hi, hl
        # (e) stop gate
        stop = warm & (comp.n[idx] >= s.min_complete) & (em >= s.conf_thresh) & (
            delta >= -s.delta_slack)
        out[idx[stop]] = w[stop]
        # (f) nothing left to run
        go = ~stop & (opened & ~fin_i & ~ab).any(axis=1)
        running[idx] = go
        # (g) widen while confidence is low and not rising
        widen = np.zeros(E, dtype=bool)
        widen[idx] = go & (batch.n_open[idx] < s.max_branch_use) & (
            delta <= s.trend_thresh) & (step >= max(1, s.warm_up // 2)) & (em < s.conf_thresh)
        for _ in range(s.widen_burst):
            widen &= batch.n_open < s.max_branch_use
            if not widen.any():
                break
            widen &= spawn(widen)
    rest = out == -2
    winner, _ = pool()
    out[rest] = winner[rest]
    empty = rest & (winner < 0)
    if empty.any():
        opened = slot_idx < batch.n_open[:, None]
        votes = np.where(opened & ~aband, rev, NONE)
        out[empty] = batch_majority(votes[empty], V)[0]
    return out
