"""Child processes that cannot outlive the command that started them, even when it is SIGKILLed.

A catchable signal is handled by the parent itself (it stops its children warmly, see
:mod:`ganfriends.signals`); SIGKILL is not, so the tie must be made by the kernel or by a process
that survives the parent:

- our own children (coordinator, workers, the dashboard's server, torchrun ranks) ask Linux to
  send them SIGTERM when their parent dies (``prctl(PR_SET_PDEATHSIG)``), which they treat as a
  warm stop. The parent passes its pid in the environment; the child sets the death signal
  first thing and then checks that the parent is still the one that started it (it may have died
  in between). Done in the child rather than in a ``preexec_fn``, which is unsafe in a parent
  with threads (the database pool has some).
- the embedded PostgreSQL is daemonized by ``pg_ctl`` (its parent is not us), so a guardian
  process holds the read end of a pipe from the parent: end-of-file without the "done" word
  means the parent is gone, and the guardian stops the server (:mod:`ganfriends.db.guardian`).

Other systems than Linux have no death signal; there the warm paths still work.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys
from collections.abc import Mapping

PARENT_ENV = "GANFRIENDS_PARENT_PID"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) plus the marker that ties a child started with it to us."""
    out = dict(os.environ if env is None else env)
    out[PARENT_ENV] = str(os.getpid())
    return out


def die_with_parent(expected_parent: int | None = None) -> bool:
    """Ask for SIGTERM when our parent dies; True if the tie is made (Linux only).

    With ``expected_parent``, a parent that already died (we were re-parented) stops us now.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def bind_to_parent() -> None:
    """If a ganfriends parent started us (:func:`child_env`), die with it; called at start-up.

    The marker is removed from our environment: our own children are tied to us, not to it.
    """
    value = os.environ.pop(PARENT_ENV, None)
    if value is None:
        return
    try:
        parent = int(value)
    except ValueError:
        return
    die_with_parent(parent)


def tied_module_command(module: str, *args: str) -> list[str]:
    """``python -m MODULE ARGS`` run through this module, so that a program that is not ours
    (Streamlit) also dies with the parent that starts it with :func:`child_env`."""
    return [sys.executable, "-m", "ganfriends.children", module, *args]


def _run_tied(argv: list[str]) -> None:
    bind_to_parent()
    sys.argv = argv  # what ``python -m MODULE ARGS`` would show the module
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _run_tied(sys.argv[1:])
