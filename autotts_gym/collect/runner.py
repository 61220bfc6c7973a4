"""Collect replay stores from an OpenAI-compatible server (vLLM, SGLang, llama.cpp's
server), following the protocol of the AutoTTS release: N trajectories per question,
generated in intervals of ``interval`` tokens by continuing the text; after each interval
that does not end the trajectory, a greedy probe (the prefix plus an answer-forcing
suffix, a few tokens; an open ``<think>`` block closed first) whose extracted answer is
the interval's answer; at the end, the final answer and the token count from ``usage``.

Text is continued through raw completions (optionally inside the model's chat template,
rendered on the client) or through chat completions continuing the final assistant
message. A probe runs while the next interval is generated; requests in flight to a
server are bounded. Finished trajectories go to an append-only journal (fsync'd), so a
killed collection resumes without losing or repeating one; the store is written
atomically at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import AutoTTSError
from ..store import ProblemBuilder, ReplaySet, write_replay_set
from .extract import make_extractor
from .normalize import get_vocab_normalizer
from .questions import Question

DEFAULT_TEMPLATE = ("{question}\n\nPlease reason step by step, and put your final answer "
                    "within \\boxed{{}}.\n")
DEFAULT_SUFFIX = "\n\n**Final Answer**\n\\boxed{"


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


class CollectError(AutoTTSError, ValueError):
    """The server's answers cannot make a faithful store (no usage, errors past retries)."""


@dataclass
class CollectConfig:
    model: str
    benchmark: str = "questions"
    n: int = 128
    temperature: float = 0.7
    interval: int = 500
    max_tokens: int = 32_768
    probe_max_tokens: int = 20
    prompt_template: str = DEFAULT_TEMPLATE
    probe_suffix: str = DEFAULT_SUFFIX
    extract: str = "boxed"
    normalize: str = "none"
    api: str = "completions"  # "completions" (raw text) or "chat" (continue the message)
    chat_template: str = ""  # description of the client-side template ("" = none)
    thinking: str = "close"  # "close": a probe first closes an open <think> block; "keep"
    think_close: str = "\n" + THINK_CLOSE + "\n\n"
    token_count: str = "usage"  # or "tokenizer:NAME" for servers without usage
    concurrency: int = 8
    max_inflight: int | None = None  # requests in flight per server (default 2 x concurrency)
    schedule: str = "overlap"  # probes run beside the next interval; "sequential" waits
    max_tokens_total: int | None = None
    expected_tokens: int = 12_000  # per trajectory, for the estimate printed first
    seed: int = 0

    def probe_prefix(self, visible: str) -> str:
        """What a probe appends to the trajectory: the suffix, after closing an open
        thinking block (``visible`` is all the text the model sees)."""
        if self.thinking == "close" and visible.count(THINK_OPEN) > visible.count(THINK_CLOSE):
            return self.think_close + self.probe_suffix
        return self.probe_suffix


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int
    finish: str


