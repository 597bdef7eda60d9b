"""Kernel isolation for the sandbox child on Linux: namespaces, Landlock and seccomp, through ctypes.

This module runs inside the child (``python -I``, where agentkd is not importable), before any model
code. Each layer is best effort: it returns False where the kernel or architecture does not offer it,
and the child carries on with the layers it has. Constants come from the kernel's uapi headers.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Iterable

CLONE_THREAD = 0x00010000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 1 << 14, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# Landlock (linux/landlock.h)
_LL_CREATE_RULESET, _LL_ADD_RULE, _LL_RESTRICT_SELF = 444, 445, 446  # same numbers on x86_64 and aarch64
_LL_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14
_FS_ABI1 = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2

# seccomp BPF (linux/filter.h, linux/seccomp.h, linux/audit.h)
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_ERRNO, _RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
_X32_SYSCALL_BIT = 0x40000000

_ARCH: dict[str, dict[str, int]] = {
    "x86_64": {
        "audit_arch": 0xC000003E, "clone": 56, "clone3": 435, "kill": 62, "tgkill": 234, "socket": 41,
        "sendto": 44, "connect": 42, "sendmsg": 46, "sendmmsg": 307, "fork": 57, "vfork": 58, "execve": 59,
        "execveat": 322, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "tkill": 200,
        "io_uring_setup": 425, "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
        "chroot": 161, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "keyctl": 250, "add_key": 248,
        "request_key": 249,
        # other processes through a handle, a queued signal or a comparison (Landlock < 6 does not scope them)
        "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438, "rt_sigqueueinfo": 129,
        "rt_tgsigqueueinfo": 297, "process_madvise": 440, "process_mrelease": 448, "kcmp": 312,
        "setpriority": 141, "ioprio_set": 251, "move_pages": 279, "migrate_pages": 256,
        # memory outside the address-space limit (memfd, System V and POSIX IPC) and device or fifo nodes
        "memfd_create": 319, "memfd_secret": 447, "shmget": 29, "msgget": 68, "semget": 64, "mq_open": 240,
        "mknod": 133, "mknodat": 259,
        # files by handle, the new mount API, and the host (matters where the sandbox runs as root)
        "open_by_handle_at": 304, "name_to_handle_at": 303, "fanotify_init": 300, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "quotactl": 179, "swapon": 167, "swapoff": 168, "reboot": 169, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "kexec_load": 246, "acct": 163, "settimeofday": 164, "clock_settime": 227,
        "sethostname": 170, "setdomainname": 171, "syslog": 103,
        "prlimit64": 302, "sched_setaffinity": 203, "sched_setscheduler": 144, "sched_setparam": 142,
        "sched_setattr": 314,
    },
    "aarch64": {
        "audit_arch": 0xC00000B7, "clone": 220, "clone3": 435, "kill": 129, "tgkill": 131, "socket": 198,
        "sendto": 206, "connect": 203, "sendmsg": 211, "sendmmsg": 269, "execve": 221, "execveat": 281,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "tkill": 130, "io_uring_setup": 425,
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "bpf": 280,
        "perf_event_open": 241, "userfaultfd": 282, "keyctl": 219, "add_key": 217, "request_key": 218,
        "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438, "rt_sigqueueinfo": 138,
        "rt_tgsigqueueinfo": 240, "process_madvise": 440, "process_mrelease": 448, "kcmp": 272,
        "setpriority": 140, "ioprio_set": 30, "move_pages": 239, "migrate_pages": 238,
        "memfd_create": 279, "memfd_secret": 447, "shmget": 194, "msgget": 186, "semget": 190, "mq_open": 180,
        "mknodat": 33,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "fanotify_init": 262, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "quotactl": 60, "swapon": 224, "swapoff": 225, "reboot": 142, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "kexec_load": 104, "acct": 89, "settimeofday": 170, "clock_settime": 112,
        "sethostname": 161, "setdomainname": 162, "syslog": 116,
        "prlimit64": 261, "sched_setaffinity": 122, "sched_setscheduler": 119, "sched_setparam": 118,
        "sched_setattr": 274,
    },
}
# syscalls allowed on this process only (argument 0 is a pid; 0 means the caller)
_SELF_ONLY = ("kill", "tgkill", "prlimit64", "sched_setaffinity", "sched_setscheduler", "sched_setparam",
              "sched_setattr")
_SPECIAL = {"audit_arch", "clone", "clone3", "socket", "sendto", *_SELF_ONLY}
_AF_UNIX = 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


_in_own_userns = False


def _enter_userns(flags: int) -> bool:
    """Unshare a new user namespace with ``flags``, mapping our own uid and gid (files need a mapped owner)."""
    global _in_own_userns
    uid, gid = os.getuid(), os.getgid()
    if _libc.unshare(CLONE_NEWUSER | flags) != 0:
        return False
    _in_own_userns = True
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        try:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        except OSError:  # an old kernel without setgroups; the maps are what a tmpfs needs, best effort
            pass
    return True


def unshare_network() -> bool:
    """Enter new user and network namespaces: no network interface but a loopback that is down."""
    return _enter_userns(CLONE_NEWNET)


def mount_work(work: str, size_mb: int) -> bool:
    """Mount a private tmpfs of ``size_mb`` over ``work``: the kernel caps the total bytes written there,
    and the files vanish with the process's mount namespace, however deep the tree."""
    if not (_in_own_userns and _libc.unshare(CLONE_NEWNS) == 0) and not _enter_userns(CLONE_NEWNS):
        return False
    flags = ctypes.c_ulong
    # private first: a mount in a copied namespace would otherwise propagate back to the host's
    if _libc.mount(None, b"/", None, flags(MS_REC | MS_PRIVATE), None) != 0:
        return False
    options = f"size={size_mb}m,mode=0700".encode()
    return bool(_libc.mount(b"agentkd", os.fsencode(work), b"tmpfs", flags(MS_NOSUID | MS_NODEV | MS_NOEXEC),
                            options) == 0)


