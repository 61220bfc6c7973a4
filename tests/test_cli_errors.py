"""The command line's one error path: every bad input ends in one line naming the thing and
the problem, exit 2 for usage errors and 1 for failures, no traceback; outputs are checked
before the work starts; one writer per output directory."""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autotts_cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--models", "Qwen3-4B", "--benchmarks", "aime24", "--seeds", "0", "--betas", "0.5",
         "--baselines", "", "--no-progress"]


@pytest.fixture
def ws(tmp_path, monkeypatch, synthetic_store_dir):
    """A working folder with the usual mistakes lying around; the bundled store is the data."""
    for var in ("AUTOTTS_REPLAY_DIR", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AUTOTTS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("x")
    Path("empty").mkdir()
    Path("q.jsonl").write_text('{"question": "1+1?", "answer": "2"}\n')
    Path("deep").mkdir()
    (Path("deep") / "m").mkdir()
    (Path("deep") / "m" / "b.json").write_text("[" * 100_000 + "]" * 100_000)
    big = [{"question": "q", "gold_answer": "1", "probe_freq": 500,
            "final_answers_trace": ["1"], "each_branch": [[["1"], 2**70, "1"]]}]
    Path("big").mkdir()
    (Path("big") / "m").mkdir()
    (Path("big") / "m" / "b.json").write_text(json.dumps(big))
    Path("bad.yaml").write_text("env: macro\n")
    return tmp_path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = _closed_port()
COLLECT = ["collect", "--base-url", f"http://127.0.0.1:{PORT}/v1", "--model", "m",
           "--questions", "q.jsonl", "--no-progress"]
EVAL = ["eval", "--controller", "sc64"]

# (argv, exit code, words the error line must contain)
CASES = [
    # outputs, checked before any work
    ([*EVAL, "--out", "afile"], 2, "--out afile: is a file, not a directory"),
    ([*EVAL, "--out", "afile/sub"], 2, "afile is a file"),
    ([*EVAL, "--out", "/proc/autotts-out"], 2, "--out /proc/autotts-out: cannot write in"),
    (["sweep", "--controller", "cmc", "--out", "afile"], 2, "is a file"),
    (["reproduce", "--out", "afile"], 2, "--out afile: is a file"),
    (["compare", "--out", "afile"], 2, "--out afile: is a file"),
    (["train", "--out", "afile"], 2, "--out afile: is a file"),
    ([*COLLECT, "--out", "afile"], 2, "--out afile: is a file"),
    (["data", "import", "deep", "--out", "afile"], 2, "--out afile: is a file"),
    (["data", "download", "--cache", "afile"], 2, "--cache afile: is a file"),
    # numeric flags and lists
    ([*EVAL, "--out", "o", "--workers", "0"], 2, "argument --workers: expected a whole number"),
    ([*EVAL, "--out", "o", "--max-steps", "-1"], 2, "argument --max-steps"),
    ([*EVAL, "--out", "o", "--seeds", "0-999999999"], 2, "1,000,000,000 seeds; at most 100,000"),
    ([*EVAL, "--out", "o", "--seeds", "abc"], 2, "'abc' is not a seed"),
    ([*EVAL, "--out", "o", "--seeds", "9-3"], 2, "the range '9-3' is empty"),
    ([*EVAL, "--out", "o", "--seeds", "1,2,1"], 2, "seed 1 is given twice"),
    ([*EVAL, "--out", "o", "--benchmarks", ""], 2, "argument --benchmarks: no names in ''"),
    ([*EVAL, "--out", "o", "--models", ","], 2, "argument --models: no names in ','"),
    ([*EVAL, "--out", "o", "--baselines", "sc64,nope"], 2, "unknown name 'nope'"),
    ([*EVAL, "--out", "o", "--betas", "1.5"], 2, "every beta must lie in [0, 1]"),
    ([*EVAL, "--out", "o", "--betas", "low"], 2, "expected numbers separated by commas"),
    (["compare", "--out", "o", "--workers", "-3"], 2, "argument --workers"),
    (["compare", "--out", "o", "--seeds", "0-200000"], 2, "at most 100,000"),
    ([*COLLECT, "--out", "o", "--n", "0"], 2, "argument --n"),
    ([*COLLECT, "--out", "o", "--timeout", "0"], 2, "argument --timeout"),
    ([*COLLECT, "--out", "o", "--temperature", "nan"], 2, "argument --temperature"),
    (["data", "generate-synthetic", "--out", "o", "--seed", "-1"], 2, "argument --seed"),
    (["nosuchcommand"], 2, "invalid choice: 'nosuchcommand'"),
    (["eval", "--controller", "sc64"], 2, "the following arguments are required: --out"),
    # data and names
    ([*EVAL[:2], "no_such_controller", "--out", "o", *SMALL], 1, "built-in names"),
    ([*EVAL, "--out", "o", "--models", "Qwen9"], 1, "no replay set for model Qwen9"),
    (["reproduce", "--out", "o", "--replay-dir", "missing"], 1, "missing (from argument): no such"),
    (["reproduce", "--out", "o", "--replay-dir", "empty"], 1, "neither an HDF5 store"),
    (["data", "import", "deep", "--out", "s"], 1, "b.json: JSON nested too deeply"),
    (["data", "import", "big", "--out", "s"], 1, "field 'branch_tokens' is too large"),
    (["data", "info", "missing"], 1, "missing (from argument): no such file"),
    (["train", "--config", "nope.yaml", "--out", "r"], 2, "nope.yaml: cannot read the config"),
    # downloads and servers
    (["data", "download", "--base-url", "file:///nonexistent/x"], 1, "is not a folder"),
    (["data", "download", "--base-url", "localhost:8000"], 1, "expected an http://"),
    (["data", "download", "--base-url", f"http://127.0.0.1:{PORT}/r"], 1,
     f"http://127.0.0.1:{PORT}/r/Qwen3-0.6B/aime24.json: cannot connect"),
    ([*COLLECT, "--out", "o"], 1, f"cannot reach http://127.0.0.1:{PORT}/v1"),
    (["discover", "--explorer", "anthropic", "--model", "m", "--rounds", "1", "--out", "d"], 1,
     "ANTHROPIC_API_KEY"),
]


@pytest.mark.parametrize("argv,code,words", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_gives_one_line_and_exit_code(ws, capsys, monkeypatch, argv, code, words):
    from autotts_gym.collect import runner

    class NoRetry(runner.CompletionsClient):  # the unreachable server fails at once
        def __init__(self, *a, **k):
            super().__init__(*a, **{**k, "max_retries": 0})

    monkeypatch.setattr(runner, "CompletionsClient", NoRetry)
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    name = "autotts" if argv[0].startswith("nosuch") else f"autotts {argv[0]}"
    assert last.startswith(f"{name}") and ": error: " in last, err
    assert words in last, err
    if "--out" in argv and code == 2:  # refused before the work: nothing was created
        out = argv[argv.index("--out") + 1]
        assert not Path(out).is_dir() or out in ("afile",) or list(Path(out).iterdir()) == []


@pytest.mark.parametrize("exc,words", [
    (OSError(errno.ENOSPC, "No space left on device", "out/records.jsonl"),
     "out/records.jsonl: no space left on device (disk full)"),
    (PermissionError(errno.EACCES, "Permission denied", "/etc/x"),
     "/etc/x: permission denied"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "some/dir"), "some/dir: Is a directory"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "a/b"), "a/b: Not a directory"),
    (ConnectionRefusedError(111, "Connection refused"), "cannot reach"),
    (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
    (KeyError("x"), "unexpected KeyError"),
])
def test_environment_failures_are_one_line(ws, capsys, monkeypatch, exc, words):
    import autotts_cli.commands.evaluation as ev

    def boom(args):
        raise exc

    monkeypatch.setattr(ev, "cmd_eval", boom)
    assert main([*EVAL, "--out", "o"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("autotts eval: error: ") and words in err, err
    with pytest.raises(type(exc)):  # --debug, anywhere on the line, shows the traceback
        main([*EVAL, "--out", "o", "--debug"])


def test_version_and_defaults_in_help(capsys):
    assert main(["--version"]) == 0
    from autotts_gym import __version__

    assert capsys.readouterr().out.strip() == f"autotts-gym {__version__}"

    def parsers(p):
        yield p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub in a.choices.values():
                    yield from parsers(sub)

    checked = 0
    for p in parsers(build_parser()):
        for a in p._actions:
            if a.option_strings and a.nargs != 0 and not a.required:
                shown = " ".join(p._get_formatter()._format_action(a).split())
                assert "default" in shown.lower(), (p.prog, shown)
                checked += 1
    assert checked > 40
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 0-99)" in text and "(default: 0,0.25,0.5,0.75,1)" in text


def _spawn(argv, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "autotts_cli", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_evals_into_one_directory(ws, capsys):
    """The second writer is refused at once, naming the holder; the first finishes whole."""
    argv = ["eval", "--controller", "cmc", "--out", "same", "--models", "Qwen3-4B",
            "--benchmarks", "aime24", "--seeds", "0-4", "--betas", "0,0.5,1", "--no-fast",
            "--workers", "1", "--baselines", "", "--no-progress"]
    first = _spawn(argv, ws)
    deadline = time.time() + 60
    while not (ws / "same" / ".lock").exists() and first.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("autotts eval: error: ") and "same: in use by pid" in err
    assert str(first.pid) in err
    _, errs = first.communicate(timeout=300)
    assert first.returncode == 0, errs
    records = (ws / "same" / "records.jsonl").read_text().splitlines()
    # one run's episodes (CMC at 3 betas and the SC@64 reference), not two interleaved
    assert len(records) == 30 * 5 * (3 + 1)
    assert not (ws / "same" / ".lock").exists()


def test_stale_lock_is_taken_over(ws, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (ws / "o").mkdir()
    (ws / "o" / ".lock").write_text(json.dumps({"pid": dead.pid, "command": "autotts eval"}))
    assert main([*EVAL, "--out", "o", *SMALL]) == 0
    assert f"taking over a stale lock (pid {dead.pid} is gone)" in capsys.readouterr().err
    assert (ws / "o" / "records.jsonl").is_file() and not (ws / "o" / ".lock").exists()


def test_eval_of_sc64_writes_its_episodes_once(ws):
    assert main(["eval", "--controller", "sc64", "--out", "o", "--models", "Qwen3-4B",
                 "--benchmarks", "aime24", "--seeds", "0-1", "--betas", "0.5",
                 "--no-progress"]) == 0
    rows = [json.loads(x) for x in (ws / "o" / "records.jsonl").read_text().splitlines()]
    sc = [r for r in rows if r["method"] == "SC@64"]
    assert len(sc) == 30 * 2  # not 120: the default baselines skip the evaluated controller
    assert {r["method"] for r in rows} == {"SC@64", "CMC"}  # CMC at the run's betas
