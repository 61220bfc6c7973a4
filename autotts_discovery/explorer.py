"""Explorers propose controller code: an LLM through the anthropic SDK or any
OpenAI-compatible chat server, or an offline mutation search over a parameterized
controller template (no API key needed)."""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass
from typing import Protocol

from autotts_gym.errors import AutoTTSError

SYSTEM = ("You are an expert in test-time scaling of reasoning language models. You write "
          "compact, correct Python controllers against the given contract.")


@dataclass(frozen=True)
class Proposal:
    text: str
    input_tokens: int
    output_tokens: int
    model: str


class ExplorerError(AutoTTSError, RuntimeError):
    """The explorer could not produce a reply (after its retries)."""


class Explorer(Protocol):
    model: str

    def propose(self, prompt: str, history: list[dict]) -> Proposal: ...


class AnthropicExplorer:
    """Claude through the Messages API. The SDK retries 429 and 5xx answers with
    exponential backoff (``max_retries``) and enforces ``timeout`` per request."""

    def __init__(self, model: str, api_key: str | None = None, base_url: str | None = None,
                 max_tokens: int = 4000, timeout: float = 120.0, max_retries: int = 4):
        import anthropic

        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ExplorerError("no API key: set ANTHROPIC_API_KEY or use --explorer offline")
        self.model = model
        self.max_tokens = max_tokens
        self._anthropic = anthropic
        self.client = anthropic.Anthropic(api_key=key, base_url=base_url, timeout=timeout,
                                          max_retries=max_retries)

    def propose(self, prompt: str, history: list[dict]) -> Proposal:
        try:
            resp = self.client.messages.create(
                model=self.model, max_tokens=self.max_tokens, system=SYSTEM,
                messages=[{"role": "user", "content": prompt}])
        except self._anthropic.APIStatusError as e:
            raise ExplorerError(f"Messages API answered {e.status_code}: {e.message}") from e
        except self._anthropic.APIError as e:
            raise ExplorerError(f"Messages API call failed: {type(e).__name__}: {e}") from e
        text = "".join(getattr(b, "text", "") for b in resp.content
                       if getattr(b, "type", "") == "text")
        return Proposal(text, int(resp.usage.input_tokens), int(resp.usage.output_tokens),
                        self.model)


class OpenAIExplorer:
    """Any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp's server,
    Ollama, a hosted provider) through the ``openai`` client. The client retries 429 and
    5xx answers with exponential backoff (``max_retries``) and enforces ``timeout``. The key
    comes from the environment variable ``api_key_env``; local servers need none."""

    def __init__(self, model: str, base_url: str, api_key_env: str | None = None,
                 temperature: float | None = None, max_tokens: int = 4000,
                 timeout: float = 120.0, max_retries: int = 4):
        import openai

        key = "EMPTY"  # local servers ignore it; the client requires a string
        if api_key_env:
            key = os.environ.get(api_key_env, "")
            if not key:
                raise ExplorerError(f"no API key: environment variable {api_key_env} is not "
                                    "set (a local server needs no --api-key-env)")
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._openai = openai
        self.client = openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout,
                                    max_retries=max_retries)

    def propose(self, prompt: str, history: list[dict]) -> Proposal:
        extra = {} if self.temperature is None else {"temperature": self.temperature}
        try:
            resp = self.client.chat.completions.create(
                model=self.model, max_tokens=self.max_tokens,
                messages=[{"role": "system", "content": SYSTEM},
                          {"role": "user", "content": prompt}], **extra)
        except self._openai.APIStatusError as e:
            raise ExplorerError(f"chat completions answered {e.status_code}: {e.message}") from e
        except self._openai.APIError as e:
            raise ExplorerError(f"chat completions call failed: {type(e).__name__}: {e}") from e
        if not resp.choices:
            raise ExplorerError("chat completions answered with no choices")
        text = resp.choices[0].message.content or ""
        usage = resp.usage
        return Proposal(text, int(getattr(usage, "prompt_tokens", 0) or 0),
                        int(getattr(usage, "completion_tokens", 0) or 0), self.model)


