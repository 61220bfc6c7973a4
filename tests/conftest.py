"""Shared fixtures.

Two kinds of tests:

* invariant tests (masks, leaks, batched equals per-episode, sandbox, resume, RL smoke) run
  on the bundled synthetic store (``synthetic_store``, ``synthetic_store_dir``, or
  ``synthetic_json_dir``: the same sets written as AutoTTS JSON), so they pass on a fresh
  clone;
* real-data tests (exact Table 1, calibration, checksums) use ``real_store``,
  ``replay_json_dir`` or ``reference_rows``; they are marked ``real_data`` automatically and
  skipped with a one-line reason when the real AutoTTS data is not found. The data is looked
  for in ``$AUTOTTS_SHARED/replay`` (else ``../shared/replay`` beside the repository), then
  in the user cache filled by ``autotts data download``. With ``AUTOTTS_REQUIRE_REAL_DATA=1``
  (set by ``.ci/run``) a missing data set fails instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUTOTTS_SHARED", REPO.parent / "shared"))
REPLAY_JSON = SHARED / "replay" / "autotts"
REFERENCE_TABLE = SHARED / "reference" / "table1.csv"
REAL_FIXTURES = frozenset({"replay_json_dir", "real_store_dir", "real_store", "reference_rows"})


def _missing(what: Path) -> None:
    reason = (f"real AutoTTS data not found ({what}); set AUTOTTS_SHARED or run "
              f"`autotts data download`")
    if os.environ.get("AUTOTTS_REQUIRE_REAL_DATA") == "1":
        pytest.fail(reason + " [AUTOTTS_REQUIRE_REAL_DATA=1]")
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_data)


@pytest.fixture(scope="session")
def replay_json_dir() -> Path:
    if not REPLAY_JSON.is_dir():
        _missing(REPLAY_JSON)
    return REPLAY_JSON


@pytest.fixture(scope="session")
def real_store_dir(tmp_path_factory) -> Path:
    """The real data as an HDF5 store: imported once from the shared JSON, else the user
    cache store of ``autotts data download``."""
    from autotts_gym.data import has_sets, user_store_dir
    from autotts_gym.importer import import_sources

    if REPLAY_JSON.is_dir():
        out = tmp_path_factory.mktemp("real_store")
        import_sources(REPLAY_JSON, out)
        return out
    cache = user_store_dir()
    if has_sets(cache):
        return cache
    _missing(REPLAY_JSON)
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def real_store(real_store_dir):
    from autotts_gym.store import ReplayStore

    return ReplayStore(real_store_dir)


@pytest.fixture(scope="session")
def synthetic_store():
    """The bundled synthetic store (same model and benchmark names as the real data)."""
    from autotts_gym.data import bundled_store_dir
    from autotts_gym.store import ReplayStore

    return ReplayStore(bundled_store_dir())


@pytest.fixture(scope="session")
def synthetic_store_dir() -> Path:
    from autotts_gym.data import bundled_store_dir

    return Path(bundled_store_dir())


def write_autotts_json(store, out: Path) -> Path:
    """Write every replay set of ``store`` as AutoTTS JSON (``<model>/<benchmark>.json``,
    the release's schema), so importer and JSON-reading tests run without the real data."""
    import json

    for rs in store:
        rows = []
        for p in rs.problems:
            v = p.vocab
            finals = [v[a] for a in p.final]
            rows.append({
                "question": p.question, "gold_answer": p.gold_answer,
                "probe_freq": p.probe_freq, "final_answers_trace": finals,
                "each_branch": [[[v[a] for a in p.branch_probes(b)], int(p.tokens[b]),
                                 finals[b]] for b in range(p.n_branches)],
            })
        path = out / rs.model / f"{rs.benchmark}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows))
    return out


@pytest.fixture(scope="session")
def synthetic_json_dir(synthetic_store, tmp_path_factory) -> Path:
    """The bundled synthetic store written back as AutoTTS JSON (same layout as the real
    ``replay/autotts`` folder)."""
    return write_autotts_json(synthetic_store, tmp_path_factory.mktemp("synthetic_json"))


@pytest.fixture(scope="session")
def reference_rows() -> list[dict]:
    import csv

    if not REFERENCE_TABLE.is_file():
        _missing(REFERENCE_TABLE)
    with open(REFERENCE_TABLE, newline="") as f:
        return list(csv.DictReader(f))
