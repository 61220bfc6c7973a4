"""``autotts collect``: build a replay store from your own model's server."""

from __future__ import annotations

import json
import os
from pathlib import Path

from autotts_gym.collect.normalize import NORMALIZER_NAMES

from .. import args as args_


def register(sub) -> None:
    p = sub.add_parser("collect", help="build a replay store from an OpenAI-compatible "
                                       "server (vLLM, llama.cpp, SGLang)")
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
    p.add_argument("--normalize", default="none", choices=NORMALIZER_NAMES)
    chat = p.add_argument_group("chat models")
    chat.add_argument("--api", choices=["completions", "chat"], default="completions",
                      help="completions: raw text (with --chat-template for chat models); "
                           "chat: continue the assistant message through chat completions")
    chat.add_argument("--chat-template", metavar="MODEL", default=None,
                      help="apply MODEL's tokenizer chat template on the client "
                           "(a Hugging Face id or a local folder; needs [collect-template])")
    chat.add_argument("--chat-template-file", type=Path, default=None,
                      help="a Jinja chat template replacing the tokenizer's")
    chat.add_argument("--chat-template-kwargs", default=None, metavar="JSON",
                      help='template variables, e.g. \'{"enable_thinking": true}\'')
    chat.add_argument("--thinking", choices=["close", "keep"], default="close",
                      help="close: a probe inside an open <think> block closes it first")
    chat.add_argument("--tokenizer", default=None, metavar="MODEL",
                      help="count tokens with MODEL's tokenizer when the server sends no usage")
    run = p.add_argument_group("running")
    run.add_argument("--concurrency", type=args_.positive_int, default=8,
                     help="trajectories at once")
    run.add_argument("--max-inflight", type=args_.positive_int, default=None,
                     help="requests in flight to the server (default 2 x --concurrency)")
    run.add_argument("--schedule", choices=["overlap", "sequential"], default="overlap",
                     help="overlap: a probe runs while the next interval is generated")
    run.add_argument("--api-key-env", default=None, metavar="VAR",
                     help="environment variable holding the key (default OPENAI_API_KEY; "
                          "local servers need none)")
    run.add_argument("--max-tokens-total", type=args_.positive_int, default=None,
                     help="stop after this many generated tokens in all (default: no cap)")
    run.add_argument("--expected-tokens", type=args_.positive_int, default=12_000,
                     help="tokens per trajectory assumed by the estimate printed first")
    run.add_argument("--resume", action="store_true", help="continue a journaled collection")
    run.add_argument("--timeout", type=args_.positive_float, default=600.0,
                     help="seconds per request")
    run.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_collect, out_policy="check")


def cmd_collect(args) -> int:
    from autotts_gym.collect.extract import make_extractor
    from autotts_gym.collect.normalize import get_vocab_normalizer
    from autotts_gym.collect.questions import load_questions
    from autotts_gym.collect.runner import (
        DEFAULT_SUFFIX,
        DEFAULT_TEMPLATE,
        ChatClient,
        CollectConfig,
        CompletionsClient,
        Journal,
        collect,
        store_name,
    )
    from autotts_gym.errors import UsageError

    questions = load_questions(args.questions, args.question_col, args.answer_col)
    template = args.prompt_template or DEFAULT_TEMPLATE
    if "{question}" not in template:
        raise UsageError("--prompt-template must contain {question}")
    make_extractor(args.extract)  # fail early on a bad --extract
    get_vocab_normalizer(args.normalize)  # and on a missing math-verify
    for flag, v in (("--n", args.n), ("--interval", args.interval),
                    ("--concurrency", args.concurrency), ("--max-tokens", args.max_tokens)):
        if v < 1:
            raise UsageError(f"{flag} must be at least 1, got {v}")
    kwargs = _json_object(args.chat_template_kwargs)
    if args.api == "chat" and (args.chat_template or args.chat_template_file):
        raise UsageError("--api chat uses the server's chat template; --chat-template is for "
                         "--api completions")
    if args.chat_template_file and not args.chat_template:
        raise UsageError("--chat-template-file needs --chat-template MODEL (its tokenizer)")
    render, described = None, ""
    if args.chat_template:
        from autotts_gym.collect.template import ChatTemplate

        tmpl = ChatTemplate.load(args.chat_template, args.chat_template_file, kwargs)
        render, described = tmpl.render, tmpl.describe()
    elif args.api == "chat":
        described = "server-side" + (f" {json.dumps(kwargs, sort_keys=True)}" if kwargs else "")
    count, token_count = None, "usage"
    if args.tokenizer:
        from autotts_gym.collect.template import TokenCounter

        count, token_count = TokenCounter(args.tokenizer), f"usage, else tokenizer:{args.tokenizer}"
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise UsageError(f"--api-key-env: environment variable {args.api_key_env} is not set")
    cfg = CollectConfig(model=args.model, benchmark=args.benchmark or args.questions.stem,
                        n=args.n, temperature=args.temperature, interval=args.interval,
                        max_tokens=args.max_tokens, probe_max_tokens=args.probe_max_tokens,
                        prompt_template=template, probe_suffix=args.probe_suffix or DEFAULT_SUFFIX,
                        extract=args.extract, normalize=args.normalize, api=args.api,
                        chat_template=described, thinking=args.thinking,
                        token_count=token_count, concurrency=args.concurrency,
                        max_inflight=args.max_inflight, schedule=args.schedule,
                        max_tokens_total=args.max_tokens_total,
                        expected_tokens=args.expected_tokens)
    journal = Journal(args.out / ".collect" / store_name(cfg.model)
                      / f"{cfg.benchmark}.journal.jsonl")
    if journal.path.is_file() and not args.resume:
        raise UsageError(f"{journal.path}: a collection is journaled here; pass --resume "
                         "to continue it")
    common = {"api_key": key, "timeout": args.timeout, "count_tokens": count,
              "max_inflight": args.max_inflight or 2 * args.concurrency}
    if args.api == "chat":
        client = ChatClient(args.base_url, args.model, template_kwargs=kwargs, **common)
    else:
        client = CompletionsClient(args.base_url, args.model, render=render, **common)
    path = collect(questions, client, args.out, cfg, progress=not args.no_progress)
    if path is None:
        return 3
    print(f"store written: {path}")
    return 0


def _json_object(text: str | None) -> dict:
    from autotts_gym.errors import UsageError

    if not text:
        return {}
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"--chat-template-kwargs: not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise UsageError("--chat-template-kwargs: expected a JSON object")
    return obj
