"""The JSON importer: every malformed input is named precisely; imports are atomic and
idempotent; the store reproduces its JSON exactly (JSON written from the bundled synthetic
store, and the real release where it is found)."""

from __future__ import annotations

import copy
import json
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import autotts_gym.store as store_mod
from autotts_cli.main import main as cli_main
from autotts_gym.importer import import_sources, parse_autotts_json
from autotts_gym.store import ReplayStore, StoreError

MODEL, BENCH = "Qwen3-0.6B", "aime24"


@pytest.fixture(scope="module")
def small_real(synthetic_json_dir) -> list[dict]:
    """The first 3 problems of a file, 6 branches each (the release's JSON schema)."""
    raw = json.loads((synthetic_json_dir / MODEL / f"{BENCH}.json").read_text())[:3]
    for p in raw:
        p["each_branch"] = p["each_branch"][:6]
        p["final_answers_trace"] = p["final_answers_trace"][:6]
    return raw


def _write(tmp_path: Path, data, name: str = "bad.json") -> Path:
    path = tmp_path / "src" / MODEL / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _mutated(small_real, fn) -> list[dict]:
    data = copy.deepcopy(small_real)
    fn(data)
    return data


def _del(d: dict, k: str) -> None:
    del d[k]


def _set_branch(p: dict, j: int, k: int, v) -> None:
    p["each_branch"][j] = list(p["each_branch"][j])
    p["each_branch"][j][k] = v


def _set_branch_tokens(data: list[dict]) -> None:
    _set_branch(data[1], 2, 1, "4000")


def _set_negative_tokens(data: list[dict]) -> None:
    _set_branch(data[1], 3, 1, -5)


def _set_final_mismatch(data: list[dict]) -> None:
    data[2]["final_answers_trace"][4] = "not-the-final"


def _set_probe_non_string(data: list[dict]) -> None:
    data[1]["each_branch"][5][0][1] = 17


def _set_empty_probes(data: list[dict]) -> None:
    _set_branch(data[0], 1, 0, [])


def _set_not_triple(data: list[dict]) -> None:
    data[2]["each_branch"][0] = data[2]["each_branch"][0][:2]


def _set_probes_type(data: list[dict]) -> None:
    _set_branch(data[1], 0, 0, "204")


def _set_final_type(data: list[dict]) -> None:
    _set_branch(data[2], 3, 2, 204)


# (mutation, problem, branch or None, field, words of the message)
CASES = [
    (lambda d: _del(d[1], "probe_freq"), 1, None, "probe_freq", "missing"),
    (lambda d: _del(d[2], "gold_answer"), 2, None, "gold_answer", "missing"),
    (lambda d: _del(d[0], "each_branch"), 0, None, "each_branch", "missing"),
    (lambda d: d[1].update(gold_answer=204), 1, None, "gold_answer", "must be a string"),
    (lambda d: d[0].update(question=None), 0, None, "question", "must be a string"),
    (lambda d: d[2].update(probe_freq="500"), 2, None, "probe_freq", "must be an integer"),
    (lambda d: d[2].update(probe_freq=True), 2, None, "probe_freq", "must be an integer"),
    (lambda d: d[1].update(probe_freq=0), 1, None, "probe_freq", "must be > 0"),
    (lambda d: d[0].update(probe_freq=-500), 0, None, "probe_freq", "must be > 0"),
    (lambda d: d[1].update(each_branch=[], final_answers_trace=[]), 1, None, "each_branch",
     "empty branch list"),
    (lambda d: d[0].update(each_branch={}), 0, None, "each_branch", "must be a list"),
    (lambda d: d[2].update(final_answers_trace="204"), 2, None, "final_answers_trace",
     "must be a list"),
    (lambda d: d[1]["final_answers_trace"].pop(), 1, None, "final_answers_trace",
     "5 entries"),
    (_set_branch_tokens, 1, 2, "branch_tokens", "must be an integer"),
    (_set_negative_tokens, 1, 3, "branch_tokens", "negative (-5)"),
    (_set_final_mismatch, 2, 4, "final_answer", "differs from 'final_answers_trace'[4]"),
    (_set_probe_non_string, 1, 5, "probe_answers", "element 1 must be a string"),
    (_set_empty_probes, 0, 1, "probe_answers", "empty"),
    (_set_probes_type, 1, 0, "probe_answers", "must be a list"),
    (_set_final_type, 2, 3, "final_answer", "must be a string"),
    (_set_not_triple, 2, 0, "each_branch", "triple"),
]


