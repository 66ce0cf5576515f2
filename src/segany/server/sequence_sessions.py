"""The tracking sessions the server holds: one `segany.track` session per sequence being worked
on, at most `capacity` of them (the least recently used one not in use is closed first; the
next request on its sequence opens a new one and replays the stored prompts into it).

Every call into a tracker runs on the model's compute thread (`segany.compute_thread`): a
prompt at `Priority.CLICK`, each propagated frame at `Priority.JOB`, so that a person's clicks on
any image or sequence are answered between two frames of a propagation, never after it. A
session is used by one request or job at a time (`SequenceSessions.use` holds its lock).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from segany.compute_thread import ComputeThread, Priority
from segany.errors import NotFoundError
from segany.sequences.base import FrameSequence
from segany.track.base import FrameResult, ObjectPrompt, Tracker, TrackingSession

# tracker_factory(model) -> Tracker; the default is segany.track.build_tracker.
TrackerFactory = Callable[[object], Tracker]


def default_tracker_factory(model: object) -> Tracker:
    from segany.track import build_tracker

    return build_tracker(model)


@dataclass
class Tracked:
    """A sequence open for tracking: its decoder, the tracker's session, who uses it."""

    sequence_id: str
    sequence: FrameSequence
    session: TrackingSession
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0  # requests or jobs holding or waiting for `lock` (guarded by the holder's)
    seen: set[int] = field(default_factory=set)  # frames this session prompted or tracked

    def resume_from(self, start: int, reverse: bool) -> int:
        """Where a propagation asked to start at `start` must begin for the tracker to carry
        its state there: `start` itself if this session has been on it, else the nearest frame
        before it in the direction of travel that it has (a session opened anew, after a
        restart or an eviction, knows its prompted frames only); `start` when there is none."""
        if start in self.seen:
            return start
        behind = [f for f in self.seen if (f > start if reverse else f < start)]
        if not behind:
            return start
        return min(behind) if reverse else max(behind)


