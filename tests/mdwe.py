"""Run a command under the rule systemd's ``MemoryDenyWriteExecute=yes`` sets, without systemd.

Usage: ``python tests/mdwe.py PROGRAM [ARG...]``. The rule is the seccomp filter systemd
installs for that setting (x86-64 only): ``mmap`` may not ask for memory both writable and
executable, ``mprotect`` and ``pkey_mprotect`` may not make memory executable, and
``shmat`` may not attach with ``SHM_EXEC``; each fails with EPERM, as under systemd with
``SystemCallErrorNumber=EPERM``. The filter stays on across ``execve``, so the program and
everything it starts run under it. Exits 3 with one line if the filter cannot be installed.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_EPERM = 0x00050000 | 1
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
NR_MMAP, NR_MPROTECT, NR_SHMAT, NR_PKEY_MPROTECT = 9, 10, 30, 329
#: Offsets in ``struct seccomp_data``: the call's number, the architecture, the low 32 bits
#: of the third argument (``prot`` of mmap and mprotect, ``shmflg`` of shmat).
NR, ARCH, ARG2 = 0, 4, 16 + 2 * 8
LD, JEQ, JSET, AND, RET = 0x20, 0x15, 0x45, 0x54, 0x06


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def program() -> list[bytes]:
    """Return the BPF program, one instruction per item (jumps count the items skipped)."""
    allow, deny = _op(RET, SECCOMP_RET_ALLOW), _op(RET, SECCOMP_RET_EPERM)
    return [
        _op(LD, ARCH),
        _op(JEQ, AUDIT_ARCH_X86_64, 1, 0),
        allow,
        _op(LD, NR),
        _op(JEQ, NR_MMAP, 4, 0),  # to the mmap check
        _op(JEQ, NR_MPROTECT, 8, 0),  # to the mprotect check
        _op(JEQ, NR_PKEY_MPROTECT, 7, 0),
        _op(JEQ, NR_SHMAT, 10, 0),  # to the shmat check
        allow,
        _op(LD, ARG2),  # mmap: writable and executable at once?
        _op(AND, PROT_WRITE | PROT_EXEC),
        _op(JEQ, PROT_WRITE | PROT_EXEC, 0, 1),
        deny,
        allow,
        _op(LD, ARG2),  # mprotect: executable at all?
        _op(JSET, PROT_EXEC, 0, 1),
        deny,
        allow,
        _op(LD, ARG2),  # shmat: SHM_EXEC?
        _op(JSET, SHM_EXEC, 0, 1),
        deny,
        allow,
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install() -> None:
    """Install the filter on this process (and whatever it becomes or starts)."""
    instructions = program()
    code = ctypes.create_string_buffer(b"".join(instructions))
    prog = _Program(len(instructions), ctypes.addressof(code))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.prctl(
        PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0
    ):
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


if __name__ == "__main__":
    try:
        install()
    except OSError as exc:
        sys.stderr.write(f"mdwe: the seccomp filter could not be installed: {exc.strerror}\n")
        sys.exit(3)
    os.execvp(sys.argv[1], sys.argv[1:])  # noqa: S606 - the test's own command line