@pytest.mark.parametrize("mutate,problem,branch,field,words", CASES,
                         ids=[f"{c[3]}-{c[4][:20]}" for c in CASES])
def test_each_malformed_input_names_file_problem_branch_field(
        tmp_path, small_real, mutate, problem, branch, field, words):
    path = _write(tmp_path, _mutated(small_real, mutate))
    with pytest.raises(StoreError) as e:
        parse_autotts_json(path, MODEL, BENCH)
    msg = str(e.value)
    assert str(path) in msg
    assert f"problem {problem}" in msg
    if branch is None:
        assert "branch" not in msg.split(f"problem {problem}")[1].split(":")[0]
    else:
        assert f"problem {problem}, branch {branch}:" in msg
    assert f"'{field}'" in msg
    assert words in msg


def test_truncated_json_names_file_and_position(tmp_path, synthetic_json_dir):
    raw = (synthetic_json_dir / MODEL / f"{BENCH}.json").read_text()
    path = _write(tmp_path, raw[: len(raw) // 2])
    with pytest.raises(StoreError) as e:
        parse_autotts_json(path, MODEL, BENCH)
    assert str(path) in str(e.value)
    assert "not valid JSON (truncated or corrupt)" in str(e.value)
    assert f"char {len(raw) // 2}" in str(e.value) or "line 1" in str(e.value)


@pytest.mark.parametrize("data,words", [
    ({"question": "x"}, "top level must be a list of problems, got dict"),
    ([], "the list of problems is empty"),
    ([["not", "an", "object"]], "problem 0: must be an object, got list"),
])
def test_top_level_shape_errors(tmp_path, data, words):
    path = _write(tmp_path, data)
    with pytest.raises(StoreError, match=words):
        parse_autotts_json(path, MODEL, BENCH)


def test_cli_import_bad_input_exits_nonzero_and_writes_nothing(tmp_path, small_real, capsys):
    good = _write(tmp_path, small_real, "aime24.json")
    bad = _write(tmp_path, _mutated(small_real, _set_negative_tokens), "aime25.json")
    out = tmp_path / "store"
    rc = cli_main(["data", "import", str(good.parent.parent), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc != 0
    assert f"{bad}: problem 1, branch 3: field 'branch_tokens' is negative (-5)" in err
    # the good file was validated too, but nothing is written when any source is bad
    assert not out.exists() or not list(out.rglob("*"))


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*")
            if p.name.endswith((".tmp", ".staged")) or p.name.startswith(".import-")]


def test_interrupted_import_leaves_no_partial_store(tmp_path, synthetic_json_dir, monkeypatch):
    out = tmp_path / "store"
    import_sources(synthetic_json_dir / MODEL / f"{BENCH}.json", out)
    old = out / MODEL / f"{BENCH}.h5"
    old_bytes, old_stat = old.read_bytes(), old.stat()

    calls = {"n": 0}
    real_dataset = store_mod._dataset

    def failing(f, name, *a, **k):  # dies in the middle of the third file
        calls["n"] += 1
        if calls["n"] == 2 * 12 + 5:
            raise KeyboardInterrupt("simulated interrupt")
        return real_dataset(f, name, *a, **k)

    monkeypatch.setattr(store_mod, "_dataset", failing)
    with pytest.raises(KeyboardInterrupt):
        import_sources(synthetic_json_dir, out, force=True)
    assert calls["n"] == 29
    assert sorted(out.rglob("*.h5")) == [old]
    assert old.read_bytes() == old_bytes and old.stat().st_mtime_ns == old_stat.st_mtime_ns
    assert _leftovers(out) == []
    assert [rs.key for rs in ReplayStore(out)] == [(MODEL, BENCH)]


def test_import_killed_by_sigint_leaves_no_partial_store(tmp_path, synthetic_json_dir):
    out = tmp_path / "store"
    script = textwrap.dedent(f"""
        import sys, time
        import autotts_gym.store as s
        from autotts_gym.importer import import_sources
        real = s._dataset
        def slow(*a, **k):
            print("writing", flush=True)
            time.sleep(0.05)
            return real(*a, **k)
        s._dataset = slow
        import_sources({str(synthetic_json_dir)!r}, {str(out)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for seen, _line in enumerate(proc.stdout, 1):  # wait until inside the second file
        if seen == 12 + 6:
            proc.send_signal(signal.SIGINT)
            break
    proc.stdout.close()
    assert proc.wait(timeout=60) != 0
    assert list(out.rglob("*.h5")) == []
    assert _leftovers(out) == []


def test_reimport_is_a_noop(tmp_path, synthetic_json_dir):
    out = tmp_path / "store"
    first = import_sources(synthetic_json_dir / "Qwen3-4B", out)
    assert [r.skipped for r in first] == [False, False, False]
    stats = {r.path: (r.path.stat().st_mtime_ns, r.path.stat().st_ino) for r in first}
    again = import_sources(synthetic_json_dir / "Qwen3-4B", out)
    assert [r.skipped for r in again] == [True, True, True]
    assert {r.path: (r.path.stat().st_mtime_ns, r.path.stat().st_ino) for r in again} == stats
    forced = import_sources(synthetic_json_dir / "Qwen3-4B" / "aime24.json", out, force=True)
    assert not forced[0].skipped
    assert forced[0].path.stat().st_ino != stats[forced[0].path][1]


def _check_round_trip(store: ReplayStore, json_dir: Path) -> None:
    files = sorted(json_dir.glob("*/*.json"))
    assert len(files) == 9
    for f in files:
        raw = json.loads(f.read_text())
        rs = store.load(f.parent.name, f.stem)
        assert len(rs.problems) == len(raw)
        assert rs.source_file == str(f) and not rs.synthetic
        for p, q in zip(rs.problems, raw, strict=True):
            assert (p.question, p.gold_answer, p.probe_freq) == (
                q["question"], q["gold_answer"], q["probe_freq"])
            assert p.gold_id == (p.vocab.index(q["gold_answer"])
                                 if q["gold_answer"] in p.vocab else -1)
            v = p.vocab
            got = [[[v[a] for a in p.branch_probes(b)], int(p.tokens[b]), v[p.final[b]]]
                   for b in range(p.n_branches)]
            assert got == q["each_branch"]
            assert [v[a] for a in p.final] == q["final_answers_trace"]


def test_store_round_trip_reproduces_all_json(tmp_path, synthetic_json_dir):
    out = tmp_path / "store"
    import_sources(synthetic_json_dir, out)
    _check_round_trip(ReplayStore(out), synthetic_json_dir)


def test_store_round_trip_reproduces_all_real_json(real_store, replay_json_dir):
    _check_round_trip(real_store, replay_json_dir)


def test_store_records_source_sha256_as_published(real_store, replay_json_dir):
    readme = (replay_json_dir.parent / "README.md").read_text()
    published = {
        m.group(2): m.group(1)
        for m in re.finditer(r"^([0-9a-f]{64})\s+(\S+\.json)$", readme, re.MULTILINE)
    }
    assert len(published) == 9
    for rs in real_store:
        assert rs.source_sha256 == published[f"{rs.model}/{rs.benchmark}.json"]