class SequenceSessions:
    """open_sequence(sequence_id) -> FrameSequence (a fresh decoder); prompts(sequence_id) ->
    the stored `ObjectPrompt`s to replay into a new session, in the order they are to be given.
    """

    def __init__(
        self,
        compute: ComputeThread,
        model: object,
        open_sequence: Callable[[str], FrameSequence],
        prompts: Callable[[str], list[ObjectPrompt]],
        capacity: int = 2,
        tracker_factory: TrackerFactory | None = None,
    ) -> None:
        self.compute = compute
        self.model = model
        self.capacity = max(1, capacity)
        self._open_sequence = open_sequence
        self._prompts = prompts
        self._tracker_factory = tracker_factory
        self._tracker: Tracker | None = None
        self._lock = threading.Lock()
        self._held: OrderedDict[str, Tracked] = OrderedDict()

    @contextmanager
    def use(self, sequence_id: str, priority: Priority) -> Iterator[Tracked]:
        """The sequence's session, opened (prompts replayed) at `priority` if it is not held,
        for this caller alone until the block ends."""
        tracked = self._claim(sequence_id, priority)
        try:
            with tracked.lock:
                yield tracked
        finally:
            with self._lock:
                tracked.users -= 1
            self._evict()

    def prompt(self, sequence_id: str, prompt: ObjectPrompt) -> FrameResult:
        """Add (or replace) a prompt: the prompted frame's masks, at click priority."""
        with self.use(sequence_id, Priority.CLICK) as tracked:
            result = self.compute.run_at(Priority.CLICK, tracked.session.add_prompt, prompt)
            tracked.seen.add(prompt.frame)
            return result

    def propagate(
        self,
        sequence_id: str,
        start: int,
        reverse: bool,
        max_frames: int | None,
        on_result: Callable[[FrameResult], None],
        on_begin: Callable[[int], None] = lambda begin: None,
    ) -> int:
        """Track every prompted object from `start`, one frame per compute-thread call at job
        priority; `on_result` gets each frame's result (off the compute thread) and may raise
        to stop. A session that has not been on `start` begins at the frame it resumes from
        (`Tracked.resume_from`, told to `on_begin` first), `max_frames` counted from `start`.
        Returns the number of frames tracked."""
        with self.use(sequence_id, Priority.JOB) as tracked:
            begin = tracked.resume_from(start, reverse)
            on_begin(begin)
            if max_frames is not None:
                max_frames += abs(start - begin)
            frames = self.compute.run_at(
                Priority.JOB, tracked.session.propagate, begin, reverse, max_frames
            )
            done = 0
            try:
                while True:
                    result = self.compute.run_at(Priority.JOB, next, frames, None)
                    if result is None:
                        return done
                    done += 1
                    tracked.seen.add(result.frame)
                    on_result(result)
            finally:
                self.compute.run_at(Priority.JOB, _close, frames)

    def remove_object(self, sequence_id: str, object_id: int) -> None:
        """Forget the object in the sequence's session, if one is held (the stored prompts
        are the caller's to delete)."""
        with self._lock:
            held = sequence_id in self._held
        if held:
            with self.use(sequence_id, Priority.CLICK) as tracked:
                try:
                    self.compute.run(tracked.session.remove_object, object_id)
                except NotFoundError:
                    pass  # a session opened meanwhile, from the prompts left: it never had it

    def forget(self, sequence_id: str) -> None:
        """Close the sequence's session (the sequence was deleted, or its prompts reset)."""
        with self._lock:
            tracked = self._held.pop(sequence_id, None)
        if tracked is not None:
            with tracked.lock:
                self._close(tracked)

    def close(self) -> None:
        for sequence_id in list(self._held):
            self.forget(sequence_id)

    # ---- holding ----------------------------------------------------------------------------

    def _claim(self, sequence_id: str, priority: Priority) -> Tracked:
        with self._lock:
            tracked = self._held.get(sequence_id)
            if tracked is not None:
                tracked.users += 1
                self._held.move_to_end(sequence_id)
                return tracked
        opened = self._open(sequence_id, priority)  # outside the lock: it may take seconds
        with self._lock:
            tracked = self._held.get(sequence_id)
            if tracked is None:
                tracked = self._held[sequence_id] = opened
                opened = None
            tracked.users += 1
        if opened is not None:  # another request opened it meanwhile: keep theirs
            self._close(opened)
        return tracked

    def _open(self, sequence_id: str, priority: Priority) -> Tracked:
        sequence = self._open_sequence(sequence_id)
        try:
            tracker = self._get_tracker(priority)
            session = self.compute.run_at(priority, tracker.open, sequence)
            prompts = self._prompts(sequence_id)
            for prompt in prompts:
                self.compute.run_at(priority, session.add_prompt, prompt)
        except BaseException:
            sequence.close()
            raise
        return Tracked(sequence_id, sequence, session, seen={p.frame for p in prompts})

    def _get_tracker(self, priority: Priority) -> Tracker:
        if self._tracker is None:
            factory = self._tracker_factory or default_tracker_factory
            tracker = self.compute.run_at(priority, factory, self.model)
            with self._lock:
                self._tracker = self._tracker or tracker
        return self._tracker

    def _evict(self) -> None:
        """Close the least recently used sessions nobody uses, down to `capacity`."""
        closing = []
        with self._lock:
            idle = [key for key, t in self._held.items() if t.users == 0]
            while len(self._held) - len(closing) > self.capacity and idle:
                closing.append(self._held.pop(idle.pop(0)))
        for tracked in closing:
            self._close(tracked)

    def _close(self, tracked: Tracked) -> None:
        try:
            self.compute.run_at(Priority.JOB, tracked.session.close)
        finally:
            tracked.sequence.close()


def _close(frames: Iterator[FrameResult]) -> None:
    close = getattr(frames, "close", None)
    if close is not None:
        close()
