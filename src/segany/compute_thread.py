"""One thread for every forward pass of a process: `ComputeThread.run(function, ...)`.

Why one thread and not a lock. A multi-threaded server that lets each request thread run the
model in turn (a lock) gets forward passes in many threads, and torch's OpenMP runtime (GNU
libgomp) keeps a pool of worker threads *per calling thread*. Once a process holds more
OpenMP threads than the machine has cores, libgomp stops spinning between parallel regions
and puts its workers to sleep after each one, so every one of the decoder's hundred small
operations pays a wake-up. Measured on a 2-core machine: segany-tiny-v2's click (decoder,
upsampling, edge refinement) takes 13-14 ms when one thread runs all the torch work and
17-18 ms once a second thread has run any (25 ms inside the annotation server, whose request
threads all ran the decoder). Running every forward pass on the same thread keeps one pool,
and still gives the one-pass-at-a-time order the lock gave (concurrent passes oversubscribe
the CPU).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class ComputeThread:
    """Runs callables one at a time, in submission order, on one long-lived thread.

    threads: torch's intra-op threads for that thread (None: torch's default). A call made
    from the compute thread itself runs at once (no deadlock when a computation calls
    another). `close()` waits for the queued calls and ends the thread.
    """

    def __init__(self, name: str = "segany-compute", threads: int | None = None) -> None:
        self.threads = threads
        self._ident: int | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name, initializer=self._start
        )

    def _start(self) -> None:
        self._ident = threading.get_ident()
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)

    def run(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """`function(*args, **kwargs)` on the compute thread; its result, or its exception
        raised here."""
        if threading.get_ident() == self._ident:
            return function(*args, **kwargs)
        return self._executor.submit(function, *args, **kwargs).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