class _Client:
    """The ``openai`` client against one server; it retries 429 and 5xx answers with
    exponential backoff (``max_retries``), times out each request, and lets at most
    ``max_inflight`` requests be in flight at once. Token counts come from ``usage``, or
    from ``count_tokens`` when given; a reply without usage is otherwise an error."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 timeout: float = 600.0, max_retries: int = 5, max_inflight: int = 16,
                 count_tokens: Callable[[str], int] | None = None):
        import openai

        self.model = model
        self.base_url = base_url
        self._openai = openai
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or os.environ.get(
            "OPENAI_API_KEY", "EMPTY"), timeout=timeout, max_retries=max_retries)
        self.count_tokens = count_tokens
        self._slots = threading.BoundedSemaphore(max_inflight)
        self.inflight = self.peak_inflight = 0
        self._lock = threading.Lock()

    def _call(self, fn, **kw):
        with self._slots:
            with self._lock:
                self.inflight += 1
                self.peak_inflight = max(self.peak_inflight, self.inflight)
            try:
                return fn(model=self.model, **kw)
            except self._openai.APIStatusError as e:
                raise CollectError(f"{self.base_url}: the server answered {e.status_code}: "
                                   f"{e.message}") from None
            except self._openai.APIConnectionError as e:
                raise CollectError(f"cannot reach {self.base_url}: {type(e).__name__}: "
                                   f"{e}") from None
            except self._openai.APIError as e:
                raise CollectError(f"{self.base_url}: request failed: {type(e).__name__}: "
                                   f"{e}") from None
            finally:
                with self._lock:
                    self.inflight -= 1

    def _tokens(self, usage, text: str) -> int:
        if usage is not None and getattr(usage, "completion_tokens", None) is not None:
            return int(usage.completion_tokens)
        if self.count_tokens is None:
            raise CollectError(f"{self.base_url}: the reply has no 'usage' token count; pass "
                               "--tokenizer NAME to count tokens with the model's tokenizer")
        return self.count_tokens(text)

    def head(self, user: str) -> str:
        """The text before the assistant's, as the model sees it ("" if server-side)."""
        return ""

    def _first(self, r):
        if not getattr(r, "choices", None):
            raise CollectError(f"{self.base_url}: the reply has no choices")
        return r.choices[0]


class CompletionsClient(_Client):
    """Raw ``/v1/completions``: the prompt is ``render(user) + assistant`` verbatim
    (``render`` is the identity, or a client-side chat template)."""

    def __init__(self, *args, render: Callable[[str], str] | None = None, **kw):
        super().__init__(*args, **kw)
        self.render = render or (lambda user: user)
        self._heads: dict[str, str] = {}

    def head(self, user: str) -> str:
        h = self._heads.get(user)
        if h is None:
            h = self._heads[user] = self.render(user)
        return h

    def continue_text(self, user: str, assistant: str, max_tokens: int, temperature: float,
                      seed: int | None = None) -> Completion:
        r = self._call(self.client.completions.create, prompt=self.head(user) + assistant,
                       max_tokens=max_tokens, temperature=temperature, seed=seed)
        choice = self._first(r)
        return Completion(choice.text, self._tokens(r.usage, choice.text),
                          str(choice.finish_reason))


class ChatClient(_Client):
    """``/v1/chat/completions`` with the server's template: the assistant's text so far is
    the final message, continued in place (vLLM's ``continue_final_message`` with
    ``add_generation_prompt: false``)."""

    def __init__(self, *args, template_kwargs: dict | None = None, **kw):
        super().__init__(*args, **kw)
        self.template_kwargs = template_kwargs or {}

    def continue_text(self, user: str, assistant: str, max_tokens: int, temperature: float,
                      seed: int | None = None) -> Completion:
        messages = [{"role": "user", "content": user}]
        extra: dict = {}
        if assistant:
            messages.append({"role": "assistant", "content": assistant})
            extra = {"continue_final_message": True, "add_generation_prompt": False}
        if self.template_kwargs:
            extra["chat_template_kwargs"] = self.template_kwargs
        r = self._call(self.client.chat.completions.create, messages=messages,
                       max_tokens=max_tokens, temperature=temperature, seed=seed,
                       extra_body=extra or None)
        choice = self._first(r)
        msg = choice.message
        reasoning = getattr(msg, "reasoning_content", None) or getattr(msg, "reasoning", None)
        if reasoning:
            raise CollectError(f"{self.base_url}: the server splits the reply into "
                               "'reasoning_content' (a --reasoning-parser); serve without it "
                               "so the assistant text continues verbatim")
        text = msg.content or ""
        return Completion(text, self._tokens(r.usage, text), str(choice.finish_reason))


Client = CompletionsClient | ChatClient


