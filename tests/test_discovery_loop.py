"""The discovery loop: anthropic SDK against a local server, resume after kill, modules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from localhttp import JSONServer

from autotts_discovery.codecheck import check_code, check_reply, extract_code
from autotts_discovery.explorer import START, AnthropicExplorer, OfflineExplorer, render
from autotts_discovery.history import History
from autotts_discovery.loop import (
    DiscoveryError,
    LoopConfig,
    accept,
    best_round,
    report,
    require_success,
    run_loop,
)
from autotts_discovery.pricing import PriceTable
from autotts_discovery.prompt import build_prompt
from autotts_discovery.sandbox import Limits
from autotts_gym.protocol import Split

GOOD = "Here it is.\n```python\n" + render(START) + "```\n"


class MessagesServer(JSONServer):
    """Answers like the Messages API from a script of (status, text) replies."""

    def __init__(self, script: list[tuple[int, str]]):
        self.script = list(script)
        self.requests: list[dict] = []
        super().__init__(self._respond)
        self.url = self.root

    def _respond(self, path: str, body: dict, headers: dict) -> tuple[int, dict]:
        lower = {k.lower(): v for k, v in headers.items()}
        self.requests.append({"path": path, "body": body,
                              "key": lower.get("x-api-key") or lower.get("authorization", "")})
        status, text = self.script.pop(0)
        if status != 200:
            kind = "rate_limit_error" if status == 429 else "api_error"
            return status, {"type": "error", "error": {"type": kind, "message": text}}
        return 200, {"id": "msg_test", "type": "message", "role": "assistant",
                     "model": body["model"], "stop_reason": "end_turn", "stop_sequence": None,
                     "content": [{"type": "text", "text": text}],
                     "usage": {"input_tokens": 1000, "output_tokens": 500}}


def test_anthropic_loop_records_each_case(tmp_path, synthetic_store):
    server = MessagesServer([
        (200, GOOD),                                          # round 1: a normal reply
        (429, "slow down"), (200, GOOD),                      # round 2: 429, then success
        (200, "I would rather explain in prose."),            # round 3: no code block
        (200, "```python\ndef make_controller(beta:\n```"),   # round 4: does not parse
        (500, "boom"), (500, "boom"), (500, "boom"),          # round 5: 5xx past retries
    ])
    try:
        explorer = AnthropicExplorer("claude-sonnet-4-test", api_key="test-key",
                                     base_url=server.url, max_retries=2, timeout=10)
        cfg = LoopConfig(rounds=5, models=["Qwen3-4B"], seeds=[0], betas=[0.5],
                         explorer="anthropic", model="claude-sonnet-4-test")
        history = run_loop(explorer, synthetic_store, tmp_path / "run", cfg,
                           limits=Limits(wall_seconds=60), log=lambda *a: None)
    finally:
        server.close()
    kinds = [r["record.json"]["kind"] for r in history.rounds()]
    assert kinds == ["ok", "ok", "no_code", "syntax", "api_error"]
    assert len(server.requests) == 8 and server.requests[0]["path"] == "/v1/messages"
    assert server.requests[0]["key"] in ("test-key", "Bearer test-key")
    cost = history.load(1)["cost.json"]
    assert cost["input_tokens"] == 1000 and cost["output_tokens"] == 500
    assert cost["usd"] == pytest.approx((1000 * 3.0 + 500 * 15.0) / 1e6)
    for r in history.rounds():
        assert "aime25" not in r["prompt.md"] and "hmmt25" not in r["prompt.md"]
    assert "Round 1" in history.load(2)["prompt.md"]  # history goes into the next prompt


def test_budget_stops_the_loop(tmp_path, synthetic_store):
    server = MessagesServer([(200, GOOD)] * 3)
    try:
        explorer = AnthropicExplorer("claude-opus-4", api_key="k", base_url=server.url)
        cfg = LoopConfig(rounds=3, models=["Qwen3-4B"], seeds=[0], betas=[0.5],
                         max_usd=0.05)
        history = run_loop(explorer, synthetic_store, tmp_path / "run", cfg,
                           log=lambda *a: None)
    finally:
        server.close()
    # one call costs 1000*15/1e6 + 500*75/1e6 = $0.0525 >= $0.05: one round, then stop
    assert history.indices() == [1]
    assert json.loads((tmp_path / "run" / "state.json").read_text())["status"] == \
        "budget_reached"


def test_loop_survives_hostile_proposals(tmp_path, synthetic_store):
    hostile = [
        "import os\nos.system('id')\ndef make_controller(b):\n    return None\n",
        ("class C:\n    def solve(self, s):\n        while True:\n            pass\n"
         "def make_controller(b):\n    return C()\n"),
        ("class C:\n    def solve(self, s):\n        return 5\n"
         "def make_controller(b):\n    return C()\n"),
    ]

    class Scripted:
        model = "offline"

        def propose(self, prompt, history):
            from autotts_discovery.explorer import Proposal

            return Proposal(f"```python\n{hostile[len(history)]}```", 0, 0, "offline")

    cfg = LoopConfig(rounds=3, models=["Qwen3-4B"], seeds=[0], betas=[0.5])
    history = run_loop(Scripted(), synthetic_store, tmp_path / "run", cfg,
                       limits=Limits(cpu_seconds=3, reply_seconds=3, wall_seconds=20),
                       log=lambda *a: None)
    with pytest.raises(DiscoveryError, match="no round produced a working controller"):
        require_success(history)
    kinds = [r["record.json"]["kind"] for r in History(tmp_path / "run").rounds()]
    assert kinds == ["rejected", "timeout", "bad_return"]
    assert History(tmp_path / "run").state()["status"] == "failed"


def test_kill_mid_round_and_resume(tmp_path, synthetic_store_dir, synthetic_store):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "autotts_cli.main", "discover", "--explorer", "offline",
           "--rounds", "4", "--out", str(run), "--replay-dir", str(synthetic_store_dir),
           "--models", "Qwen3-4B", "--seeds", "0-1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while not (run / "rounds" / "r0001").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # inside round 2
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = History(run).indices()
    assert 1 <= len(done) < 4
    first = (run / "rounds" / "r0001" / "controller.py").stat().st_mtime_ns
    subprocess.run([*cmd, "--resume"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=300)
    h = History(run)
    assert h.indices() == [1, 2, 3, 4]
    assert not list((run / "rounds").glob(".r*"))  # no half-written round left
    assert (run / "rounds" / "r0001" / "controller.py").stat().st_mtime_ns == first
    assert all("results.json" in r for r in h.rounds())
    assert best_round(h) is not None
    summary = report(run, synthetic_store, tmp_path / "report", seeds=[0], betas=(0.5,))
    text = summary.read_text()
    best = best_round(h).index
    assert f"discovered r{best:04d}" in text and "SC@64" in text and "CMC" in text
    assert "aime25" in text and "hmmt25" in text and "aime24" not in text  # held out only
    assert (tmp_path / "report" / "frontier.png").is_file()
    dest = accept(run, 2, dest=tmp_path / "discovered", name="found")
    assert "round 2" in dest.read_text().splitlines()[0]
    meta = json.loads((tmp_path / "discovered" / "found.json").read_text())
    assert meta["round"] == 2 and len(meta["sha256"]) == 64


def test_code_check():
    assert extract_code("no code here") is None
    assert check_reply("text\n```python\nx = (\n```").kind == "syntax"
    assert check_reply(GOOD).ok
    bad = check_code("import os\nclass C: pass\ndef make_controller(b):\n"
                     "    return C().__class__.__subclasses__()\n")
    assert bad.kind == "rejected" and "'os'" in bad.message and "__subclasses__" in bad.message
    assert "make_controller" in check_code("x = 1\n").message
    assert "'open'" in check_code("def make_controller(b):\n    return open('/x')\n").message


def test_pricing_table(tmp_path):
    t = PriceTable()
    assert t.cost("claude-sonnet-4-5-20250929", 1_000_000, 0) == 3.0
    with pytest.raises(ValueError, match="no price"):
        t.cost("gpt-unknown", 1, 1)
    f = tmp_path / "p.yaml"
    f.write_text("my-model: [1.5, 2]\n")
    assert PriceTable.load(f).cost("my-model", 2_000_000, 1_000_000) == 5.0
    f.write_text("my-model: [-1, 2]\n")
    with pytest.raises(ValueError, match="my-model"):
        PriceTable.load(f)


def test_history_writes_whole_rounds(tmp_path):
    h = History(tmp_path)
    h.write_round(1, {"a.txt": "x", "b.json": {"k": 1}})

    class Boom:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        h.write_round(2, {"a.txt": "y", "b.json": Boom()})
    assert h.indices() == [1] and not list((tmp_path / "rounds").glob(".r*"))
    with pytest.raises(FileExistsError):
        h.write_round(1, {"a.txt": "z"})
    assert h.load(1)["b.json"] == {"k": 1}


def test_offline_explorer_mutates_the_best():
    ex = OfflineExplorer(seed=3)
    first = ex.propose("", [])
    assert check_reply(first.text).ok
    hist = [{"record.json": {"kind": "ok"}, "results.json": {"score": 0.5},
             "controller.py": extract_code(first.text)}]
    second = ex.propose("", hist)
    assert check_reply(second.text).ok and second.text != first.text
    assert ex.propose("", hist).text == second.text  # deterministic
    assert "Earlier rounds" in build_prompt([], Split(("aime24",), ("aime25",)))


def _round_files(k: int, correct: list[bool], tokens: list[float]) -> dict:
    from autotts_gym.harness import EpisodeRecord
    from autotts_gym.protocol import mean_objective
    from autotts_gym.report import records_jsonl

    recs = [EpisodeRecord("m", "b", p, 0, 0.5, f"r{k:04d}", "1", c, t, 1)
            for p, (c, t) in enumerate(zip(correct, tokens, strict=True))]
    return {"record.json": {"round": k, "kind": "ok", "message": ""},
            "results.json": {"score": mean_objective(recs), "per_beta": []},
            "controller.py": "def make_controller(beta):\n    return None\n",
            "records.jsonl": records_jsonl(recs)}


def test_best_round_breaks_ties_within_noise_toward_fewer_tokens(tmp_path):
    """Round 1 is right on one more problem of 30 (inside the noise) but spends three times
    the tokens; round 3 is worse beyond noise. The cheaper round 2 is chosen, and the
    selection table is what a report writes."""
    from autotts_discovery.rounds import selection

    h = History(tmp_path / "run")
    base = [p % 2 == 0 for p in range(30)]
    h.write_round(1, _round_files(1, [*base[:1], True, *base[2:]], [60_000.0] * 30))
    h.write_round(2, _round_files(2, base, [20_000.0] * 30))
    h.write_round(3, _round_files(3, [False] * 30, [1_000.0] * 30))
    rounds = h.typed()
    assert max(rounds, key=lambda r: r.score).index == 1  # the raw score says round 1
    assert best_round(h).index == 2
    sel = selection(rounds)
    assert sel is not None and sel.top == "r0001" and sel.best == "r0002"
    assert not sel["r0003"].within_noise
    # without kept records (older runs) the raw score decides
    legacy = History(tmp_path / "legacy")
    for k in (1, 2):
        files = _round_files(k, [*base[:1], True, *base[2:]] if k == 1 else base, [1.0] * 30)
        del files["records.jsonl"]
        legacy.write_round(k, files)
    assert best_round(legacy).index == 1
