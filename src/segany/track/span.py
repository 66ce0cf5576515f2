"""Which frames a propagation visits (a pure function shared by every tracker)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segany.errors import ConfigError, PromptError


def frame_order(
    num_frames: int,
    start: int | None,
    reverse: bool,
    max_frames: int | None,
    first_prompted: Sequence[int],
    last_prompted: Sequence[int],
) -> list[int]:
    """The frames `TrackingSession.propagate` visits, in order, `start` first.

    start: a frame index, or None for the earliest prompted frame of any object (forward) or
    the latest (reverse); first_prompted / last_prompted: each object's earliest / latest
    prompted frame. Runs to the last frame (frame 0 in reverse) or for `max_frames` frames.
    `PromptError` for a start outside the sequence, `ConfigError` for max_frames < 1.
    """
    if start is None:
        start = max(last_prompted) if reverse else min(first_prompted)
    if isinstance(start, bool) or not isinstance(start, int | np.integer):
        raise PromptError(f"the start frame must be an int, got {start!r}")
    if not 0 <= start < num_frames:
        raise PromptError(
            f"cannot start at frame {int(start)}: the sequence has {num_frames} frames "
            f"(0 to {num_frames - 1})"
        )
    if max_frames is not None:
        if isinstance(max_frames, bool) or not isinstance(max_frames, int | np.integer):
            raise ConfigError(f"max_frames must be an int >= 1 or None, got {max_frames!r}")
        if max_frames < 1:
            raise ConfigError(f"max_frames must be >= 1, got {max_frames}")
    start = int(start)
    if reverse:
        stop = -1 if max_frames is None else max(start - int(max_frames), -1)
        return list(range(start, stop, -1))
    stop = num_frames if max_frames is None else min(start + int(max_frames), num_frames)
    return list(range(start, stop))
