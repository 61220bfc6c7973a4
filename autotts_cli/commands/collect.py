"""``autotts collect``: build a replay store from your own model's server."""

from __future__ import annotations

from pathlib import Path

from .. import args as args_


def register(sub) -> None:
    p = sub.add_parser("collect", help="build a replay store from an OpenAI-compatible "
                                       "completions server (vLLM, llama.cpp, SGLang)")
    p.add_argument("--base-url", required=True, help="e.g. http://localhost:8000/v1")
    p.add_argument("--model", required=True, help="the served model name")
    p.add_argument("--questions", required=True, type=Path, help=".jsonl or .csv")
    p.add_argument("--out", required=True, type=Path, help="store directory")
    p.add_argument("--benchmark", default=None, help="set name (default: questions file stem)")
    p.add_argument("--question-col", default="question")
    p.add_argument("--answer-col", default="answer")
    p.add_argument("--n", type=args_.positive_int, default=128, help="trajectories per question")
    p.add_argument("--temperature", type=args_.nonnegative_float, default=0.7)
    p.add_argument("--interval", type=args_.positive_int, default=500, help="tokens per interval")
    p.add_argument("--max-tokens", type=args_.positive_int, default=32_768, help="per trajectory")
    p.add_argument("--probe-max-tokens", type=args_.positive_int, default=20)
    p.add_argument("--probe-suffix", default=None, help="answer-forcing suffix of probes")
    p.add_argument("--prompt-template", default=None, help="must contain {question}")
    p.add_argument("--extract", default="boxed", help="boxed | regex:PATTERN | letters")
    p.add_argument("--normalize", default="none", choices=["none", "math"])
    p.add_argument("--concurrency", type=args_.positive_int, default=8)
    p.add_argument("--max-tokens-total", type=args_.positive_int, default=None,
                   help="stop after this many generated tokens in all (default: no cap)")
    p.add_argument("--expected-tokens", type=args_.positive_int, default=12_000,
                   help="tokens per trajectory assumed by the estimate printed first")
    p.add_argument("--resume", action="store_true", help="continue a journaled collection")
    p.add_argument("--timeout", type=args_.positive_float, default=600.0,
                   help="seconds per request")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_collect, out_policy="check")


def cmd_collect(args) -> int:
    from autotts_gym.collect.extract import make_extractor
    from autotts_gym.collect.questions import load_questions
    from autotts_gym.collect.runner import (
        DEFAULT_SUFFIX,
        DEFAULT_TEMPLATE,
        CollectConfig,
        CompletionsClient,
        Journal,
        collect,
        store_name,
    )

    questions = load_questions(args.questions, args.question_col, args.answer_col)
    template = args.prompt_template or DEFAULT_TEMPLATE
    if "{question}" not in template:
        raise ValueError("--prompt-template must contain {question}")
    make_extractor(args.extract)  # fail early on a bad --extract
    cfg = CollectConfig(model=args.model, benchmark=args.benchmark or args.questions.stem,
                        n=args.n, temperature=args.temperature, interval=args.interval,
                        max_tokens=args.max_tokens, probe_max_tokens=args.probe_max_tokens,
                        prompt_template=template, probe_suffix=args.probe_suffix or DEFAULT_SUFFIX,
                        extract=args.extract, normalize=args.normalize,
                        concurrency=args.concurrency, max_tokens_total=args.max_tokens_total,
                        expected_tokens=args.expected_tokens)
    journal = Journal(args.out / ".collect" / store_name(cfg.model)
                      / f"{cfg.benchmark}.journal.jsonl")
    if journal.path.is_file() and not args.resume:
        raise ValueError(f"{journal.path}: a collection is journaled here; pass --resume "
                         "to continue it")
    client = CompletionsClient(args.base_url, args.model, timeout=args.timeout)
    path = collect(questions, client, args.out, cfg, progress=not args.no_progress)
    if path is None:
        return 3
    print(f"store written: {path}")
    return 0
