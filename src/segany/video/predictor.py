"""`VideoPredictor`: SAM 2's interactive video segmentation, with the reference
`sam2.SAM2VideoPredictor`'s methods and results, in memory that does not grow with the video.

Code written for `sam2` runs by changing the import:

    predictor = segany.VideoPredictor(segany.build_sam("sam2.1_hiera_t"))
    state = predictor.init_state(video_path="frames/")  # or "clip.mp4"
    _, obj_ids, logits = predictor.add_new_points_or_box(state, 0, 1, points=[[x, y]], labels=[1])
    for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
        masks = logits > 0  # (objects, 1, H, W) at the video's resolution

Frames are decoded when the model needs them (`segany.video.frames`); of the per-frame outputs
only those the memory attention can still reach are kept (`segany.video.state`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import torch

from segany.errors import ConfigError, NotFoundError, PromptError
from segany.modeling.sam2.config import TrackingConfig
from segany.modeling.sam2.tracking import Sam2Tracker
from segany.video.frames import open_frames
from segany.video.postprocess import mask_to_model_input
from segany.video.prompts import append_points, mask_prompt, point_prompt, to_model_frame
from segany.video.runner import FrameRunner
from segany.video.state import FORWARD, REVERSE, UNTRACKED, ObjectTrack, Retention, VideoState

# (frame_idx, object ids, (objects, 1, H, W) float32 mask logits at the video's resolution)
FrameResult = tuple[int, list[Hashable], torch.Tensor]


class VideoPredictor:
    """Segment and track objects through a video from point, box and mask prompts.

    Args:
        model: a SAM 2 / 2.1 model (`segany.build_sam("sam2.1_hiera_t", ...)`).
        fill_hole_area: fill background holes of at most this many pixels in the low-resolution
            masks. The reference sets 8 but skips the step where its CUDA extension is not
            built (any CPU), so 0 (off) matches it there.
        non_overlap_masks: in the masks returned, give each pixel to the highest-scoring object
            only (the reference's option, off by default).
        add_all_frames_to_correct_as_cond: a click on an already tracked frame makes it a
            conditioning frame (the reference's option, off by default).
        keep_all_outputs: keep every frame's output, as the reference does (memory grows with
            the video), so that corrections anywhere see the memories the reference would.
        cache_frames: preprocessed frames kept in memory (12 MB each at 1024 px).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        fill_hole_area: int = 0,
        non_overlap_masks: bool = False,
        add_all_frames_to_correct_as_cond: bool = False,
        keep_all_outputs: bool = False,
        cache_frames: int = 4,
    ) -> None:
        if not isinstance(getattr(model, "tracking", None), TrackingConfig):
            raise ConfigError(
                f"VideoPredictor needs a SAM 2 model (e.g. segany.build_sam('sam2.1_hiera_t')), "
                f"got a {type(model).__name__}"
            )
        self.model = model
        self.tracker = Sam2Tracker(model, binarize_mask_from_points=True)
        self.runner = FrameRunner(self.tracker, fill_hole_area, non_overlap_masks)
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.cache_frames = cache_frames
        cfg, stride = model.tracking, self.tracker.memory_stride
        # How far back a tracked frame's memory reaches: its spatial memories (the last frame,
        # then every stride-th one) and its object pointers.
        reach = max(stride * (cfg.num_maskmem - 2) + 1, 1, cfg.max_obj_ptrs_in_encoder - 1)
        self.retention = Retention(None if keep_all_outputs else reach)

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def device(self) -> torch.device:
        return self.model.device

    # -- sessions -----------------------------------------------------------------------------

    @torch.inference_mode()
    def init_state(
        self,
        video_path: Any,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
    ) -> VideoState:
        """A session on `video_path`: a folder of JPEG/PNG frames named by number, a video file
        (PyAV: `segany[video]`) or its bytes, or a `segany.video.FrameSource`.

        offload_video_to_cpu: keep the cached frames in CPU memory; offload_state_to_cpu: keep
        the memory bank and masks there. `async_loading_frames` is accepted for compatibility:
        frames are always read when needed. Raises `ImageError` for a missing or empty video.
        """
        del async_loading_frames
        device = self.device
        frames = open_frames(
            video_path,
            self.image_size,
            cache_frames=self.cache_frames,
            device="cpu" if offload_video_to_cpu else device,
        )
        state = VideoState(
            frames=frames,
            device=device,
            storage_device=torch.device("cpu") if offload_state_to_cpu else device,
            offload_video_to_cpu=offload_video_to_cpu,
            offload_state_to_cpu=offload_state_to_cpu,
        )
        self.runner.features(state, 0)  # most users click on frame 0 first
        return state

    @torch.inference_mode()
    def reset_state(self, inference_state: VideoState) -> None:
        """Forget every object, prompt and result (the video stays open)."""
        inference_state.objects.clear()
        inference_state.obj_id_to_idx.clear()
        inference_state.head = None

    # -- prompts ------------------------------------------------------------------------------

    @torch.inference_mode()
    def add_new_points_or_box(
        self,
        inference_state: VideoState,
        frame_idx: int,
        obj_id: Hashable,
        points: Any = None,
        labels: Any = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: Any = None,
    ) -> FrameResult:
        """Clicks and/or a box for object `obj_id` on frame `frame_idx` -> the frame's masks.

        points: (N, 2) xy pixels of the video (in [0, 1] when `normalize_coords=False`);
        labels: (N,) 1 positive, 0 negative; box: x0, y0, x1, y1 (replaces the frame's clicks).
        Returns (frame_idx, object ids, (objects, 1, H, W) logits at the video's resolution);
        objects without a result on this frame get -1024.
        """
        state = inference_state
        frame_idx = self._check_frame(state, frame_idx)
        coords, labels = point_prompt(points, labels, box, clear_old_points)
        video_size = (state.video_height, state.video_width)
        coords = to_model_frame(coords, video_size, self.image_size, normalize_coords)
        track = self._track_for(state, obj_id)
        old = None if clear_old_points else track.points.get(frame_idx)
        prompt = append_points(old, coords.to(state.device), labels.to(state.device))
        track.points[frame_idx] = prompt
        track.mask_frames.discard(frame_idx)
        is_init, reverse, is_cond = self._frame_kind(track, frame_idx)
        # New clicks refine the frame's latest mask (fed back to the decoder).
        prev = track.stored(frame_idx, is_cond)
        prev_logits = None
        if prev is not None:
            prev_logits = prev.pred_masks.to(state.device).clamp(-32.0, 32.0)
        out, _ = self.runner.run(
            state, track, frame_idx, is_init, reverse, points=prompt, prev_logits=prev_logits
        )
        track.pending(is_cond)[frame_idx] = out
        return frame_idx, state.obj_ids, self.runner.frame_masks(state, frame_idx, is_cond)

    def add_new_points(self, *args: Any, **kwargs: Any) -> FrameResult:
        """The reference's deprecated name of `add_new_points_or_box`."""
        return self.add_new_points_or_box(*args, **kwargs)

    @torch.inference_mode()
    def add_new_mask(
        self, inference_state: VideoState, frame_idx: int, obj_id: Hashable, mask: Any
    ) -> FrameResult:
        """A (H, W) mask (bool, any size: resized to the model's input) for object `obj_id` on
        frame `frame_idx`; it replaces the frame's clicks. Returns as `add_new_points_or_box`.
        """
        state = inference_state
        frame_idx = self._check_frame(state, frame_idx)
        mask = mask_prompt(mask)
        track = self._track_for(state, obj_id)
        mask_inputs = mask_to_model_input(mask.to(state.device), self.image_size)
        track.mask_frames.add(frame_idx)
        track.points.pop(frame_idx, None)
        is_init, reverse, is_cond = self._frame_kind(track, frame_idx)
        out, _ = self.runner.run(state, track, frame_idx, is_init, reverse, mask=mask_inputs)
        track.pending(is_cond)[frame_idx] = out
        return frame_idx, state.obj_ids, self.runner.frame_masks(state, frame_idx, is_cond)

    @torch.inference_mode()
    def clear_all_prompts_in_frame(
        self,
        inference_state: VideoState,
        frame_idx: int,
        obj_id: Hashable,
        need_output: bool = True,
    ) -> FrameResult | None:
        """Remove object `obj_id`'s prompts on frame `frame_idx`; its result there becomes an
        ordinary tracked one. Returns the frame's masks as `add_new_points_or_box` (None
        without `need_output`). Raises `NotFoundError` for an unknown object id."""
        state = inference_state
        frame_idx = self._check_frame(state, frame_idx)
        track = state.objects[self._known_index(state, obj_id)]
        track.points.pop(frame_idx, None)
        track.mask_frames.discard(frame_idx)
        track.pending_cond.pop(frame_idx, None)
        track.pending_non_cond.pop(frame_idx, None)
        out = track.cond.pop(frame_idx, None)
        if out is not None:
            track.non_cond[frame_idx] = out
            track.tracked[frame_idx] = UNTRACKED
        if not need_output:
            return None
        is_cond = any(frame_idx in t.pending_cond for t in state.objects)
        return frame_idx, state.obj_ids, self.runner.frame_masks(state, frame_idx, is_cond)

    @torch.inference_mode()
    def remove_object(
        self,
        inference_state: VideoState,
        obj_id: Hashable,
        strict: bool = False,
        need_output: bool = True,
    ) -> tuple[list[Hashable], list[tuple[int, torch.Tensor]]]:
        """Remove object `obj_id` -> (remaining object ids, [(frame_idx, masks)] of the frames
        it had prompts on, masks as `add_new_points_or_box`). An unknown id is ignored, or a
        `NotFoundError` with `strict`."""
        state = inference_state
        if obj_id not in state.obj_id_to_idx:
            if strict:
                self._known_index(state, obj_id)  # raises
            return state.obj_ids, []
        if len(state.objects) == 1:
            self.reset_state(state)
            return state.obj_ids, []
        frames = sorted(state.objects[state.obj_id_to_idx[obj_id]].prompted_frames())
        for frame_idx in frames:
            self.clear_all_prompts_in_frame(state, frame_idx, obj_id, need_output=False)
        del state.objects[state.obj_id_to_idx[obj_id]]
        state.obj_id_to_idx = {t.obj_id: i for i, t in enumerate(state.objects)}
        updated = []
        if need_output:
            for frame_idx in frames:
                is_cond = any(frame_idx in t.pending_cond for t in state.objects)
                updated.append((frame_idx, self.runner.frame_masks(state, frame_idx, is_cond)))
        return state.obj_ids, updated

    # -- propagation --------------------------------------------------------------------------

    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state: VideoState) -> None:
        """Encode the memories of the frames prompted since the last propagation and file
        them in the memory bank. Raises `PromptError` if an object has no prompt."""
        state = inference_state
        if not state.objects:
            raise PromptError("no object has a prompt: add points, a box or a mask first")
        for track in state.objects:
            for is_cond in (False, True):
                pending = track.pending(is_cond)
                kept = track.cond if is_cond else track.non_cond
                for frame_idx, out in pending.items():
                    if out.maskmem_features is None:
                        self.runner.encode_memory(state, frame_idx, out)
                    kept[frame_idx] = out
                pending.clear()
            if not track.cond:
                raise PromptError(
                    f"object id {track.obj_id} has no prompt: add points, a box or a mask "
                    "for it, or remove it"
                )
            for frame_idx in track.cond:
                track.non_cond.pop(frame_idx, None)

    @torch.inference_mode()
    def propagate_in_video(
        self,
        inference_state: VideoState,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[FrameResult]:
        """Track every object from `start_frame_idx` (default: the first prompted frame) over
        `max_frame_num_to_track` more frames (default: to the end; to the start in
        `reverse`), yielding (frame_idx, object ids, (objects, 1, H, W) logits) per frame."""
        state = inference_state
        self.propagate_in_video_preflight(state)
        tracks = list(state.objects)
        obj_ids = state.obj_ids
        num_frames = state.num_frames
        if start_frame_idx is None:
            start_frame_idx = min(t for track in tracks for t in track.cond)
        start = self._check_frame(state, start_frame_idx)
        span = num_frames if max_frame_num_to_track is None else max_frame_num_to_track
        if reverse:
            end = max(start - span, 0)
            order = range(start, end - 1, -1) if start > 0 else range(0)
        else:
            order = range(start, min(start + span, num_frames - 1) + 1)
        if len(order):
            state.head = start
            self.retention.evict(state)
        for frame_idx in order:
            logits = []
            for track in tracks:
                out = track.cond.get(frame_idx)
                if out is not None:
                    pred = out.pred_masks.to(state.device)
                else:
                    out, pred = self.runner.run(
                        state, track, frame_idx, False, reverse, run_mem_encoder=True
                    )
                    track.non_cond[frame_idx] = out
                track.tracked[frame_idx] = REVERSE if reverse else FORWARD
                logits.append(pred)
            state.head = frame_idx
            self.retention.evict_behind(state, frame_idx, reverse)
            yield frame_idx, obj_ids, self.runner.to_video(state, torch.cat(logits, dim=0))

    # -- helpers ------------------------------------------------------------------------------

    def _check_frame(self, state: VideoState, frame_idx: Any) -> int:
        n = state.num_frames
        if isinstance(frame_idx, bool) or not hasattr(frame_idx, "__index__"):
            raise PromptError(f"frame_idx must be an int, got {type(frame_idx).__name__}")
        if not 0 <= frame_idx < n:
            raise PromptError(f"frame_idx {frame_idx} is out of range: the video has {n} frames")
        return int(frame_idx)

    def _known_index(self, state: VideoState, obj_id: Hashable) -> int:
        index = state.obj_id_to_idx.get(obj_id)
        if index is None:
            raise NotFoundError(f"no object id {obj_id!r}; the objects are {state.obj_ids}")
        return index

    def _track_for(self, state: VideoState, obj_id: Hashable) -> ObjectTrack:
        """The object's track, a new one for a new id (objects may be added at any time)."""
        index = state.obj_id_to_idx.get(obj_id)
        if index is None:
            index = len(state.objects)
            state.objects.append(ObjectTrack(obj_id, state.num_frames))
            state.obj_id_to_idx[obj_id] = index
        return state.objects[index]

    def _frame_kind(self, track: ObjectTrack, frame_idx: int) -> tuple[bool, bool, bool]:
        """(initial conditioning frame, tracked in reverse, filed as conditioning) for a new
        prompt: a frame not tracked yet is segmented from its prompt alone; a tracked one is
        corrected with memory, in the direction it was tracked."""
        direction = track.tracked[frame_idx]
        is_init = direction == UNTRACKED
        is_cond = is_init or self.add_all_frames_to_correct_as_cond
        return is_init, direction == REVERSE, is_cond
