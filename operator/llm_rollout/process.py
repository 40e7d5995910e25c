"""Child processes that end with their parent: the one place PR_SET_PDEATHSIG is set.

Used by the local eval executor (a runner must not outlive the operator that launched
it; a new operator relaunches it) and by the test bed (servers must not outlive a test
run that was killed outright).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A `preexec_fn`: the kernel sends SIGTERM to the child when its parent thread exits.

    The parent is the *thread* that forked, so spawn from a thread that lives as long as
    the process (the event loop's, or the main thread)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
