"""`--explorer openai`: the real openai client against a local chat-completions server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO
from localhttp import JSONServer

from autotts_discovery.explorer import START, OpenAIExplorer, render
from autotts_discovery.loop import LoopConfig, run_loop
from autotts_discovery.pricing import PriceTable
from autotts_discovery.sandbox import Limits

GOOD = "Here it is.\n```python\n" + render(START) + "```\n"
TWO_BLOCKS = ("First a helper:\n```python\nx = 1\n```\nand the controller:\n```python\n"
              + render(START) + "```\n")


class ChatServer(JSONServer):
    """Answers /v1/chat/completions from a script of (status, text) replies."""

    def __init__(self, script: list[tuple[int, str]]):
        self.script = list(script)
        self.requests: list[dict] = []
        super().__init__(self._respond)
        self.url = self.root + "/v1"

    def _respond(self, path: str, body: dict, headers: dict) -> tuple[int, dict]:
        lower = {k.lower(): v for k, v in headers.items()}
        self.requests.append({"path": path, "body": body, "auth": lower.get("authorization")})
        status, text = self.script.pop(0)
        if status != 200:
            return status, {"error": {"message": text, "type": "server_error"}}
        return 200, {"id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                     "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": text}}],
                     "usage": {"prompt_tokens": 1200, "completion_tokens": 300,
                               "total_tokens": 1500}}


def test_openai_loop_records_each_case(tmp_path, synthetic_store, monkeypatch):
    server = ChatServer([
        (200, GOOD),                                   # round 1: a normal reply
        (429, "slow down"), (200, GOOD),               # round 2: 429, then success
        (200, "I would rather explain in prose."),     # round 3: no code block
        (200, TWO_BLOCKS),                             # round 4: two blocks, longest taken
        (500, "boom"), (500, "boom"), (500, "boom"),   # round 5: 5xx past the retries
    ])
    monkeypatch.setenv("TEST_EXPLORER_KEY", "sk-local")
    logs: list[str] = []
    try:
        explorer = OpenAIExplorer("my-local-model", server.url, api_key_env="TEST_EXPLORER_KEY",
                                  temperature=0.3, max_tokens=999, max_retries=2, timeout=10)
        cfg = LoopConfig(rounds=5, models=["Qwen3-4B"], seeds=[0], betas=[0.5],
                         explorer="openai", model="my-local-model")
        history = run_loop(explorer, synthetic_store, tmp_path / "run", cfg,
                           limits=Limits(wall_seconds=60), log=logs.append)
    finally:
        server.close()
    kinds = [r["record.json"]["kind"] for r in history.rounds()]
    assert kinds == ["ok", "ok", "no_code", "ok", "api_error"]
    assert "500" in history.load(5)["record.json"]["message"]
    assert len(server.requests) == 8
    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-local"
    assert first["body"]["temperature"] == 0.3 and first["body"]["max_tokens"] == 999
    assert [m["role"] for m in first["body"]["messages"]] == ["system", "user"]
    assert first["body"]["messages"][1]["content"] == history.load(1)["prompt.md"]
    assert history.load(4)["controller.py"].strip() == render(START).strip()
    cost = history.load(1)["cost.json"]
    assert (cost["input_tokens"], cost["output_tokens"], cost["usd"]) == (1200, 300, None)
    assert sum("tokens only" in line for line in logs) == 1  # said once, not per round


def test_openai_cost_in_dollars_when_priced(tmp_path, synthetic_store):
    server = ChatServer([(200, "no code")])
    try:
        explorer = OpenAIExplorer("gpt-test-1", server.url)
        cfg = LoopConfig(rounds=1, models=["Qwen3-4B"], seeds=[0], betas=[0.5],
                         explorer="openai", model="gpt-test-1")
        history = run_loop(explorer, synthetic_store, tmp_path / "run", cfg,
                           prices=PriceTable({"gpt-test": (2.0, 8.0)}), log=lambda *a: None)
    finally:
        server.close()
    assert server.requests[0]["auth"] == "Bearer EMPTY"  # no key needed for a local server
    assert history.load(1)["cost.json"]["usd"] == pytest.approx((1200 * 2 + 300 * 8) / 1e6)


def _discover(*flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autotts_cli", "discover", *flags],
                          check=False, capture_output=True, text=True, cwd=REPO,
                          timeout=120, env=env)


def test_missing_key_is_a_one_line_error(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_KEY_VAR"}
    r = _discover("--explorer", "openai", "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
                  "--api-key-env", "NO_SUCH_KEY_VAR", "--rounds", "1", "--out",
                  str(tmp_path / "run"), env=env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert "NO_SUCH_KEY_VAR" in lines[-1] and "Traceback" not in r.stderr
    r = _discover("--explorer", "openai", "--model", "m", "--rounds", "1",
                  "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "--base-url" in r.stderr
    assert not (tmp_path / "run").exists()


def test_cli_openai_run_writes_rounds(tmp_path, synthetic_store_dir):
    server = ChatServer([(200, GOOD)])
    try:
        r = _discover("--explorer", "openai", "--model", "local", "--base-url", server.url,
                      "--rounds", "1", "--models", "Qwen3-4B", "--seeds", "0",
                      "--betas", "0.5", "--out", str(tmp_path / "run"),
                      "--replay-dir", str(synthetic_store_dir))
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    record = json.loads((tmp_path / "run" / "rounds" / "r0001" / "record.json").read_text())
    assert record["kind"] == "ok"
