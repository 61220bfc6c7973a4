"""Store load time on the real data: JSON import, no-op re-import, loading all replay sets,
building the core's ProblemTables. Prints figures (median of --repeat runs).

    python benchmarks/bench_store.py [--json ../shared/replay/autotts] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from autotts_gym.core import ProblemTables
from autotts_gym.importer import find_sources, import_sources, parse_autotts_json
from autotts_gym.store import ReplayStore

DEFAULT_JSON = Path(__file__).resolve().parents[2] / "shared" / "replay" / "autotts"


def _timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    srcs = find_sources(args.json)
    json_bytes = sum(p.stat().st_size for _, _, p in srcs)

    with tempfile.TemporaryDirectory() as tmp:
        def fresh_import():
            out = Path(tempfile.mkdtemp(dir=tmp))
            import_sources(args.json, out)
            return out

        t_parse, _ = _timed(lambda: [parse_autotts_json(p, m, b) for m, b, p in srcs],
                            args.repeat)
        t_import, store_dir = _timed(fresh_import, args.repeat)
        t_noop, _ = _timed(lambda: import_sources(args.json, store_dir), args.repeat)
        store_bytes = sum(p.stat().st_size for p in Path(store_dir).rglob("*.h5"))
        t_load, sets = _timed(lambda: ReplayStore(store_dir).select(), args.repeat)
        problems = [p for rs in sets for p in rs.problems]
        t_tables, _ = _timed(lambda: [ProblemTables.from_problem(p) for p in problems],
                             args.repeat)

    n_br = sum(p.n_branches for p in problems)
    print(f"real data: {len(srcs)} JSON files, {json_bytes / 1e6:.1f} MB, "
          f"{len(problems)} problems, {n_br:,} branches")
    print(f"parse + validate JSON (9 files):   {t_parse * 1e3:8.1f} ms")
    print(f"import into a fresh HDF5 store:    {t_import * 1e3:8.1f} ms  "
          f"(store {store_bytes / 1e6:.2f} MB)")
    print(f"re-import (no-op, sha256 check):   {t_noop * 1e3:8.1f} ms")
    print(f"load all 9 sets (ReplayStore):     {t_load * 1e3:8.1f} ms")
    print(f"build ProblemTables ({len(problems)} problems): {t_tables * 1e3:8.1f} ms")
    print(f"median of {args.repeat} runs each")


if __name__ == "__main__":
    main()