def collect_trajectory(client: Client, user: str, cfg: CollectConfig,
                       extract: Callable[[str], str], seed: int,
                       probe_pool: Executor | None = None) -> dict:
    """One trajectory: probe answers after each full interval, final answer, tokens.

    With ``probe_pool`` the probe at a boundary runs there while the next interval is
    generated (they do not depend on each other); otherwise one after the other."""
    head = client.head(user)
    text, tokens, probes = "", 0, []

    def probe(prefix: str) -> str:
        suffix = cfg.probe_prefix(head + prefix)
        out = client.continue_text(user, prefix + suffix, cfg.probe_max_tokens, 0.0)
        return extract(cfg.probe_suffix + out.text + ("}" if "}" not in out.text else ""))

    while True:
        budget = min(cfg.interval, cfg.max_tokens - tokens)
        c = client.continue_text(user, text, budget, cfg.temperature, seed + tokens)
        text += c.text
        tokens += c.tokens
        if c.finish != "length" or c.tokens < budget or tokens >= cfg.max_tokens:
            break
        probes.append(probe_pool.submit(probe, text) if probe_pool else probe(text))
    answers = [p.result() if isinstance(p, Future) else p for p in probes]
    return {"probes": answers, "tokens": tokens, "final": extract(text)}


class Journal:
    """Append-only JSON lines of finished trajectories, keyed (question, trajectory)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def load(self) -> dict[tuple[int, int], dict]:
        done: dict[tuple[int, int], dict] = {}
        if not self.path.is_file():
            return done
        with open(self.path, "rb") as f:
            for raw in f:
                try:
                    rec = json.loads(raw)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill: that trajectory is redone
                done[(rec["q"], rec["t"])] = rec
        return done

    def append(self, rec: dict) -> None:
        line = (json.dumps(rec) + "\n").encode()
        with self._lock, open(self.path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


# settings that may change between a run and its resumption
_RUN_ONLY = frozenset({"concurrency", "max_inflight", "schedule", "max_tokens_total",
                       "expected_tokens"})


def store_name(model: str) -> str:
    """A model name usable as a store folder (``org/name`` -> ``org--name``)."""
    return model.replace("/", "--")


def _seed(cfg: CollectConfig, q: int, t: int) -> int:
    h = hashlib.sha256(f"{cfg.seed}:{q}:{t}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def _pin_settings(journal: Journal, cfg: CollectConfig) -> None:
    """Record the collection settings next to a new journal; refuse to resume a journal
    collected with other settings."""
    meta_path = journal.path.with_suffix(".config.json")
    settings = {k: v for k, v in asdict(cfg).items() if k not in _RUN_ONLY}
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        changed = sorted(k for k in settings if old.get(k) != settings[k])
        if changed:
            raise ValueError(f"{meta_path}: this journal was collected with other "
                             f"{', '.join(changed)}; use the same settings or another --out")
    else:
        meta_path.write_text(json.dumps(settings, indent=2))


class _Progress:
    """A tqdm bar over trajectories showing questions, tokens and throughput (or nothing)."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="traj")
        self.t0, self.new_tokens = time.monotonic(), 0

    def update(self, done: dict, spent: int, tokens: int) -> None:
        self.new_tokens += tokens
        if self.bar is not None:
            rate = self.new_tokens / max(1e-9, time.monotonic() - self.t0)
            self.bar.set_postfix(questions=len({q for q, _ in done}), tokens=f"{spent:,}",
                                 tok_s=f"{rate:,.0f}")
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def collect(questions: list[Question], client: Client, out: Path | str,
            cfg: CollectConfig, progress: bool = True, log=print) -> Path | None:
    """Collect (or resume) and write ``out/<model>/<benchmark>.h5``; None if capped."""
    out = Path(out)
    journal = Journal(out / ".collect" / store_name(cfg.model)
                      / f"{cfg.benchmark}.journal.jsonl")
    _pin_settings(journal, cfg)
    done = journal.load()
    todo = [(q, t) for q in range(len(questions)) for t in range(cfg.n) if (q, t) not in done]
    spent = sum(r["tokens"] for r in done.values())
    estimate = len(questions) * cfg.n * cfg.expected_tokens
    log(f"collect: {len(questions)} questions x {cfg.n} trajectories, about "
        f"{estimate:,} tokens expected ({cfg.expected_tokens:,} per trajectory); "
        f"{len(done)} already journaled, {len(todo)} to go")
    extract = make_extractor(cfg.extract)
    bar = _Progress(len(questions) * cfg.n, len(done), progress)
    capped = False

    probe_pool = (ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="probe")
                  if cfg.schedule == "overlap" else None)

    def run(q: int, t: int) -> dict:
        prompt = cfg.prompt_template.format(question=questions[q].text)
        rec = collect_trajectory(client, prompt, cfg, extract, _seed(cfg, q, t), probe_pool)
        return {"q": q, "t": t, **rec}

    with ThreadPoolExecutor(max_workers=cfg.concurrency) as pool:
        pending: set[Future[dict]] = set()
        queue = iter(todo)
        while True:
            while len(pending) < cfg.concurrency and not capped:
                nxt = next(queue, None)
                if nxt is None:
                    break
                if cfg.max_tokens_total is not None and spent >= cfg.max_tokens_total:
                    capped = True
                    break
                pending.add(pool.submit(run, *nxt))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                try:
                    rec = fut.result()
                except BaseException:
                    for other in pending:
                        other.cancel()
                    if probe_pool is not None:
                        probe_pool.shutdown(cancel_futures=True)
                    raise
                journal.append(rec)
                done[(rec["q"], rec["t"])] = rec
                spent += rec["tokens"]
                bar.update(done, spent, rec["tokens"])
    if probe_pool is not None:
        probe_pool.shutdown()
    bar.close()
    if capped or len(done) < len(questions) * cfg.n:
        log(f"collect: stopped at the token cap ({spent:,} >= {cfg.max_tokens_total:,}); "
            f"{len(done)} trajectories journaled; raise --max-tokens-total and --resume")
        return None
    return write_store(questions, done, out, cfg)


