"""Child processes that die with their parent.

A parent killed with SIGKILL (or a lost machine's OOM killer) runs no cleanup, so children it started (Prefect's
temporary API server, extraction workers) would live on, orphaned, holding ports, memory and file locks. On Linux a
child asks the kernel for a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere this is a no-op.
The signal follows the death of the parent *thread* that started the child, so start such children from a thread
that lives as long as they should (the main thread, or the thread that also stops them).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int | None = None) -> None:
    """Call in a child process (first thing, or as a ``subprocess.Popen`` ``preexec_fn``): SIGKILL this process when
    its parent dies. ``parent_pid``, the parent's pid taken before the child started, closes the race of a parent
    that died before this call: the child then exits at once."""
    if not sys.platform.startswith("linux"):
        return
    if _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # orphaned before the request took effect


def preexec_dying_with_parent() -> Callable[[], None]:
    """A ``subprocess.Popen(preexec_fn=...)`` that makes the child die with this process. libc is loaded here, in the
    parent: the forked child only makes the call (no dynamic loading between fork and exec)."""
    if sys.platform.startswith("linux"):
        _libc()
    return functools.partial(die_with_parent, os.getpid())


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is running (a zombie, dead but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"  # the state field follows "(command)"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): the signal check above is all there is
