"""Red team: hostile controllers against the jail, on a world-readable copy of the store.

Every controller ends in a failed verdict (a typed kind, a short message) or an honest
score, and leaves nothing behind: no jailed process, no marker file, no connection to the
host's listeners. The static check is off here: the jail is the boundary.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest
from sandbox_util import (
    MARKERS,
    assert_nothing_left,
    ctl,
    jail_processes,
    need_jail,
    peek,
    readable_copy,
)

from autotts_discovery.sandbox import Limits, evaluate_in_sandbox
from autotts_gym.harness import FailureKind as K

LIMITS = Limits(cpu_seconds=8, memory_mb=400, wall_seconds=60, reply_seconds=5,
                load_seconds=8, max_queries=5_000, max_steps=2_000)
OK = "ok"  # an honest score: evaluation succeeded, no answer was found by peeking


@pytest.fixture(scope="module")
def world(tmp_path_factory, synthetic_store_dir):
    """The attacker's world: a world-readable store, the gold answers in world-readable
    JSON, a TCP and a unix listener on the host, and a process of another owner."""
    need_jail()
    from autotts_gym.store import ReplayStore

    base = tmp_path_factory.mktemp("world")
    store_dir = readable_copy(synthetic_store_dir, base / "store")
    store = ReplayStore(store_dir)
    gold = {f"{rs.model}/{rs.benchmark}": [p.gold_answer for p in rs.problems]
            for rs in store.select(None, None)}
    gold_json = base / "gold.json"
    gold_json.write_text(json.dumps(gold))
    os.chmod(gold_json, 0o644)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.settimeout(0.2)
    unix_path = str(base / "listener.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    os.chmod(unix_path, 0o777)
    unix.listen(8)
    unix.settimeout(0.2)
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield {"store": store, "store_dir": store_dir, "gold_json": gold_json, "gold": gold,
           "tcp_port": tcp.getsockname()[1], "unix_path": unix_path, "victim": victim,
           "tcp": tcp, "unix": unix}
    victim.kill()
    victim.wait()
    tcp.close()
    unix.close()


def _attacks(w: dict) -> dict[str, tuple[str, set]]:
    """name -> (controller code, accepted outcomes)."""
    store_file = next(w["store_dir"].rglob("*.h5"))
    from autotts_gym.data import bundled_store_dir

    bundled = next(bundled_store_dir().rglob("*.h5"))
    marker = str(MARKERS[0])
    return {
        # -- peeking for gold answers (the 6 of the old suite and more)
        "gc_objects": (peek("""
            import gc
            found = [o.get("gold_answer") for o in gc.get_objects()
                     if isinstance(o, dict) and "gold_answer" in o][:1]
            """), {OK}),
        "frames": (peek("""
            import sys
            f = sys._getframe()
            while f is not None:
                for v in f.f_locals.values():
                    if hasattr(v, "gold_answer"):
                        found = v.gold_answer
                f = f.f_back
            """), {OK}),
        "session_introspection": (peek("""
            for name in dir(session):
                v = getattr(session, name, None)
                for inner in getattr(v, "__dict__", {}).values():
                    if hasattr(inner, "gold_answer") or hasattr(inner, "_ans"):
                        found = repr(inner)
            """), {OK}),
        "store_loader": (peek("""
            from autotts_gym.data import open_store
            found = open_store().select()[0].problems[0].gold_answer
            """), {OK}),
        "replay_store_class": (peek(f"""
            from autotts_gym.store import ReplayStore
            found = ReplayStore({str(w['store_dir'])!r}).select()[0].problems[0].gold_answer
            """), {OK}),
        "h5py_external": (peek(f"""
            import h5py
            found = h5py.File({str(store_file)!r})["gold_answer"][0]
            """), {OK}),
        "read_store_file": (peek(f"found = open({str(store_file)!r}, 'rb').read(64)"), {OK}),
        "read_bundled_store": (peek(f"found = open({str(bundled)!r}, 'rb').read(64)"), {OK}),
        "read_gold_json": (peek(f"found = open({str(w['gold_json'])!r}).read(100)"), {OK}),
        "ctypes_open": (peek(f"""
            import ctypes
            libc = ctypes.CDLL(None)
            fd = libc.open({str(w['gold_json']).encode()!r}, 0)
            found = ('opened' if fd >= 0 else None)
            """), {OK}),
        "synthetic_generator": (peek("""
            from autotts_gym import synthetic
            found = str(synthetic)
            """), {OK}),
        "environment": (peek("""
            import os
            found = os.environ.get("AUTOTTS_REPLAY_DIR") or os.environ.get("AUTOTTS_SHARED")
            """), {OK}),
        "host_proc": (peek("found = open('/proc/1/environ', 'rb').read(100)"), {OK}),
        "walk_for_data": (peek("""
            import os
            if not FOUND:  # walk once per jail (every path but /usr)
                for root, dirs, files in os.walk("/"):
                    dirs[:] = [d for d in dirs if root != "/" or d != "usr"]
                    FOUND.extend(os.path.join(root, f) for f in files
                                 if f.endswith((".h5", ".hdf5", ".json")))
                FOUND.append("")
            found = ",".join(FOUND)
            """, head="FOUND = []"), {OK}),
        "pickle_reduce_answer": (ctl(f"""
            class Evil(str):
                def __reduce__(self):
                    return (eval, ("open({marker!r}, 'w').write('x')",))
            return Evil(session.open()[0])
            """), {OK}),
        "patch_session_tokens": (ctl("""
            type(session).tokens = property(lambda s: 0.0)
            answers = [session.read() for _ in range(4)]
            return answers[0]
            """), {OK}),
        # -- leaving the jail
        "write_markers": (ctl("""
            for d in ("/tmp", "/var/tmp", "/dev/shm"):
                try:
                    open(d + "/autotts_redteam_marker", "w").write("x")
                except OSError:
                    pass
            return session.open()[0]
            """), {OK}),
        "tcp_connect": (ctl(f"""
            import socket
            socket.create_connection(("127.0.0.1", {w['tcp_port']}), timeout=1)
            return "x"
            """), {K.RUNTIME_ERROR}),
        "unix_connect": (ctl(f"""
            import socket
            s = socket.socket(socket.AF_UNIX)
            s.connect({w['unix_path']!r})
            return "x"
            """), {K.RUNTIME_ERROR}),
        "subprocess": (ctl(f"""
            import subprocess
            subprocess.run(["sh", "-c", "id > {marker}"])
            return "x"
            """), {K.RUNTIME_ERROR}),
        "fork_bomb": (ctl("import os\nwhile True:\n    os.fork()\n"), {K.RUNTIME_ERROR}),
        "kill_host_process": (ctl(f"""
            import os
            os.kill({w['victim'].pid}, 9)
            return "x"
            """), {K.RUNTIME_ERROR}),
        "kill_everything": (ctl("import os, signal\nos.kill(-1, signal.SIGKILL)\nreturn 'x'\n"),
                            {OK, K.CRASH, K.RUNTIME_ERROR}),
        "kill_parent": (ctl("import os\nos.kill(os.getppid(), 9)\nreturn session.open()[0]\n"),
                        {OK, K.CRASH, K.RUNTIME_ERROR}),
        "setuid_root": (ctl("import os\nos.setuid(0)\nreturn 'x'\n"), {K.RUNTIME_ERROR}),
        "unshare": (ctl("""
            import ctypes
            if ctypes.CDLL(None).unshare(0x10000000) != 0:
                raise OSError("unshare refused")
            return "x"
            """), {K.RUNTIME_ERROR}),
        "ptrace_init": (ctl("""
            import ctypes
            return str(ctypes.CDLL(None).ptrace(16, 1, 0, 0))
            """), {OK}),
        # -- limits per jail
        "endless_loop": (ctl("while True:\n    pass\n"), {K.TIMEOUT}),
        "memory_bomb": (ctl("x = []\nwhile True:\n    x.append(bytearray(50_000_000))\n"),
                        {K.MEMORY}),
        "fill_work_dir": (ctl("""
            import os
            try:
                with open("big", "wb") as f:
                    while True:
                        f.write(b"x" * (1 << 20))
            except OSError:
                pass
            return session.open()[0]
            """), {OK}),
        "answer_100mb": (ctl("return 'x' * 100_000_000\n"), {K.BAD_RETURN, K.MEMORY}),
        "answer_2mb": (ctl("return 'x' * 2_000_000\n"), {K.BAD_RETURN}),
        "error_40mb": (ctl("raise ValueError('e' * 40_000_000)\n"), {K.RUNTIME_ERROR}),
        "bytes_answer": (ctl("return b'12'\n"), {K.BAD_RETURN}),
        "set_answer": (ctl("return {'12'}\n"), {K.BAD_RETURN}),
        "int_answer": (ctl("session.open()\nreturn 12\n"), {K.BAD_RETURN}),
        "step_flood": (ctl("while True:\n    session.probe(0) if session.n_opened else "
                           "session.open()\n"), {K.STEP_LIMIT}),
        "query_flood": (ctl("session.open()\nwhile True:\n    session.depth(0)\n"),
                        {K.STEP_LIMIT}),
        # -- the protocol, attacked from inside
        "protocol_garbage": (ctl("""
            import json, os, sys
            fd = json.loads(sys.argv[1])["out_fd"]
            os.write(fd, os.urandom(4096) + b"\\n")
            return session.open()[0]
            """), {K.PROTOCOL}),
        "protocol_forged_answers": (ctl("""
            import json, os, sys
            fd = json.loads(sys.argv[1])["out_fd"]
            done = [[i, "7"] for i in range(30)]
            os.write(fd, json.dumps({"t": "batch", "g": 0, "calls": [], "done": done})
                     .encode() + b"\\n")
            return session.open()[0]
            """), {OK, K.PROTOCOL}),
        "protocol_giant_frame": (ctl("""
            import json, os, sys
            fd = json.loads(sys.argv[1])["out_fd"]
            for _ in range(40):
                os.write(fd, b"x" * (1 << 16))
            return "x"
            """), {K.PROTOCOL}),
        "protocol_close_then_sleep": (ctl("""
            import json, os, sys, time
            os.close(json.loads(sys.argv[1])["out_fd"])
            time.sleep(60)
            """), {K.TIMEOUT, K.CRASH}),
        "protocol_bad_call": (ctl("""
            import greenlet
            greenlet.getcurrent().parent.switch((0, "__class__", []))
            return "x"
            """), {K.PROTOCOL}),
        "protocol_foreign_episode": (ctl("""
            import greenlet
            greenlet.getcurrent().parent.switch((10**9, "open", []))
            return "x"
            """), {K.PROTOCOL}),
        "exit_zero": (ctl("import os\nos._exit(0)\n"), {K.CRASH}),
        "sys_exit": (ctl("import sys\nsys.exit(0)\n"), {K.RUNTIME_ERROR}),
        # -- loading
        "make_controller_raises": ("def make_controller(beta):\n    raise KeyError(beta)\n",
                                   {K.LOAD}),
        "syntax_error": ("def make_controller(beta:\n", {K.LOAD}),
        "import_time_loop": ("while True:\n    pass\n", {K.TIMEOUT}),
    }


def test_at_least_thirty_attacks(world):
    assert len(_attacks(world)) >= 30


ATTACKS = [
    "gc_objects", "frames", "session_introspection", "store_loader", "replay_store_class",
    "h5py_external", "read_store_file", "read_bundled_store", "read_gold_json", "ctypes_open",
    "synthetic_generator", "environment", "host_proc", "walk_for_data",
    "pickle_reduce_answer", "patch_session_tokens", "write_markers", "tcp_connect",
    "unix_connect", "subprocess", "fork_bomb", "kill_host_process", "kill_everything",
    "kill_parent", "setuid_root", "unshare", "ptrace_init", "endless_loop", "memory_bomb",
    "fill_work_dir", "answer_100mb", "answer_2mb", "error_40mb", "bytes_answer",
    "set_answer", "int_answer", "step_flood", "query_flood", "protocol_garbage",
    "protocol_forged_answers", "protocol_giant_frame", "protocol_close_then_sleep",
    "protocol_bad_call", "protocol_foreign_episode", "exit_zero", "sys_exit",
    "make_controller_raises", "syntax_error", "import_time_loop",
]


@pytest.mark.parametrize("name", ATTACKS)
def test_hostile_controller(name, world):
    code, accepted = _attacks(world)[name]
    before = set(jail_processes())
    res = evaluate_in_sandbox(code, world["store"], models="Qwen3-4B", benchmarks="aime24",
                              seeds=[0], betas=(0.5,), limits=LIMITS, method=name)
    outcome = OK if res.ok else res.kind
    assert outcome in accepted, (name, outcome, res.message)
    assert len(res.message) <= LIMITS.max_error_chars and res.message.isprintable()
    if res.ok:  # an honest score: nothing found, every token charged
        golds = set(world["gold"]["Qwen3-4B/aime24"])
        assert len(res.results.records) == 30
        for r in res.results.records:
            assert r.answer is None or len(r.answer) <= LIMITS.max_answer_chars
            assert not (r.correct and r.tokens == 0), r  # no free correct answer
            assert not any(x in (r.answer or "") for x in ("/tmp/", ".h5", "gold", "HDF"))
        if name.startswith(("gc_", "frames", "session_", "store_", "replay_", "h5py",
                            "read_", "ctypes", "synthetic", "environment", "host_proc",
                            "walk_")):
            assert not any(r.answer in golds for r in res.results.records)
    assert_nothing_left(before)
    assert world["victim"].poll() is None, "a host process was killed"
    for listener in (world["tcp"], world["unix"]):
        with pytest.raises(socket.timeout):
            listener.accept()


def test_patched_session_is_charged_in_full(world):
    """Rebinding the proxy's ``tokens`` changes nothing the parent counts."""
    from autotts_gym.core import Episode

    code, _ = _attacks(world)["patch_session_tokens"]
    res = evaluate_in_sandbox(code, world["store"], models="Qwen3-4B", benchmarks="aime24",
                              seeds=[0], betas=(0.5,), limits=LIMITS)
    assert res.ok
    rs = world["store"].load("Qwen3-4B", "aime24")
    for r in res.results.records:
        ep = Episode.from_seed(rs.problems[r.problem], 0)
        for _ in range(4):
            ep.read()
        assert r.tokens == ep.tokens > 0