def write_store(questions: list[Question], done: dict, out: Path, cfg: CollectConfig) -> Path:
    from ..importer import vocab_map

    normalizer = get_vocab_normalizer(cfg.normalize)
    problems = []
    for q, question in enumerate(questions):
        recs = [done[(q, t)] for t in range(cfg.n)]
        norm = vocab_map(normalizer, question.answer,
                         [a for r in recs for a in (*r["probes"], r["final"])])
        b = ProblemBuilder(q, question.text, norm[question.answer], cfg.interval)
        for rec in recs:
            b.add_branch([norm[a] for a in rec["probes"]], rec["tokens"], norm[rec["final"]])
        problems.append(b.build())
    rs = ReplaySet(store_name(cfg.model), cfg.benchmark, problems, source_file="autotts collect",
                   normalizer=cfg.normalize,
                   extra_attrs=collect_attrs(cfg))
    path = out / store_name(cfg.model) / f"{cfg.benchmark}.h5"
    write_replay_set(path, rs)
    return path


def collect_attrs(cfg: CollectConfig) -> dict[str, str]:
    """The collect settings a store records (shown by ``autotts data info``)."""
    thinking = (f"close: a probe after an open {THINK_OPEN} first appends "
                f"{cfg.think_close!r}" if cfg.thinking == "close" else "keep: probes as is")
    return {"collect_api": cfg.api, "chat_template": cfg.chat_template or "none",
            "thinking": thinking, "prompt_template": cfg.prompt_template,
            "probe_suffix": cfg.probe_suffix, "extract": cfg.extract,
            "interval": str(cfg.interval), "temperature": str(cfg.temperature),
            "n": str(cfg.n), "max_tokens": str(cfg.max_tokens),
            "probe_max_tokens": str(cfg.probe_max_tokens), "token_count": cfg.token_count,
            "seed": str(cfg.seed)}
