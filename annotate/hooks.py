"""Process-wide hooks of the annotation clients: exit, SIGTERM/SIGINT, fork.

At the end of the process (normal exit, an uncaught exception, a fatal signal) every client is
closed for good: from then on a call from another thread is held (it does not return) until the
process is gone, so that no call returns whose message the last drain did not take. At a normal
exit, non-daemon threads that still run although Python marked them stopped (Ctrl-C during
``Thread.join()`` on Python 3.11/3.12) are waited for first, as Python meant to.
"""

import atexit
import os
import signal
import sys
import threading
import weakref
from typing import Any, Dict

_clients: "weakref.WeakSet[Any]" = weakref.WeakSet()
_hooked_pid = 0
_previous_handlers: Dict[int, Any] = {}


def shutdown_all() -> None:
    """Close every client of this process."""
    for c in list(_clients):
        c.close()


def _final() -> None:
    """The process ends: close every client, holding later calls from other threads."""
    for c in list(_clients):
        c._close_for_exit()


def _at_exit() -> None:
    try:
        for c in list(_clients):
            c._wait_for_threads()
    except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, keep what there is
        pass
    _final()


def register(client: Any) -> None:
    """Remember a started client; the first one in a process installs the exit hooks."""
    global _hooked_pid
    _clients.add(client)
    if _hooked_pid == os.getpid():
        return
    first = _hooked_pid == 0
    _hooked_pid = os.getpid()
    if first:
        atexit.register(_at_exit)  # inherited by forked children
        install_signal_handlers()
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:  # multiprocessing children leave through os._exit(), after its finalizers
        mp_util.Finalize(None, _final, exitpriority=-100)


def install_signal_handlers() -> None:
    """SIGTERM/SIGINT: flush, then the default action. Only where no one else has a handler, and
    only from the main thread (Python's rule): a client is made there (``import annotate``) before
    its first call, which may come from any thread. Once per handler: ours is not SIG_DFL."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            if signal.getsignal(sig) == signal.SIG_DFL:
                _previous_handlers[sig] = signal.signal(sig, _on_signal)
        except (ValueError, OSError):
            pass


def _on_signal(signum: int, frame: object) -> None:
    _final()
    signal.signal(signum, _previous_handlers.get(signum, signal.SIG_DFL))
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    for c in list(_clients):
        c._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # Python 3.7+; on 3.6 a forked child must not annotate
    os.register_at_fork(after_in_child=_after_fork_in_child)
