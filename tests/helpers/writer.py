"""A file writer process, as a logging daemon under logrotate: appends numbered lines at a rate,
reopens its file on SIGHUP, and on SIGTERM prints how many lines it wrote.

Run it as ``[sys.executable, "-c", WRITER, PATH, LINES_PER_SECOND]``.
"""

from __future__ import annotations

import textwrap

WRITER = textwrap.dedent(
    """
    import os, signal, sys, time
    path, rate = sys.argv[1], int(sys.argv[2])
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    state = {"reopen": False, "stop": False}
    signal.signal(signal.SIGHUP, lambda *_: state.update(reopen=True))
    signal.signal(signal.SIGTERM, lambda *_: state.update(stop=True))
    fd = os.open(path, flags, 0o644)
    n, start = 0, time.monotonic()
    while not state["stop"]:
        ahead = start + n / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        if state["reopen"]:
            state["reopen"] = False
            os.close(fd)
            fd = os.open(path, flags, 0o644)
        os.write(fd, "".join(f"{i:09d} the quick brown fox\\n" for i in range(n, n + 500)).encode())
        n += 500
    os.close(fd)
    print(n, flush=True)
    """
)