# ----------------------------------------------------------------------------- offline

TEMPLATE = '''\
"""Offline-explorer controller: widen while finished branches disagree, deepen the
leading branches faster, stop once the beta-majority confidence is high enough."""
# PARAMS: {params}
from autotts_gym.voting import vote


class Controller:
    def __init__(self, beta):
        b = min(1.0, max(0.0, beta))
        self.width = max(2, round({w0} + {w1} * b))
        self.start = max(1, min(self.width, round({s0} + {s1} * b)))
        self.confidence = min(0.999, {c0} + {c1} * b)
        self.min_finished = max(1, round({m0} + {m1} * b))
        self.burst = max(1, round({u0} + {u1} * b))

    def solve(self, session):
        finals, live, latest = [], [], {{}}
        for _ in range(self.start):
            opened = session.open()
            if opened is None:
                break
            answer, branch, finished = opened
            (finals.append(answer) if finished else live.append(branch))
            latest[branch] = answer
        while live:
            leader, _ = vote(list(latest.values()))
            for branch in list(live):
                steps = self.burst if latest[branch] == leader else 1
                for _ in range(steps):
                    answer, finished = session.advance(branch)
                    latest[branch] = answer
                    if finished:
                        finals.append(answer)
                        live.remove(branch)
                        break
            winner, conf = vote(finals)
            if len(finals) >= self.min_finished and conf >= self.confidence:
                return winner
            if session.n_opened < self.width and len(live) < 2 + self.start // 2:
                opened = session.open()
                if opened is not None:
                    answer, branch, finished = opened
                    (finals.append(answer) if finished else live.append(branch))
                    latest[branch] = answer
        winner, _ = vote(finals)
        return winner if winner is not None else vote(list(latest.values()))[0]


def make_controller(beta):
    return Controller(beta)
'''

START = {"w0": 3.0, "w1": 30.0, "s0": 2.0, "s1": 4.0, "c0": 0.8, "c1": 0.15,
         "m0": 2.0, "m1": 3.0, "u0": 1.0, "u1": 2.0}
SCALE = {"w0": 1.0, "w1": 8.0, "s0": 1.0, "s1": 2.0, "c0": 0.05, "c1": 0.05,
         "m0": 1.0, "m1": 1.0, "u0": 0.5, "u1": 1.0}
_PARAMS = re.compile(r"^# PARAMS: (\{.*\})$", re.MULTILINE)


def render(params: dict[str, float]) -> str:
    p = {k: round(float(v), 4) for k, v in params.items()}
    return TEMPLATE.format(params=json.dumps(p, sort_keys=True), **p)


def params_of(code: str) -> dict[str, float] | None:
    m = _PARAMS.search(code or "")
    return json.loads(m.group(1)) if m else None


class OfflineExplorer:
    """Mutation search over :data:`TEMPLATE`: round 1 is the start point; later rounds
    perturb the best controller found so far (by search-set score). Deterministic."""

    model = "offline"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def propose(self, prompt: str, history: list[dict]) -> Proposal:
        rng = random.Random(self.seed * 100_003 + len(history))
        scored = [(r.get("results.json", {}).get("score"), params_of(r.get("controller.py", "")))
                  for r in history if r.get("record.json", {}).get("kind") == "ok"]
        scored = [(s, p) for s, p in scored if s is not None and p is not None]
        if not scored:
            params = dict(START)
        else:
            best = max(scored, key=lambda sp: sp[0])[1]
            params = {k: max(0.0, best[k] + rng.gauss(0, SCALE[k]))
                      for k in START if k in best}
        text = ("Perturbing the best template parameters so far.\n\n```python\n"
                + render(params) + "```\n")
        return Proposal(text, 0, 0, self.model)
