"""`collect` for chat reasoning models: `--api chat` continuing the assistant message,
`--chat-template` applied on the client through a transformers tokenizer, thinking blocks
closed before a probe, token counts from usage or `--tokenizer` only."""

from __future__ import annotations

import json
import re
import sys
import threading

import pytest
from conftest import REPO
from localhttp import JSONServer

from autotts_gym.collect.questions import Question
from autotts_gym.collect.runner import (
    DEFAULT_SUFFIX,
    ChatClient,
    CollectConfig,
    CollectError,
    CompletionsClient,
    collect,
)
from autotts_gym.store import ReplayStore

TOKEN = "§ "
THINK_CLOSE = "\n</think>\n\n"
# a small chat template in the style of ChatML reasoning models
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
            "{% if not (loop.last and m['role'] == 'assistant') %}<|end|>\n{% endif %}"
            "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def head(user: str) -> str:
    return f"<|user|>\n{user}<|end|>\n<|assistant|>\n"


def length(base: int) -> int:
    return 700 + base % 1900


def answer(base: int) -> str:
    return "\\frac{1}{2}" if base % 3 else "-1/2"


class ReasoningServer(JSONServer):
    """A reasoning model behind /v1/chat/completions (template applied by the server) or
    /v1/completions (template expected from the client). A trajectory opens ``<think>``,
    names its trajectory, writes ``length(base)`` tokens, closes it and boxes
    ``answer(base)``. Every request is checked: a continuation must carry exactly the text
    generated so far for its trajectory
    (a probe: such a text plus the thinking close and the suffix); violations are listed."""

    def __init__(self, chat: bool, usage: bool = True):
        self.chat, self.usage = chat, usage
        self.generated: dict[int, str] = {}
        self.prefixes: set[str] = set()
        self.violations: list[str] = []
        self.continuations = self.probes = 0
        self._lock = threading.Lock()
        super().__init__(self._respond)
        self.url = self.root + "/v1"

    def _prompt(self, body: dict) -> tuple[str, str]:
        """(user, assistant text so far), after checking the request's form."""
        if self.chat:
            msgs = body["messages"]
            user = msgs[0]["content"]
            if len(msgs) == 1:
                if body.get("continue_final_message"):
                    self.violations.append("continue_final_message without an assistant")
                return user, ""
            if not (body.get("continue_final_message") is True
                    and body.get("add_generation_prompt") is False):
                self.violations.append(f"continuation without the vLLM fields: {body}")
            return user, msgs[1]["content"]
        prompt = body["prompt"]
        user = prompt[len("<|user|>\n"):prompt.index("<|end|>")]
        if not prompt.startswith(head(user)):
            self.violations.append(f"prompt does not start with the template: {prompt[:60]!r}")
        return user, prompt[len(head(user)):]

    def _respond(self, path: str, body: dict, headers: dict) -> tuple[int, dict]:
        if path != ("/v1/chat/completions" if self.chat else "/v1/completions"):
            return 404, {"error": {"message": f"no route {path}"}}
        with self._lock:
            return 200, self._answer(body)

    def _answer(self, body: dict) -> dict:
        _user, assistant = self._prompt(body)
        done = assistant.count(TOKEN)
        if assistant.endswith(DEFAULT_SUFFIX):
            self.probes += 1
            prefix = assistant[: -len(DEFAULT_SUFFIX)]
            if prefix.endswith(THINK_CLOSE):
                prefix = prefix[: -len(THINK_CLOSE)]
            else:
                self.violations.append("a probe inside <think> did not close it")
            if prefix not in self.prefixes:
                self.violations.append(f"probe prefix was never generated: {prefix[-40:]!r}")
            text, used, finish = f"{10 + done // 500}}}", 2, "stop"
        else:
            base = int(body["seed"])
            if assistant:
                self.continuations += 1
                bases = [b for b, text in self.generated.items() if text == assistant]
                if not bases:
                    self.violations.append("a continuation's assistant text is not the "
                                           "text generated so far for any trajectory")
                    return {"object": "error", "choices": []}
                base = bases[0]
            total = length(base)
            used = min(int(body["max_tokens"]), total - done)
            text = (f"<think>\nT{base} " if not assistant else "") + TOKEN * used
            finish = "length"
            if done + used >= total:
                text += f"{THINK_CLOSE}So \\boxed{{{answer(base)}}}"
                finish = "stop"
            self.generated[base] = assistant + text
            self.prefixes.add(assistant + text)
        usage = {"prompt_tokens": 5, "completion_tokens": used, "total_tokens": used + 5}
        if self.chat:
            out = {"object": "chat.completion", "choices": [
                {"index": 0, "finish_reason": finish,
                 "message": {"role": "assistant", "content": text}}]}
        else:
            out = {"object": "text_completion", "choices": [
                {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]}
        out.update(id="x", created=0, model=body["model"])
        if self.usage:
            out["usage"] = usage
        return out


def _check_store(path, cfg, server, canon=lambda a: a):
    from autotts_gym.collect.runner import _seed

    rs = ReplayStore(path).load(cfg.model, cfg.benchmark)
    assert not server.violations, server.violations[:3]
    assert server.continuations > 0 and server.probes > 0
    for q, p in enumerate(rs.problems):
        for t in range(cfg.n):
            base = _seed(cfg, q, t)
            T = length(base)
            L = -(-T // 500) - 1
            assert p.tokens[t] == T and p.n_probes[t] == L
            assert [p.vocab[a] for a in p.branch_probes(t)] == [str(10 + k)
                                                                for k in range(1, L + 1)]
            assert p.vocab[p.final[t]] == canon(answer(base))
    return rs


@pytest.mark.parametrize("schedule", ["overlap", "sequential"])
def test_api_chat_continues_the_assistant_message(tmp_path, schedule):
    server = ReasoningServer(chat=True)
    qs = [Question("What is 1/2?", "1/2"), Question("And minus?", "-1/2")]
    cfg = CollectConfig(model="reasoner", benchmark="chat", n=4, concurrency=2, api="chat",
                        chat_template="server-side", schedule=schedule)
    try:
        client = ChatClient(server.url, cfg.model, max_inflight=3)
        collect(qs, client, tmp_path, cfg, progress=False, log=lambda *a: None)
    finally:
        server.close()
    rs = _check_store(tmp_path, cfg, server)
    assert client.peak_inflight <= 3
    assert rs.extra_attrs["collect_api"] == "chat"
    assert rs.extra_attrs["thinking"].startswith("close")
    assert rs.extra_attrs["probe_suffix"] == DEFAULT_SUFFIX


def _tokenizer_dir(tmp_path):
    """A tiny word-level tokenizer with the chat template, saved as a transformers folder."""
    pytest.importorskip("transformers", reason="the collect-template extra is not installed")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "§": 1, "So": 2}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # splits punctuation off too
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    fast.chat_template = TEMPLATE
    out = tmp_path / "tokenizer"
    fast.save_pretrained(out)
    return out


def test_client_side_chat_template_through_transformers(tmp_path):
    tok_dir = _tokenizer_dir(tmp_path)
    from autotts_gym.collect.template import ChatTemplate

    tmpl = ChatTemplate.load(str(tok_dir))
    assert tmpl.render("What is 1/2?") == head("What is 1/2?")
    server = ReasoningServer(chat=False)
    qs = [Question("What is 1/2?", "0.5")]
    cfg = CollectConfig(model="reasoner", benchmark="tmpl", n=3, concurrency=3,
                        chat_template=tmpl.describe(), normalize="math-verify")
    try:
        client = CompletionsClient(server.url, cfg.model, render=tmpl.render)
        collect(qs, client, tmp_path / "store", cfg, progress=False, log=lambda *a: None)
    finally:
        server.close()
    rs = _check_store(tmp_path / "store", cfg, server,
                      canon=lambda a: "0.5" if a == "\\frac{1}{2}" else a)
    assert rs.extra_attrs["chat_template"].startswith(str(tok_dir))
    assert rs.normalizer == "math-verify"
    # \frac{1}{2} merged with the gold 0.5 (its spelling); -1/2 stays apart
    p = rs.problems[0]
    assert p.gold_answer == "0.5" and "\\frac{1}{2}" not in p.vocab and "-1/2" in p.vocab


def test_no_usage_is_an_error_unless_a_tokenizer_counts(tmp_path):
    tok_dir = _tokenizer_dir(tmp_path)
    from autotts_gym.collect.template import TokenCounter

    qs = [Question("q", "1/2")]
    cfg = CollectConfig(model="m", benchmark="b", n=2, concurrency=2)
    server = ReasoningServer(chat=False, usage=False)
    try:
        client = CompletionsClient(server.url, "m", render=head)
        with pytest.raises(CollectError, match=r"no 'usage'.*--tokenizer"):
            collect(qs, client, tmp_path / "a", cfg, progress=False, log=lambda *a: None)
        counter = TokenCounter(str(tok_dir))
        server.generated.clear()
        client = CompletionsClient(server.url, "m", render=head, count_tokens=counter)
        collect(qs, client, tmp_path / "b", cfg, progress=False, log=lambda *a: None)
    finally:
        server.close()
    from autotts_gym.collect.runner import _seed

    p = ReplayStore(tmp_path / "b").load("m", "b").problems[0]
    for t in range(2):
        base = _seed(cfg, 0, t)
        text = (f"<think>\nT{base} " + TOKEN * length(base)
                + f"{THINK_CLOSE}So \\boxed{{{answer(base)}}}")
        assert p.tokens[t] == counter(text) != len(text.split(TOKEN)) - 1
        assert p.tokens[t] != len(text.split())  # never a word count


def test_cli_chat_flags_and_errors(tmp_path, capsys):
    import subprocess

    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"question": "What is 1/2?", "answer": "1/2"}) + "\n")
    server = ReasoningServer(chat=True)
    base = [sys.executable, "-m", "autotts_cli", "collect", "--base-url", server.url,
            "--model", "reasoner", "--questions", str(q), "--n", "2", "--no-progress"]
    try:
        r = subprocess.run([*base, "--out", str(tmp_path / "s"), "--api", "chat",
                            "--chat-template-kwargs", '{"enable_thinking": true}'],
                           check=False, capture_output=True, text=True, cwd=REPO, timeout=120)
        assert r.returncode == 0, r.stderr
        bad = subprocess.run([*base, "--out", str(tmp_path / "t"), "--api", "chat",
                              "--chat-template", "x"], check=False,
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    finally:
        server.close()
    assert not server.violations
    assert bad.returncode == 2 and "--api chat" in bad.stderr and "Traceback" not in bad.stderr
    from autotts_cli.main import main as cli

    rs = ReplayStore(tmp_path / "s").load("reasoner", "q")
    assert re.search(r"enable_thinking", rs.extra_attrs["chat_template"])
    capsys.readouterr()
    assert cli(["data", "info", str(tmp_path / "s")]) == 0
    info = capsys.readouterr().out
    assert "normalizer none" in info and "collect api 'chat'" in info
    assert "thinking \"close: a probe" in info and "enable_thinking" in info


class SplittingServer(ReasoningServer):
    """A server started with a reasoning parser: thinking moves to reasoning_content."""

    def _answer(self, body: dict) -> dict:
        out = super()._answer(body)
        msg = out["choices"][0]["message"]
        msg["reasoning_content"], msg["content"] = msg["content"], ""
        return out


def test_api_chat_refuses_a_split_reply(tmp_path):
    server = SplittingServer(chat=True)
    cfg = CollectConfig(model="m", benchmark="b", n=1, concurrency=1, api="chat")
    try:
        with pytest.raises(CollectError, match="reasoning_content"):
            collect([Question("q", "1")], ChatClient(server.url, "m", max_retries=0),
                    tmp_path, cfg, progress=False, log=lambda *a: None)
    finally:
        server.close()
    assert not (tmp_path / "m" / "b.h5").exists()
