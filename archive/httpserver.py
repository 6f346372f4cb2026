"""The command line of Vitrine's HTTP server: granian, serving ``archive.wsgi``.

``manage.py serve`` and the benchmarks start the server from this one place, so what
is measured is what runs.  Why granian, and why this layout: ``docs/serving.md``.
No Django here: the callers pass the settings.
"""

from __future__ import annotations

import os
from pathlib import Path

# One Python thread per process: a second one in the same process makes tile requests
# queue on the GIL (p99 at concurrency 4 went from ~3 to ~6 ms, docs/serving.md).
DEFAULT_THREADS = 1


def default_workers() -> int:
    """Two processes per core, 2 to 8: with one thread each, a long download or upload
    holds one process, and the others go on answering (each keeps its own caches)."""
    return max(2, min(2 * (os.cpu_count() or 1), 8))


def http_command(
    bin_dir: Path, host: str, port: int, workers: int, threads: int, *, access_log: bool = True,
) -> list[str]:
    """The argv that starts the HTTP server on ``host:port``.

    Parameters
    ----------
    bin_dir : Path
        The folder of the virtual environment's executables (``granian`` lives there).
    workers : int
        Processes.  Each one runs the WSGI application with its own caches.
    threads : int
        Python threads per process that run requests ("blocking threads" in granian's
        words).  Sockets, HTTP parsing and sending are granian's Rust threads, so these
        run only the application; see :data:`DEFAULT_THREADS`.
    access_log : bool
        One line per request on standard output.
    """
    return [
        str(bin_dir / "granian"), "--interface", "wsgi", "archive.wsgi:application",
        "--host", host, "--port", str(port),
        "--workers", str(workers), "--blocking-threads", str(threads),
        # A viewer's burst of connections waits in the backlog rather than being refused.
        "--backlog", "1024",
        # No WebSockets in a WSGI application; a worker that dies is started again.
        "--no-ws", "--respawn-failed-workers",
        "--workers-kill-timeout", "10",
        *(["--access-log"] if access_log else []),
    ]
