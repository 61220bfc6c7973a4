"""How much merging spellings of one value changes accuracy on the real data.

    python benchmarks/normalization_effect.py [--controllers sc64:0.5,cmc:0.5,cmc:1]

Imports ../shared/replay twice (answers as stored, and through the `math` normalizer),
evaluates each controller on seeds 0..99 of every set, and prints accuracy per set and
the change in points.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import SHARED

from autotts_gym.collect.normalize import get_normalizer
from autotts_gym.harness import evaluate_many
from autotts_gym.importer import import_sources
from autotts_gym.store import ReplayStore


def store(normalizer: str) -> ReplayStore:
    out = Path(tempfile.mkdtemp(prefix=f"autotts-norm-{normalizer}-"))
    import_sources(SHARED / "replay" / "autotts", out, normalizer=get_normalizer(normalizer),
                   normalizer_name=normalizer)
    return ReplayStore(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--controllers", default="sc64:0.5,cmc:0.5,cmc:1")
    args = ap.parse_args()
    entries = []
    for item in args.controllers.split(","):
        name, beta = item.split(":")
        entries.append((name, (float(beta),), f"{name}@{float(beta):g}"))
    rows = {}
    vocab = {}
    for norm in ("none", "math"):
        st = store(norm)
        vocab[norm] = sum(len(p.vocab) for rs in st.select() for p in rs.problems)
        for r in evaluate_many(entries, st, progress=False).summary():
            rows[(r["model"], r["benchmark"], r["method"], norm)] = r["accuracy_pct"]
    print(f"answer vocabulary, all problems: {vocab['none']:,} strings as stored, "
          f"{vocab['math']:,} after the math normalizer\n")
    print("| model | benchmark | method | accuracy % as stored | with math normalizer | change |")
    print("|---|---|---|---|---|---|")
    deltas = {}
    for (m, b, meth, norm), acc in sorted(rows.items()):
        if norm != "none":
            continue
        new = rows[(m, b, meth, "math")]
        deltas.setdefault(meth, []).append(new - acc)
        print(f"| {m} | {b} | {meth} | {acc:.2f} | {new:.2f} | {new - acc:+.2f} |")
    for meth, d in deltas.items():
        print(f"\nmean change for {meth}: {sum(d) / len(d):+.2f} points over {len(d)} sets")


if __name__ == "__main__":
    main()
