"""A node's child role ends with its node, and a node's start ends one left behind.

Why: a node's children (the event factory, the log store) run in sessions of their own (a
terminal's Ctrl-C reaches the node, which stops its sources first and the children last), so
nothing used to end them when the node itself was killed with SIGKILL: after a restart two ran,
both reported healthy, and the orphan outlived every later clean stop.

Two ties, each enough alone (belt and braces):

* the kernel's parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``): ``SIGHUP`` when the
  node dies. It is sent when the *thread* that started the child ends, so the node starts it
  from its main thread (the event loop's);
* a pipe: the node keeps the write end (close-on-exec, so no other child holds it), the child
  reads the other and sees end-of-file when the node is gone, however it ended.

Either makes the child stop as SIGTERM does (it finishes the batch in hand). And every such
child writes ``<data_dir>/<name>.pid`` (pid and the kernel's start time of the process, so a
reused pid is never taken for it): a node about to start a child ends a live process named
there that is not its own child — an orphan of a node killed before the ties could act, or one
started by hand for the same data directory.

This module is generic (the roles name their own pid files); ``factory.lifeline`` keeps the
factory's names on top of it.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "PARENT_DEATH_SIGNAL",
    "STALE_KILL_S",
    "STALE_TERM_S",
    "RestartBackoff",
    "child_env",
    "end_stale",
    "pid_file",
    "process_stat",
    "remove_pid_file",
    "stop_on_signals",
    "watch_parent",
    "write_pid_file",
]

log = logging.getLogger(__name__)

PARENT_FD_ENV = "LOGFACTORY_PARENT_FD"  # the child's end of the pipe
PARENT_PID_ENV = "LOGFACTORY_PARENT_PID"  # the node, to catch a death before prctl
_PR_SET_PDEATHSIG = 1
PARENT_DEATH_SIGNAL = signal.SIGHUP
STALE_TERM_S = 10.0  # a stale child finishes its batch within this after SIGTERM, or is killed
STALE_KILL_S = 5.0


# -- the child's side ----------------------------------------------------------------------------
def child_env(read_fd: int) -> dict[str, str]:
    """The environment of a node's child that reads ``read_fd`` (pass it in pass_fds)."""
    return {**os.environ, PARENT_FD_ENV: str(read_fd), PARENT_PID_ENV: str(os.getpid())}


def watch_parent(on_gone: Callable[[], None]) -> bool:
    """In a node's child: call ``on_gone`` (at most a few times; it must be idempotent) once
    the node is gone. False, doing nothing, in a process not started by a node."""
    fd_text = os.environ.pop(PARENT_FD_ENV, None)
    parent_text = os.environ.pop(PARENT_PID_ENV, None)
    if fd_text is None or not fd_text.isdigit():
        return False
    signal.signal(PARENT_DEATH_SIGNAL, lambda _signum, _frame: on_gone())
    _set_parent_death_signal(PARENT_DEATH_SIGNAL)
    threading.Thread(
        target=_read_to_eof, args=(int(fd_text), on_gone), name="parent-watch", daemon=True
    ).start()
    if parent_text is not None and parent_text != str(os.getppid()):
        on_gone()  # it died before prctl could take effect (the pipe would say so too)
    return True


def _set_parent_death_signal(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):  # no libc with prctl: the pipe alone watches
        return False


def _read_to_eof(fd: int, on_gone: Callable[[], None]) -> None:
    """The node never writes: end-of-file means its write end closed, i.e. it is gone."""
    try:
        while os.read(fd, 4096):
            pass
    except OSError as exc:  # cannot happen on a pipe we own; the signal still watches
        log.warning("parent watch: cannot read the pipe from the node: %s", exc)
        return
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    on_gone()


# -- pid files -----------------------------------------------------------------------------------
def pid_file(data_dir: Path, name: str) -> Path:
    """``<data_dir>/<name>.pid``, the name made safe for a file name."""
    return data_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.pid"


def process_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time in clock ticks) of a process, None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command may hold spaces and ")"
    return fields[0], int(fields[1]), int(fields[19])


