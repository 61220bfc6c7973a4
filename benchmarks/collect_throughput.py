"""Collect throughput: probes overlapped with the next interval vs one after the other.

    python benchmarks/collect_throughput.py [--overhead 0.03] [--per-token 0.0002]

A local completions server on 127.0.0.1 answers like a model with latency: every request
takes ``overhead`` seconds (queueing, prefill of the prefix) plus ``per_token`` seconds per
generated token, and serves requests concurrently (as a batching server with spare
capacity). The same questions are collected with ``--schedule sequential`` (the probe at a
boundary, then the next interval) and ``--schedule overlap`` (both at once) at the same
number of trajectories in flight; the script prints generated tokens per second of each
and the in-flight peak. Three repetitions each, median shown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from autotts_gym.collect.questions import Question
from autotts_gym.collect.runner import CollectConfig, CompletionsClient, collect

TOKEN = "§ "


def serve(overhead: float, per_token: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            prompt, max_tokens = body["prompt"], int(body["max_tokens"])
            done = prompt.count(TOKEN)
            if prompt.endswith("\\boxed{"):
                text, used, finish = f"{done // 500}}}", 3, "stop"
            else:
                total = 1500 + (int(body["seed"]) - done) % 3000
                used = min(max_tokens, total - done)
                text, finish = TOKEN * used, "length"
                if done + used >= total:
                    text, finish = text + " \\boxed{7}", "stop"
            time.sleep(overhead + per_token * used)
            data = json.dumps({
                "id": "x", "object": "text_completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "text": text, "finish_reason": finish,
                             "logprobs": None}],
                "usage": {"prompt_tokens": 1, "completion_tokens": used,
                          "total_tokens": used + 1}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def run(url: str, schedule: str, questions: int, n: int, concurrency: int) -> tuple[float, int]:
    qs = [Question(f"question {i}", "7") for i in range(questions)]
    cfg = CollectConfig(model="bench", benchmark=schedule, n=n, concurrency=concurrency,
                        schedule=schedule)
    client = CompletionsClient(url, "bench", max_inflight=2 * concurrency)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        collect(qs, client, out, cfg, progress=False, log=lambda *a: None)
        seconds = time.perf_counter() - t0
        from autotts_gym.store import ReplayStore

        rs = ReplayStore(out).load("bench", schedule)
        tokens = sum(int(p.tokens.sum()) for p in rs.problems)
    return tokens / seconds, client.peak_inflight


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--overhead", type=float, default=0.03, help="seconds per request")
    ap.add_argument("--per-token", type=float, default=0.0002, help="seconds per token")
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    httpd = serve(args.overhead, args.per_token)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    interval_s = args.overhead + 500 * args.per_token
    probe_s = args.overhead + 3 * args.per_token
    print(f"server latency: interval {interval_s * 1000:.0f} ms, probe {probe_s * 1000:.0f} ms; "
          f"{args.questions} questions x {args.n} trajectories, {args.concurrency} at once")
    rates = {}
    for schedule in ("sequential", "overlap"):
        runs = [run(url, schedule, args.questions, args.n, args.concurrency)
                for _ in range(args.repeats)]
        rates[schedule] = statistics.median(r for r, _ in runs)
        print(f"{schedule:>10}: {rates[schedule]:,.0f} tokens/s (runs: "
              f"{', '.join(f'{r:,.0f}' for r, _ in runs)}; peak in flight "
              f"{max(p for _, p in runs)})")
    print(f"overlap / sequential: {rates['overlap'] / rates['sequential']:.2f}x")
    httpd.shutdown()


if __name__ == "__main__":
    main()
