"""Wall time of `autotts reproduce` on the three models of ../shared/replay (Table 1).

    python benchmarks/bench_reproduce.py

Runs the command end to end in a subprocess (import, evaluation of 54 cells x 3000
episodes on all cores, output files), then checks every row against the spec columns of
../shared/reference/table1.csv.
"""

from __future__ import annotations

import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SHARED, real_store_dir


def main() -> None:
    store = real_store_dir()
    out = Path(tempfile.mkdtemp(prefix="autotts-reproduce-"))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autotts_cli.main", "reproduce", "--replay-dir",
                    str(store), "--out", str(out), "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    ref = {(r["model"], r["benchmark"], r["method"]): r
           for r in csv.DictReader(open(SHARED / "reference" / "table1.csv"))}
    rows = list(csv.DictReader(open(out / "table1.csv")))
    bad = [r for r in rows
           if r["accuracy_pct"] != ref[(r["model"], r["benchmark"], r["method"])]
           ["spec_accuracy_pct"]
           or abs(float(r["mean_tokens"]) - float(
               ref[(r["model"], r["benchmark"], r["method"])]["spec_mean_tokens"])) > 1]
    print(f"autotts reproduce: {wall:.2f} s wall, {ru.ru_utime + ru.ru_stime:.2f} s CPU, "
          f"{len(rows)} rows, {len(rows) - len(bad)} match the reference exactly")
    if bad:
        sys.exit(f"mismatching rows: {bad}")


if __name__ == "__main__":
    main()
