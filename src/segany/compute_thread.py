"""One thread for every forward pass of a process, taking work by priority:
`ComputeThread.run_at(Priority.JOB, function, ...)`.

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

Why priorities. A person clicking waits for the answer; automatic masks and pre-encoding do
not. The thread takes the most urgent queued call first (FIFO among equals), and long work is
submitted in slices (one AMG point batch at a time), so a click waits for at most the slice
that is running when it arrives, never for the whole job. So that Auto and pre-encoding still
move on while people click without pause, a call that has waited its priority's
`DEFAULT_MAX_WAIT` takes its turn among the clicks (they then wait one slice more).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from enum import IntEnum
from math import inf
from types import MappingProxyType
from typing import Any, Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Priority(IntEnum):
    """Who waits for a call; a lower value runs first."""

    CLICK = 0  # a person waits: clicks, and the image encodings they need
    JOB = 1  # work a person started and watches: /auto slices, geo segmentation, the map
    BACKGROUND = 2  # nobody waits yet: pre-encoding


class Task(Generic[R]):
    """A call queued on a `ComputeThread`: `result()` waits for it (its exception is raised
    there). `priority` may rise while it waits (`ComputeThread.promote`)."""

    def __init__(self, priority: Priority, call: Callable[[], R]) -> None:
        self.priority = priority
        self.queued_at = time.monotonic()
        self._call = call
        self._future: Future[R] = Future()
        self._claimed = False  # taken by the thread (or run inline); guarded by the queue lock

    def result(self, timeout: float | None = None) -> R:
        return self._future.result(timeout)

    def done(self) -> bool:
        return self._future.done()

    def _execute(self) -> None:
        self._future.set_running_or_notify_cancel()
        try:
            value = self._call()
        except BaseException as error:  # noqa: BLE001  (handed to the caller, not swallowed)
            self._future.set_exception(error)
        else:
            self._future.set_result(value)
        self._call = None  # type: ignore[assignment]  (drop the arguments once answered)


# Seconds after which a waiting call takes its turn among the clicks, so that nothing starves
# while people click without pause: an /auto slice after 0.5 s (Auto moves on, a click waits a
# slice more now and then), an encoding for pre-encoding after 5 s (it may hold the image's
# cache lock, which a click in another worker process could be waiting for). Measured with
# benchmarks/bench_server.py --mixed (README).
DEFAULT_MAX_WAIT: Mapping[Priority, float] = MappingProxyType(
    {Priority.JOB: 0.5, Priority.BACKGROUND: 5.0}
)


class ComputeThread:
    """Runs callables one at a time on one long-lived thread, most urgent first.

    threads: torch's intra-op threads for that thread (None: torch's default). max_wait: per
    priority, the seconds after which a waiting call takes turns with the most urgent ones
    (by arrival: before the clicks that came after it); priorities not named wait for the
    more urgent queues to empty.
    A call made from the compute thread itself runs at once, whatever its priority (no
    deadlock when a computation calls another). `close()` waits for the queued calls and ends
    the thread.
    """

    def __init__(
        self,
        name: str = "segany-compute",
        threads: int | None = None,
        max_wait: Mapping[Priority, float] = DEFAULT_MAX_WAIT,
    ) -> None:
        self.threads = threads
        self.max_wait = dict(max_wait)
        self._ident: int | None = None
        # FIFO per priority; a promoted task also stays in its old queue, skipped there.
        self._queues: dict[Priority, deque[Task[Any]]] = {p: deque() for p in Priority}
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def run(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """`function(*args, **kwargs)` at `Priority.CLICK`; its result, or its exception
        raised here."""
        return self.submit(Priority.CLICK, function, *args, **kwargs).result()

    def run_at(
        self, priority: Priority, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """`function(*args, **kwargs)` on the compute thread after every queued call of a
        more urgent `priority` (see `max_wait`) and of the same one; its result, or its
        exception."""
        return self.submit(priority, function, *args, **kwargs).result()

    def submit(
        self, priority: Priority, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> Task[R]:
        """Queue `function(*args, **kwargs)` and return its `Task` without waiting."""
        task: Task[R] = Task(Priority(priority), lambda: function(*args, **kwargs))
        if self.is_current():
            task._claimed = True
            task._execute()
            return task
        with self._ready:
            if self._closed:
                raise RuntimeError("the compute thread is closed")
            self._queues[task.priority].append(task)
            self._ready.notify()
        return task

    def promote(self, task: Task[Any], priority: Priority) -> None:
        """Let a queued `task` run at `priority` if that is more urgent than its own (it then
        queues behind the calls already waiting at `priority`). No effect once it started."""
        with self._ready:
            if task._claimed or priority >= task.priority:
                return
            task.priority = Priority(priority)
            self._queues[task.priority].append(task)

    def queued(self) -> dict[Priority, int]:
        """How many calls wait, by priority (not counting the one running)."""
        with self._ready:
            return {
                priority: sum(t.priority == priority and not t._claimed for t in queue)
                for priority, queue in self._queues.items()
            }

    def is_current(self) -> bool:
        """Whether the calling thread is the compute thread."""
        return threading.get_ident() == self._ident

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        if not self.is_current():
            self._thread.join()

    def _next(self) -> Task[Any] | None:
        """Under the lock: the call to run now, taken off its queue; None when all are empty."""
        heads = {}
        for priority, queue in self._queues.items():
            while queue and (queue[0]._claimed or queue[0].priority != priority):
                queue.popleft()  # run already, or promoted to a more urgent queue
            if queue:
                heads[priority] = queue[0]
        if not heads:
            return None
        now = time.monotonic()
        # An overdue call takes turns with the most urgent queue's first, by arrival.
        candidates = {min(heads)} | {
            p for p, task in heads.items() if now - task.queued_at >= self.max_wait.get(p, inf)
        }
        chosen = min(candidates, key=lambda p: heads[p].queued_at)
        task = self._queues[chosen].popleft()
        task._claimed = True
        return task

    def _serve(self) -> None:
        self._ident = threading.get_ident()
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        while True:
            with self._ready:
                task = self._next()
                while task is None and not self._closed:
                    self._ready.wait()
                    task = self._next()
                if task is None:  # closed and drained
                    return
            task._execute()


class SharedWork:
    """One computation per key that several callers may wait for, run at the most urgent of
    their priorities: the priority belongs to whoever asks.

    The embedding cache runs an image's encoding once for all the threads that want it (they
    wait on its per-key lock). When pre-encoding (BACKGROUND) started it and a click (CLICK)
    now waits for the same image, the queued encoding is promoted, so the click does not wait
    behind every slice of an /auto job. Use `asking(key, priority)` around the wait and
    `run(key, function, ...)` for the computation itself.
    """

    def __init__(self, compute: ComputeThread) -> None:
        self.compute = compute
        self._lock = threading.Lock()
        self._asks: dict[str, list[Priority]] = {}  # key -> priorities of the waiting callers
        self._queued: dict[str, Task[Any]] = {}  # key -> its computation, while queued

    @contextmanager
    def asking(self, key: str, priority: Priority) -> Iterator[None]:
        """While inside: a caller at `priority` waits for `key`'s computation."""
        with self._lock:
            self._asks.setdefault(key, []).append(Priority(priority))
            task = self._queued.get(key)
            if task is not None:
                self.compute.promote(task, priority)
        try:
            yield
        finally:
            with self._lock:
                asks = self._asks[key]
                asks.remove(priority)
                if not asks:
                    del self._asks[key]

    def run(self, key: str, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """`function(*args, **kwargs)` on the compute thread at the most urgent priority of
        the callers asking for `key` (BACKGROUND when none does)."""
        if self.compute.is_current():
            return function(*args, **kwargs)
        with self._lock:
            priority = min(self._asks.get(key, ()), default=Priority.BACKGROUND)
            task = self.compute.submit(priority, function, *args, **kwargs)
            if not task.done():
                self._queued[key] = task
        try:
            return task.result()
        finally:
            with self._lock:
                if self._queued.get(key) is task:
                    del self._queued[key]