def test_sigkill_of_the_evaluator_leaves_nothing(tmp_path, synthetic_store_dir):
    """SIGKILL the evaluating process mid-run: within 2 s no jail process is left, and no
    folder (the jail's work dir is a tmpfs inside it; its output file is unlinked)."""
    need_jail()
    import time

    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        "from autotts_gym.store import ReplayStore\n"
        "from autotts_discovery.sandbox import evaluate_in_sandbox, Limits\n"
        "code = 'class C:\\n    def solve(self, s):\\n        import time\\n"
        "        time.sleep(30)\\n\\ndef make_controller(b):\\n    return C()\\n'\n"
        "print('start', flush=True)\n"
        f"evaluate_in_sandbox(code, ReplayStore({str(synthetic_store_dir)!r}), "
        "models='Qwen3-4B', seeds=[0], betas=(0.5,), limits=Limits(reply_seconds=60))\n")
    tmp_before = set(os.listdir("/tmp"))
    before = set(jail_processes())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=root,
                            env={**os.environ, "PYTHONPATH": root}, stdout=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"start")
    deadline = time.monotonic() + 60
    while not [p for p in jail_processes() if p not in before]:
        assert time.monotonic() < deadline, "the jail never started"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_nothing_left(before, seconds=2.0)
    new = {n for n in set(os.listdir("/tmp")) - tmp_before if n.startswith("autotts")}
    assert not new, new


def test_concurrent_jails_have_distinct_uids(world):
    """Two evaluations at once: two jails, two uids (as root: fresh, unshared uids)."""
    code = ctl("return session.open()[0]")
    out = []

    def run():
        out.append(evaluate_in_sandbox(code, world["store"], models="Qwen3-4B",
                                       benchmarks="aime24", seeds=[0], betas=(0.5,),
                                       limits=LIMITS))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in out)
    if os.geteuid() == 0:
        uids = {r.jail["uid"] for r in out}
        assert len(uids) == 2 and all(u >= 1_000_000 for u in uids)
