"""Where data comes from (open_store), `autotts data info`, the download code against a
local HTTP server, and the synthetic generator against the real statistics."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from autotts_cli.main import main as cli_main
from autotts_gym.data import describe_source, open_store, user_cache_dir
from autotts_gym.download import RELEASE_SHA256, DownloadError, download_release, fetch
from autotts_gym.store import ReplayStore, StoreError, read_attrs
from autotts_gym.synthetic import CALIBRATED, fit, generate_set, measure


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test sees the real user cache or a replay dir from the environment."""
    for var in ("AUTOTTS_REPLAY_DIR", "AUTOTTS_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _mini_store(root: Path, store_dir: Path, model="Qwen3-4B", bench="aime24") -> Path:
    (root / model).mkdir(parents=True)
    shutil.copy(store_dir / model / f"{bench}.h5", root / model / f"{bench}.h5")
    return root


# ----------------------------------------------------------------------------- open_store


def test_resolution_order(tmp_path, monkeypatch, synthetic_store_dir):
    a = _mini_store(tmp_path / "a", synthetic_store_dir, bench="aime24")
    b = _mini_store(tmp_path / "b", synthetic_store_dir, bench="aime25")
    cache = tmp_path / "cache"
    _mini_store(cache / "store", synthetic_store_dir, bench="hmmt25")
    monkeypatch.setenv("AUTOTTS_REPLAY_DIR", str(b))
    monkeypatch.setenv("AUTOTTS_CACHE_DIR", str(cache))

    s = open_store(a)  # explicit argument beats everything
    assert (s.root, s.origin, s.keys()) == (a, "argument", [("Qwen3-4B", "aime24")])
    s = open_store()  # then the environment variable
    assert (s.root, s.origin, s.keys()) == (b, "$AUTOTTS_REPLAY_DIR", [("Qwen3-4B", "aime25")])
    monkeypatch.delenv("AUTOTTS_REPLAY_DIR")
    s = open_store()  # then the user cache
    assert (s.root, s.origin, s.keys()) == (cache / "store", "user cache",
                                            [("Qwen3-4B", "hmmt25")])
    shutil.rmtree(cache / "store" / "Qwen3-4B")
    s = open_store()  # an empty cache falls through to the bundled synthetic default
    assert s.origin == "bundled default"
    assert s.keys() and all(rs.synthetic for rs in s)
    assert all(rs.synthetic for rs in s)
    assert describe_source(s).startswith("synthetic replay data")
    assert "SYNTHETIC" in describe_source(s)


def test_user_cache_location(tmp_path, monkeypatch):
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "autotts-gym"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "autotts-gym"
    monkeypatch.setenv("AUTOTTS_CACHE_DIR", str(tmp_path / "mine"))
    assert user_cache_dir() == tmp_path / "mine"


def test_json_folder_is_imported_once_into_the_cache(tmp_path, monkeypatch, synthetic_json_dir):
    src = tmp_path / "json" / "Qwen3-1.7B"
    src.mkdir(parents=True)
    shutil.copy(synthetic_json_dir / "Qwen3-1.7B" / "aime25.json", src / "aime25.json")
    monkeypatch.setenv("AUTOTTS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AUTOTTS_REPLAY_DIR", str(src.parent))
    s = open_store()
    assert s.root.parent == tmp_path / "cache" / "imported"
    assert s.source == src.parent.resolve() and s.keys() == [("Qwen3-1.7B", "aime25")]
    assert describe_source(s).startswith("real replay data (1 sets) from $AUTOTTS_REPLAY_DIR")
    h5 = s.path("Qwen3-1.7B", "aime25")
    before = (h5.stat().st_mtime_ns, h5.stat().st_ino)
    s2 = open_store(src.parent)
    assert s2.root == s.root
    assert (h5.stat().st_mtime_ns, h5.stat().st_ino) == before
    # a different folder gets a different cache store
    other = tmp_path / "json2"
    shutil.copytree(src.parent, other)
    assert open_store(other).root != s.root


def test_bad_directories_are_named(tmp_path, monkeypatch):
    with pytest.raises(StoreError, match=re.escape(f"{tmp_path / 'nope'} (from argument)")):
        open_store(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("AUTOTTS_REPLAY_DIR", str(tmp_path / "empty"))
    with pytest.raises(StoreError, match=r"from \$AUTOTTS_REPLAY_DIR\): neither an HDF5 store"):
        open_store()


# ----------------------------------------------------------------------------- data info


def test_data_info_on_the_real_store(real_store_dir, replay_json_dir, capsys):
    assert cli_main(["data", "info", str(real_store_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"real replay data (9 sets) from argument: {real_store_dir}")
    assert "3 models, 3 benchmarks, 9 replay sets" in out
    readme = (replay_json_dir.parent / "README.md").read_text()
    for f in sorted(replay_json_dir.glob("*/*.json")):
        raw = json.loads(f.read_text())
        tokens = np.array([b[1] for p in raw for b in p["each_branch"]])
        depth = np.array([len(b[0]) for p in raw for b in p["each_branch"]])
        block = out.split(f"{f.parent.name}/{f.stem}  [real]\n")[1].split("\n\n")[0]
        assert f"problems {len(raw)}  branches/problem 128  (total {len(tokens):,})" in block
        assert (f"tokens/branch  mean {tokens.mean():,.0f}  median {np.median(tokens):,.0f}"
                f"  min {tokens.min():,}  max {tokens.max():,}") in block
        assert f"depth (probes) mean {depth.mean():,.0f}" in block
        sha = re.search(rf"([0-9a-f]{{64}})\s+{re.escape(f.parent.name)}/{f.stem}\.json",
                        readme).group(1)
        assert f"sha256 {sha}" in block


def test_data_info_and_import_errors_exit_nonzero(tmp_path, capsys):
    assert cli_main(["data", "info", str(tmp_path / "missing")]) == 1  # a StoreError
    assert f"{tmp_path / 'missing'} (from argument): no such file" in capsys.readouterr().err
    assert cli_main(["data", "import", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "no '<model>/<benchmark>.json' files found" in capsys.readouterr().err


# ----------------------------------------------------------------------------- download


class _Handler(SimpleHTTPRequestHandler):
    """Serves a folder with HTTP Range support; can cut one response short."""

    log: list[tuple[str, str | None]]
    cut: dict[str, int]  # path -> bytes to send before dropping the connection (once)

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.log.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        n = self.cut.pop(self.path, None)
        self.wfile.write(body if n is None else body[:n])
        if n is not None:
            self.close_connection = True


@contextmanager
def _server(root: Path, cut: dict[str, int] | None = None):
    handler = type("H", (_Handler,), {"log": [], "cut": dict(cut or {})})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.log
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_release_end_to_end_via_cli(tmp_path, replay_json_dir, capsys):
    cache = tmp_path / "cache"
    with _server(replay_json_dir.parent) as (url, log):
        rc = cli_main(["data", "download", "--base-url", f"{url}/autotts", "--cache", str(cache)])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p for p, _ in log) == sorted(f"/autotts/{n}" for n in RELEASE_SHA256)
    store = ReplayStore(cache / "store")
    keys = store.keys()
    assert len(keys) == 9
    for m, b in keys:
        assert read_attrs(store.path(m, b))["source_sha256"] == RELEASE_SHA256[f"{m}/{b}.json"]
    assert list(cache.rglob("*.part")) == []


def _sums(json_dir: Path) -> dict[str, str]:
    return {f"{p.parent.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in json_dir.glob("*/*.json")}


def test_interrupted_download_resumes_with_range(tmp_path, synthetic_json_dir):
    name = "Qwen3-0.6B/hmmt25.json"
    src = synthetic_json_dir / name
    cut = src.stat().st_size // 2
    cache = tmp_path / "cache"
    sums = _sums(synthetic_json_dir)
    with _server(synthetic_json_dir, cut={f"/{name}": cut}) as (url, log):
        with pytest.raises(DownloadError, match=rf"interrupted after {cut} of \d+ bytes"):
            download_release(cache, base_url=url, files=[name], sha256=sums)
        part = cache / "downloads" / (name + ".part")
        assert part.stat().st_size == cut
        results = download_release(cache, base_url=url, files=[name], sha256=sums)
    assert log == [(f"/{name}", None), (f"/{name}", f"bytes={cut}-")]
    done = cache / "downloads" / name
    assert done.read_bytes() == src.read_bytes() and not part.exists()
    assert [(r.model, r.benchmark, r.skipped) for r in results] == [("Qwen3-0.6B", "hmmt25",
                                                                     False)]


def test_complete_part_file_is_finished_without_refetching(tmp_path, synthetic_json_dir):
    name = "Qwen3-4B/aime24.json"
    data = (synthetic_json_dir / name).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    part = tmp_path / "x.json.part"
    part.write_bytes(data)
    with _server(synthetic_json_dir) as (url, log):
        fetch(f"{url}/{name}", tmp_path / "x.json", sha)
        assert log == [(f"/{name}", f"bytes={len(data)}-")]  # answered 416: nothing left
        fetch(f"{url}/{name}", tmp_path / "x.json", sha)
        assert len(log) == 1  # a verified file is not fetched again
    assert (tmp_path / "x.json").read_bytes() == data and not part.exists()


def test_checksum_mismatch_names_file_expected_and_got(tmp_path, synthetic_json_dir):
    name = "Qwen3-1.7B/aime24.json"
    wrong = "0" * 64
    got = hashlib.sha256((synthetic_json_dir / name).read_bytes()).hexdigest()
    with _server(synthetic_json_dir) as (url, _), pytest.raises(DownloadError) as e:
        download_release(tmp_path, base_url=url, files=[name], sha256={name: wrong})
    msg = str(e.value)
    assert "aime24.json" in msg and f"{url}/{name}" in msg
    assert f"expected {wrong}, got {got}" in msg
    assert list((tmp_path / "downloads").rglob("*.json*")) == []
    assert not (tmp_path / "store").exists()


def test_http_404_names_the_url(tmp_path, synthetic_json_dir):
    name = "Qwen3-9B/aime24.json"
    with _server(synthetic_json_dir) as (url, _):
        with pytest.raises(DownloadError, match=re.escape(f"{url}/{name}: HTTP 404")):
            download_release(tmp_path, base_url=url, files=[name], sha256=None)


def test_unreachable_server_names_the_url(tmp_path):
    with _server(tmp_path) as (url, _):
        pass  # the port is closed again
    with pytest.raises(DownloadError, match=re.escape(f"{url}/a/b.json: cannot connect")):
        download_release(tmp_path, base_url=url, files=["a/b.json"], sha256=None)


def test_embedded_sums_match_the_published_readme(replay_json_dir):
    readme = (replay_json_dir.parent / "README.md").read_text()
    published = {m.group(2): m.group(1) for m in
                 re.finditer(r"^([0-9a-f]{64})\s+(\S+\.json)$", readme, re.MULTILINE)}
    assert published == RELEASE_SHA256


# ----------------------------------------------------------------------------- synthetic

# (statistic, absolute tolerance, relative tolerance): |syn - real| <= abs + rel * real
TOLERANCES = [
    ("majority_correct", 0.15, 0.0), ("branch_acc", 0.08, 0.0), ("agreement", 0.08, 0.0),
    ("distinct_finals", 0.0, 0.25), ("depth_q10", 5.0, 0.0), ("depth_q50", 0.0, 0.2),
    ("depth_q90", 0.0, 0.15), ("depth_max_share", 0.01, 0.0), ("mean_tokens", 0.0, 0.1),
    ("tokens_below", 0.05, 0.0), ("tokens_above", 0.08, 0.0), ("err_rate", 0.03, 0.0),
    ("final_share", 0.06, 0.0), ("changes", 0.0, 0.15), ("distinct_probe_answers", 0.0, 0.2),
]


@pytest.fixture(scope="module")
def bundled():
    from autotts_gym.data import bundled_store_dir

    return ReplayStore(bundled_store_dir())


@pytest.mark.parametrize("model", ["Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B"])
def test_bundled_synthetic_matches_real_statistics(model, real_store, bundled):
    real = measure(real_store.select(model))
    syn = measure(bundled.select(model))
    bad = {k: (round(syn[k], 3), round(real[k], 3)) for k, a, r in TOLERANCES
           if abs(syn[k] - real[k]) > a + r * abs(real[k])}
    assert not bad, f"synthetic vs real outside tolerance: {bad}"


def test_bundled_store_is_complete_and_labelled_synthetic(bundled):
    assert bundled.keys() == sorted(CALIBRATED)
    keys = bundled.keys()
    for m, b in keys:
        attrs = read_attrs(bundled.path(m, b))
        assert attrs["synthetic"] and "autotts_gym.synthetic" in attrs["source_file"]
        rs = bundled.load(m, b)
        assert len(rs) == 30 and {p.n_branches for p in rs.problems} == {128}
    size = sum(p.stat().st_size for p in bundled.root.rglob("*.h5"))
    assert size < 5_000_000


def test_calibration_table_is_fitted_on_the_real_data(real_store):
    for rs in real_store:
        fitted, table = asdict(fit(measure(rs))), asdict(CALIBRATED[rs.key])
        for k, v in fitted.items():
            assert table[k] == pytest.approx(v, rel=1e-3, abs=1e-4), (rs.key, k)


def test_generator_is_deterministic_given_seed(tmp_path):
    params = CALIBRATED[("Qwen3-1.7B", "aime25")]

    def arrays(seed):
        rs = generate_set(params, "synthetic-x", "b", n_problems=3, n_branches=16, seed=seed)
        return [(p.gold_answer, p.vocab, p.n_probes.tolist(), p.tokens.tolist(),
                 p.final.tolist(), p.probe_answers.tolist()) for p in rs.problems]

    assert arrays(1) == arrays(1)
    assert arrays(1) != arrays(2)
    rs = generate_set(params, "synthetic-x", "b", n_problems=3, n_branches=16, seed=1)
    assert rs.synthetic
    for p in rs.problems:
        for b in range(p.n_branches):
            pr = p.branch_probes(b)
            assert 3 <= len(pr) <= 80 and pr[-1] == p.final[b]
