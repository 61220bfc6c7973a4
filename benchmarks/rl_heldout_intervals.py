"""Problem-level paired intervals for a compare run: each method and beta against SC@64.

    python benchmarks/rl_heldout_intervals.py OUT_DIR [--resamples 2000]

Reads ``OUT_DIR/records.jsonl`` (``autotts compare``). A unit is a problem (model,
benchmark, problem); per unit, accuracy and tokens are averaged over seeds, then the
paired difference in accuracy (points) and the ratio of mean tokens to SC@64's get 95%
percentile-bootstrap intervals over problems (``scipy.stats.bootstrap``, paired).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap

ap = argparse.ArgumentParser()
ap.add_argument("out", type=Path)
ap.add_argument("--resamples", type=int, default=2000)
args = ap.parse_args()

cells: dict = defaultdict(lambda: defaultdict(list))
for line in (args.out / "records.jsonl").read_text().splitlines():
    r = json.loads(line)
    cells[(r["method"], r["beta"])][(r["model"], r["benchmark"], r["problem"])].append(
        (float(r["correct"]), float(r["tokens"])))
ref = next(v for (m, _), v in cells.items() if m == "SC@64")
units = sorted(ref)
ref_acc = np.array([np.mean([c for c, _ in ref[u]]) for u in units])
ref_tok = np.array([np.mean([t for _, t in ref[u]]) for u in units])
print(f"{len(units)} problems; 95% paired bootstrap intervals over problems")
print("| method | beta | accuracy % | acc - SC@64 (pts) [95% CI] | tokens vs SC@64 [95% CI] |")
print("|---|---|---|---|---|")
for (m, b), v in sorted(cells.items()):
    acc = np.array([np.mean([c for c, _ in v[u]]) for u in units])
    tok = np.array([np.mean([t for _, t in v[u]]) for u in units])
    d = bootstrap(((acc - ref_acc) * 100,), np.mean, n_resamples=args.resamples,
                  method="percentile", random_state=0).confidence_interval
    ratio = bootstrap((tok, ref_tok), lambda a, c: a.mean() / c.mean(), paired=True,
                      vectorized=False, n_resamples=args.resamples, method="percentile",
                      random_state=0).confidence_interval
    print(f"| {m} | {b:g} | {100 * acc.mean():.2f} | {100 * (acc - ref_acc).mean():+.2f} "
          f"[{d.low:+.2f}, {d.high:+.2f}] | {100 * tok.mean() / ref_tok.mean():.1f}% "
          f"[{100 * ratio.low:.1f}, {100 * ratio.high:.1f}] |")
