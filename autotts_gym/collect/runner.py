"""Collect replay stores from an OpenAI-compatible completions server (vLLM, llama.cpp's
server, SGLang), following the protocol of the AutoTTS release: N trajectories per
question, generated in intervals of ``interval`` tokens by continuing the text; after each
interval that does not end the trajectory, a greedy probe (the prefix plus an
answer-forcing suffix, a few tokens) whose extracted answer is the interval's answer; at
the end, the final answer and the true token count.

Finished trajectories go to an append-only journal (fsync'd), so a killed collection
resumes without losing or repeating one; the store is written atomically at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

from ..store import ProblemBuilder, ReplaySet, write_replay_set
from .extract import make_extractor
from .normalize import get_normalizer
from .questions import Question

DEFAULT_TEMPLATE = ("{question}\n\nPlease reason step by step, and put your final answer "
                    "within \\boxed{{}}.\n")
DEFAULT_SUFFIX = "\n\n**Final Answer**\n\\boxed{"


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
    concurrency: int = 8
    max_tokens_total: int | None = None
    expected_tokens: int = 12_000  # per trajectory, for the estimate printed first
    seed: int = 0


class CompletionsClient:
    """The ``openai`` client against a completions endpoint; it retries 429 and 5xx
    answers with exponential backoff (``max_retries``) and times out each request."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 timeout: float = 600.0, max_retries: int = 5):
        import openai

        self.model = model
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or os.environ.get(
            "OPENAI_API_KEY", "EMPTY"), timeout=timeout, max_retries=max_retries)

    def complete(self, prompt: str, max_tokens: int, temperature: float,
                 seed: int | None = None) -> tuple[str, int, str]:
        """``(text, completion tokens, finish reason)``."""
        r = self.client.completions.create(model=self.model, prompt=prompt,
                                           max_tokens=max_tokens, temperature=temperature,
                                           seed=seed)
        choice = r.choices[0]
        tokens = r.usage.completion_tokens if r.usage else len(choice.text.split())
        return choice.text, int(tokens), str(choice.finish_reason)


def collect_trajectory(client: CompletionsClient, prompt: str, cfg: CollectConfig,
                       extract: Callable[[str], str], seed: int) -> dict:
    """One trajectory: probe answers after each full interval, final answer, tokens."""
    text, tokens, probes = prompt, 0, []
    while True:
        budget = min(cfg.interval, cfg.max_tokens - tokens)
        chunk, used, finish = client.complete(text, budget, cfg.temperature, seed + tokens)
        text += chunk
        tokens += used
        if finish != "length" or used < budget or tokens >= cfg.max_tokens:
            break
        probe, _, _ = client.complete(text + cfg.probe_suffix, cfg.probe_max_tokens, 0.0)
        probes.append(extract(cfg.probe_suffix + probe + ("}" if "}" not in probe else "")))
    return {"probes": probes, "tokens": tokens, "final": extract(text[len(prompt):])}


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
_RUN_ONLY = frozenset({"concurrency", "max_tokens_total", "expected_tokens"})


def store_name(model: str) -> str:
    """A model name usable as a store folder (``org/name`` -> ``org--name``)."""
    return model.replace("/", "--")


def _seed(cfg: CollectConfig, q: int, t: int) -> int:
    h = hashlib.sha256(f"{cfg.seed}:{q}:{t}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def collect(questions: list[Question], client: CompletionsClient, out: Path | str,
            cfg: CollectConfig, progress: bool = True, log=print) -> Path | None:
    """Collect (or resume) and write ``out/<model>/<benchmark>.h5``; None if capped."""
    out = Path(out)
    journal = Journal(out / ".collect" / store_name(cfg.model)
                      / f"{cfg.benchmark}.journal.jsonl")
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
    done = journal.load()
    todo = [(q, t) for q in range(len(questions)) for t in range(cfg.n) if (q, t) not in done]
    spent = sum(r["tokens"] for r in done.values())
    estimate = len(questions) * cfg.n * cfg.expected_tokens
    log(f"collect: {len(questions)} questions x {cfg.n} trajectories, about "
        f"{estimate:,} tokens expected ({cfg.expected_tokens:,} per trajectory); "
        f"{len(done)} already journaled, {len(todo)} to go")
    extract = make_extractor(cfg.extract)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(questions) * cfg.n, initial=len(done), unit="traj")
    t0, new_tokens, capped = time.monotonic(), 0, False

    def run(q: int, t: int) -> dict:
        prompt = cfg.prompt_template.format(question=questions[q].text)
        rec = collect_trajectory(client, prompt, cfg, extract, _seed(cfg, q, t))
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
                rec = fut.result()
                journal.append(rec)
                done[(rec["q"], rec["t"])] = rec
                spent += rec["tokens"]
                new_tokens += rec["tokens"]
                if bar is not None:
                    rate = new_tokens / max(1e-9, time.monotonic() - t0)
                    bar.set_postfix(questions=len({q for q, _ in done}), tokens=f"{spent:,}",
                                    tok_s=f"{rate:,.0f}")
                    bar.update(1)
    if bar is not None:
        bar.close()
    if capped or len(done) < len(questions) * cfg.n:
        log(f"collect: stopped at the token cap ({spent:,} >= {cfg.max_tokens_total:,}); "
            f"{len(done)} trajectories journaled; raise --max-tokens-total and --resume")
        return None
    return write_store(questions, done, out, cfg)


def write_store(questions: list[Question], done: dict, out: Path, cfg: CollectConfig) -> Path:
    norm = get_normalizer(cfg.normalize)
    problems = []
    for q, question in enumerate(questions):
        b = ProblemBuilder(q, question.text, norm(question.answer), cfg.interval)
        for t in range(cfg.n):
            rec = done[(q, t)]
            b.add_branch([norm(a) for a in rec["probes"]], rec["tokens"], norm(rec["final"]))
        problems.append(b.build())
    rs = ReplaySet(store_name(cfg.model), cfg.benchmark, problems, source_file="autotts collect",
                   normalizer=cfg.normalize,
                   extra_attrs={"prompt_template": cfg.prompt_template,
                                "probe_suffix": cfg.probe_suffix, "extract": cfg.extract,
                                "interval": str(cfg.interval),
                                "temperature": str(cfg.temperature), "n": str(cfg.n),
                                "max_tokens": str(cfg.max_tokens)})
    path = out / store_name(cfg.model) / f"{cfg.benchmark}.h5"
    write_replay_set(path, rs)
    return path
