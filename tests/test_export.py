"""`autotts data export`: AutoTTS JSON that round-trips, Parquet for `datasets`, a card."""

from __future__ import annotations

import json

import pytest

from autotts_cli.main import main as cli
from autotts_gym.export import diff_replay_sets, export_sets, problem_to_json
from autotts_gym.importer import import_sources
from autotts_gym.store import ReplayStore


def _round_trip(store: ReplayStore, tmp_path) -> ReplayStore:
    export_sets(store.select(), tmp_path / "export", "autotts-json")
    import_sources(tmp_path / "export", tmp_path / "back")
    return ReplayStore(tmp_path / "back")


def test_round_trip_synthetic(synthetic_store, tmp_path):
    back = _round_trip(synthetic_store, tmp_path)
    assert back.keys() == synthetic_store.keys()
    for rs in synthetic_store.select():
        other = back.load(rs.model, rs.benchmark)
        assert diff_replay_sets(rs, other) == []
        assert other.synthetic  # the label survives
    # the export is the release's layout: the importer's own validation accepted it, and
    # it is exactly the JSON of the store
    rs = synthetic_store.select()[0]
    data = json.loads((tmp_path / "export" / rs.model / f"{rs.benchmark}.json").read_text())
    assert data == [problem_to_json(p) for p in rs.problems]
    assert set(data[0]) == {"question", "gold_answer", "probe_freq", "final_answers_trace",
                            "each_branch"}


def test_round_trip_real(real_store, tmp_path, replay_json_dir):
    back = _round_trip(real_store, tmp_path)
    assert back.keys() == real_store.keys()
    for rs in real_store.select():
        assert diff_replay_sets(rs, back.load(rs.model, rs.benchmark)) == []
    # and the exported JSON equals the release file it came from, problem by problem
    rs = real_store.load("Qwen3-4B", "hmmt25")
    original = json.loads((replay_json_dir / "Qwen3-4B" / "hmmt25.json").read_text())
    exported = json.loads((tmp_path / "export" / "Qwen3-4B" / "hmmt25.json").read_text())
    keys = ("question", "gold_answer", "probe_freq", "final_answers_trace", "each_branch")
    assert [{k: p[k] for k in keys} for p in original] == exported


def test_round_trip_keeps_normalizer_and_collect_settings(synthetic_store, tmp_path):
    rs = synthetic_store.select()[0]
    rs2 = type(rs)(rs.model, rs.benchmark, rs.problems, normalizer="math-verify",
                   extra_attrs={"collect_api": "chat", "interval": "500"})
    export_sets([rs2], tmp_path / "e", "autotts-json")
    import_sources(tmp_path / "e", tmp_path / "b")
    back = ReplayStore(tmp_path / "b").load(rs.model, rs.benchmark)
    assert diff_replay_sets(rs2, back) == []
    card = (tmp_path / "e" / "README.md").read_text()
    assert "math-verify" in card and rs.model in card and "chat" in card


def test_parquet_loads_with_datasets(synthetic_store, tmp_path):
    pytest.importorskip("pyarrow", reason="the export extra (pyarrow) is not installed")
    datasets = pytest.importorskip("datasets", reason="`datasets` is not installed")
    out = tmp_path / "pq"
    assert cli(["data", "export", str(synthetic_store.root), "--format", "parquet",
                "--out", str(out), "--models", "Qwen3-4B", "--benchmarks", "aime24"]) == 0
    files = str(out / "Qwen3-4B" / "aime24.parquet")
    ds = datasets.load_dataset("parquet", data_files=files, split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    rs = synthetic_store.load("Qwen3-4B", "aime24")
    assert len(ds) == sum(p.n_branches for p in rs.problems)
    p0 = rs.problems[0]
    row = ds[1]
    assert (row["problem"], row["branch"], row["question"]) == (0, 1, p0.question)
    assert row["probe_answers"] == [p0.vocab[a] for a in p0.branch_probes(1)]
    assert row["tokens"] == int(p0.tokens[1])
    assert row["correct"] == (int(p0.final[1]) == p0.gold_id)
    card = (out / "README.md").read_text()
    assert "data_files: Qwen3-4B/aime24.parquet" in card
    assert f"| Qwen3-4B | aime24 | {len(rs.problems)} | {len(ds):,} |" in card


def test_cli_export_and_info(synthetic_store, tmp_path, capsys):
    out = tmp_path / "json"
    assert cli(["data", "export", str(synthetic_store.root), "--out", str(out)]) == 0
    assert (out / "README.md").is_file() and (out / "autotts-export.json").is_file()
    assert cli(["data", "import", str(out), "--out", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    assert cli(["data", "info", str(tmp_path / "s")]) == 0
    assert "normalizer none" in capsys.readouterr().out
    assert cli(["data", "export", str(tmp_path / "nope"), "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err
