"""SAM 2's memory tracker behind the `Tracker` interface: a session wraps
`segany.video.VideoPredictor` on the sequence (frames decoded on demand; the memory bank keeps
only what the memory attention can still reach, so memory does not grow with the length).

Masks are SAM 2's logits > 0 at the frame's size; an object's score is the sigmoid of SAM 2's
object-score logit on that frame (its own estimate that the object is visible there).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from segany.errors import NotFoundError, PromptError
from segany.sequences.base import FrameSequence
from segany.track.base import FrameResult, ObjectPrompt, Tracker, TrackingSession
from segany.track.prompts import check_object_id, check_prompt
from segany.track.span import frame_order
from segany.video.predictor import VideoPredictor


class Sam2VideoTracker(Tracker):
    """Sessions of SAM 2's memory tracker for a `segany.modeling.sam2.model.Sam2` model.

    non_overlap: give each pixel to the object with the highest logit only (VideoPredictor's
    `non_overlap_masks`), as the id-map outputs need; cache_frames: preprocessed frames kept.
    """

    def __init__(self, model: torch.nn.Module, non_overlap: bool = True, cache_frames: int = 4):
        # A correction on a tracked frame becomes a conditioning frame (as SAM 2's demo
        # does): propagation resumes from the corrected mask and remembers it.
        self.predictor = VideoPredictor(
            model,
            non_overlap_masks=non_overlap,
            add_all_frames_to_correct_as_cond=True,
            cache_frames=cache_frames,
        )
        spec = getattr(model, "spec", None)
        self.name = f"sam2-memory ({getattr(spec, 'name', type(model).__name__)})"

    def open(self, sequence: FrameSequence) -> Sam2Session:
        return Sam2Session(self.predictor, sequence)


class Sam2Session(TrackingSession):
    """One sequence tracked by `VideoPredictor`; see `TrackingSession` for the methods."""

    def __init__(self, predictor: VideoPredictor, sequence: FrameSequence) -> None:
        self.predictor = predictor
        self.sequence = sequence
        # frames decoded on demand (segany.video.sequence_frames.SequenceFrames)
        self.state = predictor.init_state(sequence)
        self.prompted: dict[int, set[int]] = {}  # object id -> frames with a prompt

    def add_prompt(self, prompt: ObjectPrompt) -> FrameResult:
        seq = self.sequence
        prompt = check_prompt(prompt, len(seq), seq.height, seq.width)
        points = labels = None
        if prompt.points is not None:
            points = prompt.points[:, :2].astype(np.float32)
            labels = prompt.points[:, 2].astype(np.int32)
        box = None if prompt.box is None else prompt.box.astype(np.float32)
        frame, obj_ids, logits = self.predictor.add_new_points_or_box(
            self.state, prompt.frame, prompt.object_id, points=points, labels=labels, box=box
        )
        self.prompted.setdefault(prompt.object_id, set()).add(frame)
        return self._result(frame, obj_ids, logits)

    def propagate(
        self, start: int | None = None, reverse: bool = False, max_frames: int | None = None
    ) -> Iterator[FrameResult]:
        if not self.prompted:
            raise PromptError("no object has a prompt: call add_prompt first")
        first = [min(f) for f in self.prompted.values()]
        last = [max(f) for f in self.prompted.values()]
        order = frame_order(len(self.sequence), start, reverse, max_frames, first, last)
        return self._run(order, reverse)

    def _run(self, order: list[int], reverse: bool) -> Iterator[FrameResult]:
        if reverse and order[0] == 0:
            # VideoPredictor tracks nothing backwards from frame 0; frame 0 alone, forwards.
            runs = self.predictor.propagate_in_video(self.state, 0, 0, reverse=False)
        else:
            runs = self.predictor.propagate_in_video(
                self.state, order[0], len(order) - 1, reverse=reverse
            )
        for frame, obj_ids, logits in runs:
            yield self._result(frame, obj_ids, logits)

    def remove_object(self, object_id: int) -> None:
        object_id = check_object_id(object_id)
        if object_id not in self.prompted:
            raise NotFoundError(
                f"object {object_id} is not in this session (objects: {sorted(self.prompted)})"
            )
        self.predictor.remove_object(self.state, object_id, need_output=False)
        del self.prompted[object_id]

    def close(self) -> None:
        self.state.close()

    def _result(self, frame: int, obj_ids: list, logits: torch.Tensor) -> FrameResult:
        """VideoPredictor's (objects, 1, H, W) logits on `frame` -> a `FrameResult` of the
        objects that have an output there (an object SAM 2 deems absent has logits -1024:
        an empty mask)."""
        result = FrameResult(frame=frame)
        for i, obj_id in enumerate(obj_ids):
            out = self._output(obj_id, frame)
            if out is None:  # not prompted or tracked there yet
                continue
            result.masks[obj_id] = (logits[i, 0] > 0).cpu().numpy()
            result.scores[obj_id] = float(torch.sigmoid(out.object_score_logits.float()).max())
        return result

    def _output(self, obj_id: int, frame: int):
        """The object's latest SAM 2 output on `frame` (pending prompt first), or None."""
        track = self.state.objects[self.state.obj_id_to_idx[obj_id]]
        for outputs in (track.pending_cond, track.pending_non_cond, track.cond, track.non_cond):
            if frame in outputs:
                return outputs[frame]
        return None
