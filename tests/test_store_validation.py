"""The store is validated on read: damaged files and inconsistent arrays give one
StoreError naming the file, never another exception and never a silently accepted set."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest

from autotts_gym.store import (
    MAX_BRANCH_TOKENS,
    ReplaySet,
    ReplayStore,
    StoreError,
    read_replay_set,
    write_replay_set,
)


@pytest.fixture(scope="module")
def small_set(synthetic_store) -> ReplaySet:
    rs = synthetic_store.load("Qwen3-4B", "aime24")
    return ReplaySet("Qwen3-4B", "aime24", rs.problems[:4], synthetic=True)


def _write(tmp_path, rs: ReplaySet, name: str = "s"):
    path = tmp_path / name / rs.model / f"{rs.benchmark}.h5"
    write_replay_set(path, rs)
    return path


def _with(rs: ReplaySet, problem: int, **changes) -> ReplaySet:
    probs = list(rs.problems)
    probs[problem] = dataclasses.replace(probs[problem], **changes)
    return ReplaySet(rs.model, rs.benchmark, probs, synthetic=True)


def _one_line_error(path, fn) -> str:
    with pytest.raises(StoreError) as e:
        fn()
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    return msg


def test_round_trip_is_unchanged_and_checksummed(tmp_path, small_set):
    path = _write(tmp_path, small_set)
    back = read_replay_set(path)
    for a, b in zip(small_set.problems, back.problems, strict=True):
        assert a.vocab == b.vocab and a.gold_id == b.gold_id
        for k in ("n_probes", "tokens", "final", "probe_offsets", "probe_answers"):
            assert np.array_equal(getattr(a, k), getattr(b, k))
    with h5py.File(path) as f:
        assert f["tokens"].fletcher32 and f["gold_id"].fletcher32


@pytest.mark.parametrize("change,dataset,words", [
    (lambda p: {"gold_id": len(p.vocab) + 5}, "gold_id", "outside the problem's vocabulary"),
    (lambda p: {"gold_id": -2}, "gold_id", "outside the problem's vocabulary"),
    (lambda p: {"gold_id": (p.gold_id + 1) % len(p.vocab)}, "gold_id",
     "does not name the gold answer"),
    (lambda p: {"tokens": np.where(np.arange(p.n_branches) == 7, -5, p.tokens)}, "tokens",
     f"must lie in 0..{MAX_BRANCH_TOKENS:,}"),
    (lambda p: {"tokens": p.tokens + 2**40}, "tokens", "must lie in 0.."),
    (lambda p: {"final": p.final + len(p.vocab)}, "final", "outside the problem's vocabulary"),
    (lambda p: {"probe_answers": -1 - p.probe_answers}, "probes",
     "outside the problem's vocabulary"),
    (lambda p: {"probe_freq": 0}, "probe_freq", "must lie in 1.."),
    (lambda p: {"n_probes": p.n_probes + 1}, "probe_offsets", "must run from 0 to"),
], ids=["gold-too-big", "gold-negative", "gold-wrong-answer", "tokens-negative",
        "tokens-huge", "final-out-of-vocab", "probe-out-of-vocab", "probe-freq-0",
        "n-probes-vs-offsets"])
def test_inconsistent_arrays_are_refused_naming_dataset_and_problem(
        tmp_path, small_set, change, dataset, words):
    bad = _with(small_set, 2, **change(small_set.problems[2]))
    path = _write(tmp_path, bad)
    msg = _one_line_error(path, lambda: ReplayStore(path.parents[1]).load("Qwen3-4B", "aime24"))
    assert f"dataset '{dataset}'" in msg and words in msg
    if "offsets" not in dataset:
        assert "(problem 2)" in msg


def test_shapes_are_checked(tmp_path, small_set):
    path = _write(tmp_path, small_set)
    with h5py.File(path, "a") as f:
        data = f["gold_id"][()]
        del f["gold_id"]
        f.create_dataset("gold_id", data=data[:-1])
    msg = _one_line_error(path, lambda: read_replay_set(path))
    assert "dataset 'gold_id' has 3 entries for 4 problems" in msg
    with h5py.File(path, "a") as f:
        del f["gold_id"]
        f.create_dataset("gold_id", data=np.zeros((2, 2), dtype=np.int32))
    assert "must be a 1-d integer array" in _one_line_error(path, lambda: read_replay_set(path))


def _chunk_offset(path, name: str) -> int:
    with h5py.File(path) as f:
        return f[name].id.get_chunk_info(0).byte_offset


@pytest.mark.parametrize("name", ["tokens", "final", "probes", "gold_id", "branch_offsets"])
def test_flipped_byte_in_data_fails_its_checksum(tmp_path, small_set, name):
    path = _write(tmp_path, small_set)
    off = _chunk_offset(path, name) + 3
    raw = bytearray(path.read_bytes())
    raw[off] ^= 0x5A
    path.write_bytes(bytes(raw))
    store = ReplayStore(path.parents[1])
    assert store.keys() == [("Qwen3-4B", "aime24")]  # listing the store still works
    msg = _one_line_error(path, lambda: store.load("Qwen3-4B", "aime24"))
    assert "corrupt or unreadable" in msg
    # and again on a later read: nothing half-loaded was cached
    _one_line_error(path, lambda: store.select())


def test_random_byte_flips_never_escape_as_other_errors(tmp_path, small_set):
    """Anywhere in the file, a flipped byte gives a StoreError naming the file or a set equal
    to the original (bytes HDF5 does not read, answer strings aside)."""
    path = _write(tmp_path, small_set)
    good = path.read_bytes()
    rng = np.random.default_rng(0)
    errors = 0
    for off in rng.choice(len(good), size=150, replace=False):
        raw = bytearray(good)
        raw[int(off)] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(raw))
        try:
            back = read_replay_set(path)
        except StoreError as e:
            assert str(path) in str(e) and "\n" not in str(e)
            errors += 1
            continue
        # read fine: numbers intact
        for a, b in zip(small_set.problems, back.problems, strict=True):
            assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.final, b.final)
            assert np.array_equal(a.probe_answers, b.probe_answers)
            assert a.gold_id == b.gold_id
    assert errors > 10


def test_cli_names_the_damaged_file(tmp_path, small_set, capsys):
    from autotts_cli.main import main

    path = _write(tmp_path, small_set)
    raw = bytearray(path.read_bytes())
    raw[_chunk_offset(path, "tokens") + 1] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert main(["data", "info", str(path.parents[1])]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("autotts data info: error: ") and str(path) in err
    assert "\n" not in err and "Traceback" not in err
