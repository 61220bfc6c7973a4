"""The jail's seccomp filters, compiled to BPF with libseccomp (through ``pyseccomp``).

:func:`seccomp_program` is the whole jail's (bwrap installs it): allowed by default;
refused with EPERM: sockets, ptrace and cross-process memory access, namespaces and
mounts, kernel keyrings, BPF, perf events, userfaultfd, io_uring, module and kexec
loading, reboot, swap, accounting, quotas, handle-based opens and the kernel log. The
jail's zygote may fork (it runs no candidate code).

:func:`worker_program` is added on top in every worker (the process that runs candidate
code; filters only add up): no new processes or threads (clone3 answers ENOSYS so the C
library falls back to clone, which is refused), no System V or POSIX IPC objects, no
signals, pidfds or process comparisons, and no changes to another process's resource
limits or scheduling, and no fcntl that sets an owner, signal, lease, notification or
pipe size (anything a later worker, forked from the same zygote, could inherit or see;
the zygote puts back the data pipes' file flags itself). Syscalls of any other
architecture kill the process (libseccomp's default for a foreign architecture).
"""

from __future__ import annotations

import errno
import functools
import tempfile

from autotts_gym.errors import AutoTTSError

DENIED = (
    "socket", "socketpair", "ptrace", "process_vm_readv",
    "process_vm_writev", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "quotactl", "open_by_handle_at", "name_to_handle_at", "syslog",
    "mknod", "mknodat", "fanotify_init", "move_mount", "open_tree", "fsopen", "fsmount",
    "fsconfig", "fspick", "mount_setattr",
)
WORKER_DENIED = (
    "fork", "vfork", "clone", "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd",
    "msgrcv", "msgctl", "semget", "semop", "semtimedop", "semctl", "mq_open", "mq_unlink",
    "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr", "kill", "tkill",
    "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open", "pidfd_getfd",
    "pidfd_send_signal", "kcmp", "process_madvise", "process_mrelease", "setpriority",
    "sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr",
    "ioprio_set", "migrate_pages", "move_pages",
)


FCNTL_DENIED = (8, 10, 15, 1024, 1026, 1031)
"""fcntl commands a worker may not use: F_SETOWN, F_SETSIG, F_SETOWN_EX, F_SETLEASE,
F_NOTIFY, F_SETPIPE_SZ (state of an open pipe that outlives the worker)."""


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes:
    """The jail's filter as a BPF program (what ``bwrap --seccomp FD`` reads)."""
    return _compile(DENIED, worker=False)


@functools.lru_cache(maxsize=1)
def worker_program() -> bytes:
    """The worker's added filter as a BPF program (installed by the worker itself)."""
    return _compile(DENIED + WORKER_DENIED, worker=True)


def _compile(denied: tuple[str, ...], worker: bool) -> bytes:
    from autotts_discovery.jail import JailUnavailable

    try:
        import pyseccomp as sc

        f = sc.SyscallFilter(sc.ALLOW)
    except (ImportError, OSError, RuntimeError) as e:
        raise JailUnavailable(f"cannot make a sandbox jail: no seccomp compiler ({e}); "
                              "pip install pyseccomp and install libseccomp2") from None
    try:
        for name in denied:
            try:
                f.add_rule(sc.ERRNO(errno.EPERM), name)
            except (ValueError, OSError, RuntimeError):
                pass  # a syscall this architecture does not have
        if worker:  # its own limits only (pid 0); clone3 falls back to the refused clone
            f.add_rule(sc.ERRNO(errno.EPERM), "prlimit64", sc.Arg(0, sc.NE, 0))
            f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
            for cmd in FCNTL_DENIED:  # attributes of descriptions the next worker shares
                f.add_rule(sc.ERRNO(errno.EPERM), "fcntl", sc.Arg(1, sc.EQ, cmd))
        with tempfile.TemporaryFile() as out:
            f.export_bpf(out)
            out.flush()
            out.seek(0)
            return out.read()
    except AutoTTSError:
        raise
    except Exception as e:  # noqa: BLE001 (any libseccomp failure refuses the jail)
        raise JailUnavailable(f"cannot make a sandbox jail: compiling the seccomp filter "
                              f"failed: {type(e).__name__}: {e}") from None
