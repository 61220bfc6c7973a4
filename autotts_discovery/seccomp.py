"""The jail's seccomp filter, compiled to BPF with libseccomp (through ``pyseccomp``).

Allowed by default; refused with EPERM: new processes (fork, vfork, clone without
CLONE_THREAD; clone3 answers ENOSYS so the C library falls back to clone), sockets,
ptrace and cross-process memory access, namespaces and mounts, kernel keyrings, BPF,
perf events, userfaultfd, io_uring, module and kexec loading, reboot, swap, accounting,
quotas, handle-based opens and the kernel log. Syscalls of any other architecture kill the
process (libseccomp's default for a foreign architecture).
"""

from __future__ import annotations

import errno
import functools
import tempfile

from autotts_gym.errors import AutoTTSError

DENIED = (
    "fork", "vfork", "socket", "socketpair", "ptrace", "process_vm_readv",
    "process_vm_writev", "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "quotactl", "open_by_handle_at", "name_to_handle_at", "syslog",
    "mknod", "mknodat", "fanotify_init", "move_mount", "open_tree", "fsopen", "fsmount",
    "fsconfig", "fspick", "mount_setattr",
)
CLONE_THREAD = 0x00010000


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes:
    """The filter as a BPF program (what ``bwrap --seccomp FD`` reads)."""
    from autotts_discovery.jail import JailUnavailable

    try:
        import pyseccomp as sc

        f = sc.SyscallFilter(sc.ALLOW)
    except (ImportError, OSError, RuntimeError) as e:
        raise JailUnavailable(f"cannot make a sandbox jail: no seccomp compiler ({e}); "
                              "pip install pyseccomp and install libseccomp2") from None
    try:
        for name in DENIED:
            try:
                f.add_rule(sc.ERRNO(errno.EPERM), name)
            except (ValueError, OSError, RuntimeError):
                pass  # a syscall this architecture does not have
        f.add_rule(sc.ERRNO(errno.EPERM), "clone",
                   sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
        f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
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