def write_pid_file(data_dir: Path, name: str, **extra: str) -> Path | None:
    """Name this process in the data directory; None (logged) if that cannot be written."""
    path = pid_file(data_dir, name)
    stat = process_stat(os.getpid())
    info = {"pid": os.getpid(), "start": stat[2] if stat else None, **extra}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot write %s (a node's start will not find this process): %s", path, exc)
        return None
    return path


def remove_pid_file(path: Path | None) -> None:
    """Remove ``path`` if it still names this process (a later one may have replaced it)."""
    if path is None:
        return
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


# -- the node's side -----------------------------------------------------------------------------
def _same_process(pid: int, start: int) -> bool:
    stat = process_stat(pid)
    return stat is not None and stat[0] != "Z" and stat[2] == start


def end_stale(data_dir: Path, name: str, *, what: str, me: int | None = None) -> int | None:
    """End the live process ``<data_dir>/<name>.pid`` names unless it is ``me`` (default: this
    process) or its child: SIGTERM (it finishes its batch), SIGKILL after :data:`STALE_TERM_S`.
    ``what`` names it in the log. The pid it ended, or None (none found, or it could not be
    ended: logged). Blocks at most ``STALE_TERM_S + STALE_KILL_S`` seconds."""
    try:
        info = json.loads(pid_file(data_dir, name).read_text(encoding="utf-8"))
        pid, start = int(info["pid"]), int(info["start"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    me = os.getpid() if me is None else me
    stat = process_stat(pid)
    if pid == me or stat is None or stat[1] == me:
        return None
    if not _same_process(pid, start):  # gone, or its pid now names another process
        return None
    log.warning("ending %s pid %d of %s, not started by this node", what, pid, data_dir)
    for sig, bound in ((signal.SIGTERM, STALE_TERM_S), (signal.SIGKILL, STALE_KILL_S)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return pid
        except PermissionError as exc:
            log.error("cannot end the stale %s pid %d: %s", what, pid, exc)
            return None
        deadline = time.monotonic() + bound
        while _same_process(pid, start):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        else:
            return pid
    log.error("the stale %s pid %d did not end after SIGKILL", what, pid)
    return None


# -- stopping a child role -----------------------------------------------------------------------
def stop_on_signals(
    stop: threading.Event, *, announce: str, grace: float, late: str
) -> Callable[[str], None]:
    """How a role process (factory, store) stops: SIGINT or SIGTERM sets ``stop`` (the role
    finishes the batch in hand), logging ``announce`` with the cause; a second signal exits at
    once; and ``grace`` seconds after the first the process exits anyway, logging ``late`` — a
    library call that ignores the flag (librdkafka waiting for a broker that does not answer)
    must not hold a stop for minutes, and what was not committed is read again by whoever
    resumes. SIGUSR1 writes every thread's stack to stderr ("what is it waiting for?").

    Returns ``begin_stop(why)``, for causes other than a signal (the node gone: ``watch_parent``).
    Call it from the main thread (signal handlers are installed there)."""
    signalled: list[int] = []

    def begin_stop(why: str) -> None:
        if stop.is_set():
            return
        stop.set()
        log.warning("%s (%s)", announce, why)
        threading.Thread(target=_exit_after, args=(grace, late), daemon=True).start()

    def on_signal(signum: int, _frame: object) -> None:
        if signalled:
            os._exit(128 + signum)  # asked twice: now
        signalled.append(signum)
        begin_stop(f"{signal.Signals(signum).name}; signal again to exit at once")

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    return begin_stop


def _exit_after(grace: float, late: str) -> None:
    time.sleep(grace)  # a deadline, not a synchronisation: the clean exit normally wins
    log.error("did not stop within %g s of the signal; exiting now (%s)", grace, late)
    with contextlib.suppress(Exception):
        logging.shutdown()
    os._exit(1)


class RestartBackoff:
    """The pause before a role (factory worker, store) is rebuilt after an error: doubling from
    ``first`` up to ``cap``, and back to ``first`` once a rebuilt role has committed (a new
    failure then, not the same one going on). ``since`` is when the current trouble began, for
    the health text; ``on_commit`` is what the role calls after each commit, and clears the
    problem (``clear_problem``) at the first one."""

    def __init__(self, clear_problem: Callable[[], None], first: float, cap: float) -> None:
        self._clear = clear_problem
        self.first, self.cap = first, cap
        self.delay = first
        self._since: float | None = None
        self.committed = threading.Event()

    def on_commit(self) -> None:
        if not self.committed.is_set():
            self.committed.set()
            self._clear()

    def failed(self) -> tuple[float, str]:
        """This failure's delay and since when (UTC text); the next delay doubles."""
        if self.committed.is_set():  # it worked for a while: a fresh backoff
            self.delay, self._since = self.first, None
        self.committed.clear()
        self._since = self._since or time.time()
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return delay, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._since))
