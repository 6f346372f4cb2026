"""A thread pool for waits that release the GIL, so that a request does its Python work
meanwhile: storing an instance syncs the disk while the file is parsed and its rows are
written. Pure: imports no Django.

One pool per process, made on first use: a forked worker (HTTP, Celery) must not
inherit a pool whose threads did not survive the fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None


def start(function: Callable[..., Any], *args: Any) -> Future:
    """Run ``function(*args)`` in the pool; ``.result()`` waits and re-raises."""
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = ThreadPoolExecutor(max_workers=8, thread_name_prefix="vitrine-io"), os.getpid()
        return _pool.submit(function, *args)


def settle(*futures: Future | None) -> None:
    """Wait for every started future, whatever its outcome (for clean-up paths)."""
    wait([f for f in futures if f is not None])