def _no_new_privs() -> bool:
    return bool(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0)


def landlock(read: Iterable[str], write: Iterable[str], read_write_files: Iterable[str] = ()) -> bool:
    """Allow reading only under ``read``, writing only under ``write``, and no TCP or outside signals."""
    abi = _libc.syscall(_LL_CREATE_RULESET, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return False
    handled_fs = _FS_ABI1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    attr = struct.pack("=Q", handled_fs)
    if abi >= 4:
        attr += struct.pack("=Q", NET_BIND_TCP | NET_CONNECT_TCP)  # no rule follows: all TCP is denied
    if abi >= 6:
        attr += struct.pack("=Q", SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _libc.syscall(_LL_CREATE_RULESET, buf, len(attr), 0)
    if ruleset < 0:
        return False
    try:
        for path in read:
            _add_rule(ruleset, path, FS_READ_FILE | FS_READ_DIR)
        for path in read_write_files:
            _add_rule(ruleset, path, FS_READ_FILE | FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0))
        for path in write:
            _add_rule(ruleset, path, handled_fs & ~FS_EXECUTE)
        return _no_new_privs() and _libc.syscall(_LL_RESTRICT_SELF, ruleset, 0) == 0
    finally:
        os.close(ruleset)


def _add_rule(ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path this system does not have needs no rule
    try:
        if not os.path.isdir(path):
            access &= _FILE_RIGHTS
        rule = ctypes.create_string_buffer(struct.pack("=Qi", access, fd), 12)  # packed struct
        _libc.syscall(_LL_ADD_RULE, ruleset, _LL_RULE_PATH_BENEATH, rule, 0)
    finally:
        os.close(fd)


Insn = tuple[int, int, int, int]  # struct sock_filter: code, jt, jf, k


def _arg(i: int, high: bool = False) -> Insn:
    """Load the low (or high) half of syscall argument ``i`` (struct seccomp_data: nr, arch, ip, args)."""
    return (_LD_W_ABS, 0, 0, 16 + 8 * i + (4 if high else 0))


def _when(nr: int, body: list[Insn]) -> list[Insn]:
    """Run ``body`` (which must end in returns) for syscall ``nr``; other syscalls skip it."""
    return [(_LD_W_ABS, 0, 0, 0), (_JEQ_K, 0, len(body), nr), *body]


def _only_if_arg(i: int, values: list[int], deny: int) -> list[Insn]:
    """Allow when argument ``i`` (low half) is one of ``values``, else return ``deny``."""
    n = len(values)
    return [_arg(i), *[(_JEQ_K, n - k, 0, v) for k, v in enumerate(values)], (_RET_K, 0, 0, deny),
            (_RET_K, 0, 0, _RET_ALLOW)]


def seccomp() -> bool:
    """Deny new processes, exec, ptrace, network sockets, reaching other processes (signals, pidfds, limits),
    memory outside the address-space limit, and namespace, mount or host changes."""
    nums = _ARCH.get(platform.machine())
    if nums is None:
        return False
    eperm, allow = _RET_ERRNO | errno.EPERM, (_RET_K, 0, 0, _RET_ALLOW)
    prog: list[Insn] = [(_LD_W_ABS, 0, 0, 4), (_JEQ_K, 1, 0, nums["audit_arch"]), (_RET_K, 0, 0, _RET_KILL_PROCESS)]
    if "fork" in nums:  # x86_64: refuse the x32 ABI's syscall numbers
        prog += [(_LD_W_ABS, 0, 0, 0), (_JGE_K, 0, 1, _X32_SYSCALL_BIT), (_RET_K, 0, 0, eperm)]
    for name, nr in nums.items():
        if name not in _SPECIAL:
            prog += _when(nr, [(_RET_K, 0, 0, eperm)])
    prog += _when(nums["clone3"], [(_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS)])  # libc falls back to clone
    prog += _when(nums["clone"], [_arg(0), (_JSET_K, 1, 0, CLONE_THREAD), (_RET_K, 0, 0, eperm), allow])
    prog += _when(nums["socket"], _only_if_arg(0, [_AF_UNIX], _RET_ERRNO | errno.EAFNOSUPPORT))
    # sendto with a destination could reach a named unix socket; without one it is send() on a socketpair
    prog += _when(nums["sendto"], [_arg(4), (_JEQ_K, 0, 2, 0), _arg(4, high=True), (_JEQ_K, 1, 0, 0),
                                   (_RET_K, 0, 0, eperm), allow])
    for name in _SELF_ONLY:  # only to itself (for kill, 0 is its own process group, which holds just it)
        prog += _when(nums[name], _only_if_arg(0, [os.getpid(), 0], eperm))
    prog.append(allow)
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    filters = ctypes.create_string_buffer(raw, len(raw))
    fprog = ctypes.create_string_buffer(struct.pack("=HxxxxxxQ", len(prog), ctypes.addressof(filters)), 16)
    return _no_new_privs() and _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog, 0, 0) == 0
