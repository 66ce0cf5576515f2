"""The image-model tracker: any SAM-style image model (segany-tiny-v2, SAM ViT-B/L/H,
MobileSAM) tracks objects through a sequence with `SamPredictor`, one image embedding per frame
shared by every object (see `segany.track.image_step` for one frame's work).

Memory: per object, the previous frame's state (low-resolution logits, a confidence, an
appearance vector), its prompts' results and a bounded, compressed history of recent masks;
per session, the current frame's embedding and the previous grey flow frame. None of it grows
with the sequence's length beyond `history_frames`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from segany.errors import ImageError, NotFoundError, PromptError
from segany.interactive import contradicted_clicks
from segany.predictor import SamPredictor
from segany.sequences.base import FrameSequence
from segany.track import appearance as app
from segany.track.base import FrameResult, ObjectPrompt, Tracker, TrackingSession
from segany.track.config import ImageTrackerConfig
from segany.track.decoder import LowPrompt, click_prompt, decode
from segany.track.flow import grey_frame
from segany.track.geometry import Grid, expand_box, mask_box, pseudo_logits
from segany.track.image_step import FrameStepper, FrameView, Outcome
from segany.track.overlap import exclusive
from segany.track.prompts import check_object_id, check_prompt
from segany.track.span import frame_order
from segany.track.state import MaskHistory, ObjectState

# Added to a prompted object's logits where objects overlap: the person's word rules.
_PROMPTED_PRIORITY = 100.0


class ImageTracker(Tracker):
    """Sessions of the image-model tracker for a SAM-style model (not SAM 2: see
    `segany.track.build_tracker`)."""

    def __init__(self, model: torch.nn.Module, config: ImageTrackerConfig | None = None):
        self.config = config or ImageTrackerConfig()
        self.model = model
        spec = getattr(model, "spec", None)
        self.name = f"image-tracker ({getattr(spec, 'name', type(model).__name__)})"

    def open(self, sequence: FrameSequence) -> ImageSession:
        edge = "auto" if self.config.refine_edges else None
        return ImageSession(SamPredictor(self.model, edge_refinement=edge), sequence, self.config)


@dataclass
class _Prompt:
    """A person's prompt and what it gave on its frame: prior (lh, lw) bool, the object's
    mask there before the prompt (tracked), or None; logits (lh, lw) float32 and confidence,
    set by `ImageSession._solve`."""

    prompt: ObjectPrompt
    prior: np.ndarray | None
    logits: np.ndarray | None = None
    confidence: float = 0.0


class ImageSession(TrackingSession):
    """One sequence tracked by the image model; see `TrackingSession` for the methods."""

    def __init__(
        self, predictor: SamPredictor, sequence: FrameSequence, config: ImageTrackerConfig
    ) -> None:
        if len(sequence) == 0:
            raise ImageError("the sequence has no frames")
        self.predictor = predictor
        self.sequence = sequence
        self.config = config
        model = predictor.model
        low = tuple(model.prompt_encoder.mask_input_size)
        self.grid = Grid((sequence.height, sequence.width), model.image_size, low)
        self.stepper = FrameStepper(predictor, self.grid, config)
        self.prompts: dict[int, dict[int, _Prompt]] = {}
        self.history: dict[int, MaskHistory] = {}
        self.appearance: dict[int, np.ndarray | None] = {}
        self.states: dict[int, ObjectState] = {}  # the current pass's, one per object
        self._view: FrameView | None = None

    # -- the interface ------------------------------------------------------------------------

    def add_prompt(self, prompt: ObjectPrompt) -> FrameResult:
        seq = self.sequence
        prompt = check_prompt(prompt, len(seq), seq.height, seq.width)
        obj, frame = prompt.object_id, prompt.frame
        self._frame(frame)
        self.history.setdefault(obj, MaskHistory(self.config.history_frames))
        earlier = self.prompts.get(obj, {}).get(frame)
        if earlier is not None:  # a replaced prompt refines what was tracked there
            prior = earlier.prior
        else:
            kept = self.history[obj].get(frame)
            prior = None if kept is None or not kept[0].any() else kept[0]
        self.prompts.setdefault(obj, {})[frame] = _Prompt(prompt, prior)
        self._solve(frame)
        items = {}
        for other in self.prompts:
            restored = self._restore(other, frame)
            if restored is not None:
                items[other] = restored
        return self._emit(frame, items, prompted=set(self._prompted_on(frame)))

    def propagate(
        self, start: int | None = None, reverse: bool = False, max_frames: int | None = None
    ) -> Iterator[FrameResult]:
        if not self.prompts:
            raise PromptError("no object has a prompt: call add_prompt first")
        first = [min(frames) for frames in self.prompts.values()]
        last = [max(frames) for frames in self.prompts.values()]
        order = frame_order(len(self.sequence), start, reverse, max_frames, first, last)
        return self._run(order)

    def remove_object(self, object_id: int) -> None:
        object_id = check_object_id(object_id)
        if object_id not in self.prompts:
            raise NotFoundError(
                f"object {object_id} is not in this session (objects: {sorted(self.prompts)})"
            )
        frames = sorted(self.prompts[object_id])
        for table in (self.prompts, self.history, self.appearance, self.states):
            table.pop(object_id, None)
        for frame in frames:  # its clicks no longer push the others' masks away
            if self._prompted_on(frame):
                self._frame(frame)
                self._solve(frame)

    def close(self) -> None:
        self._view = None
        self.states.clear()
        self.predictor.reset_image()

    def state_bytes(self) -> int:
        """Bytes the session holds for its objects (states, prompt results, histories,
        appearances): flat in the sequence's length once the histories are full."""
        total = sum(s.nbytes() for s in self.states.values())
        total += sum(r.logits.nbytes for p in self.prompts.values() for r in p.values())
        total += sum(h.nbytes() for h in self.history.values())
        total += sum(a.nbytes for a in self.appearance.values() if a is not None)
        return total

    # -- propagation --------------------------------------------------------------------------

    def _run(self, order: list[int]) -> Iterator[FrameResult]:
        self.states = {}
        prev_grey = None
        for step, frame in enumerate(order):
            view = self._frame(frame)
            prompted = self._prompted_on(frame)
            items: dict[int, Outcome] = {}
            for obj in prompted:
                result = self.prompts[obj][frame]
                items[obj] = Outcome(result.logits, result.confidence)
                self.states[obj] = self._state_from(obj, result.logits, result.confidence)
            if step == 0:
                for obj in self.prompts:
                    restored = None if obj in prompted else self._restore(obj, frame)
                    if restored is not None:
                        items[obj] = restored
                        self.states[obj] = self._state_from(
                            obj, restored.logits, restored.confidence
                        )
            else:
                tracked = {o: s for o, s in self.states.items() if o not in prompted}
                taken = np.zeros(self.grid.low, dtype=bool)
                for obj in prompted:
                    taken |= items[obj].logits > 0
                items.update(self.stepper.step(tracked, prev_grey, view, taken))
            result = self._emit(frame, items, prompted=set(prompted))
            self.stepper.settle(self.states, {o: items[o] for o in self.states}, view)
            for obj, state in self.states.items():
                self.appearance[obj] = state.appearance
            prev_grey = view.grey
            yield result

    def _state_from(self, obj: int, logits: np.ndarray | None, confidence: float) -> ObjectState:
        if logits is None:  # lost there: no place to look first, only the search
            logits = np.full(self.grid.low, -20.0, dtype=np.float32)
        mask = logits > 0
        return ObjectState(
            logits=logits.astype(np.float32),
            confidence=confidence,
            appearance=self.appearance.get(obj),
            lost=0 if mask.any() else 1,
            area=float(np.count_nonzero(mask)),
        )

    def _prompted_on(self, frame: int) -> list[int]:
        return [obj for obj, frames in self.prompts.items() if frame in frames]

    def _restore(self, obj: int, frame: int) -> Outcome | None:
        """The object's latest result on `frame` (its prompt's, else its history's), or None."""
        result = self.prompts.get(obj, {}).get(frame)
        if result is not None:
            return Outcome(result.logits, result.confidence)
        kept = self.history.get(obj)
        kept = None if kept is None else kept.get(frame)
        if kept is None:
            return None
        mask, score = kept
        return Outcome(pseudo_logits(mask) if mask.any() else None, score)

    # -- frames and prompts -------------------------------------------------------------------

    def _frame(self, frame: int) -> FrameView:
        """The frame's view; the predictor's image is set to it (once per frame)."""
        if self._view is not None and self._view.index == frame:
            return self._view
        rgb = self.sequence.rgb(frame)
        self.predictor.set_image(rgb)
        embedding = self.predictor.get_image_embedding()[0].float().cpu().numpy()
        self._view = FrameView(frame, grey_frame(rgb, self.config.flow_size), embedding)
        return self._view

    def _solve(self, frame: int) -> None:
        """The masks of every object prompted on `frame` (the predictor's image), decoded
        together. Each object's clicks are its prompt; the other objects' foreground clicks
        there are its background clicks (no pixel belongs to two objects). An object with a
        tracked mask there (a correction) also gets that mask as the mask prompt and its box,
        grown to the clicks, as interactive SAM refines an earlier answer; the answer is the
        output that keeps a corrected object (`_loses_object`), then the one contradicting the
        fewest clicks, then the refined one, then the single-mask output, then the highest
        predicted IoU (`segany.interactive.rank_candidates`). The refinement runs with the
        tracked mask's own box and with a grown one (a tight box lets a background click
        cut off the wrong part; a grown one lets the mask spread), each reaching the
        positive clicks."""
        grid = self.grid
        objects = self._prompted_on(frame)
        clicks = {}
        for obj in objects:
            user = self.prompts[obj][frame].prompt
            clicks[obj] = (
                click_prompt(user.points, grid)
                if user.points is not None
                else (np.zeros((0, 2)), np.zeros(0, np.int64))
            )
        prompts, owners = [], []
        for obj in objects:
            entry = self.prompts[obj][frame]
            points, labels = clicks[obj]
            others = [clicks[o][0][clicks[o][1] == 1] for o in objects if o != obj]
            pushed = np.concatenate([points, *others]) if others else points
            pushed_labels = np.concatenate([labels, np.zeros(len(pushed) - len(points), np.int64)])
            box = entry.prompt.box
            box = None if box is None else grid.frame_to_low(box.reshape(2, 2)).ravel()
            prompts.append(LowPrompt(pushed, pushed_labels, box))
            owners.append((obj, False))
            if entry.prior is not None and box is None:
                tight = mask_box(entry.prior).astype(np.float64)
                positives = points[labels == 1]
                for refined in (tight, expand_box(tight, 0.1, 2.0, grid.valid)):
                    if len(positives):  # a missed part clicked: the box reaches it
                        refined[:2] = np.minimum(refined[:2], positives.min(axis=0) - 2)
                        refined[2:] = np.maximum(refined[2:], positives.max(axis=0) + 2)
                    prior_logits = pseudo_logits(entry.prior)
                    prompts.append(LowPrompt(pushed, pushed_labels, refined, prior_logits))
                    owners.append((obj, True))
        logits, ious = decode(self.predictor, grid, prompts, "all")
        valid = grid.valid_mask()
        for obj in objects:
            points, labels = clicks[obj]
            rows = [i for i, (o, _) in enumerate(owners) if o == obj]
            masks = np.concatenate([logits[i] > 0 for i in rows])  # (4 x rows, lh, lw)
            wrong = contradicted_clicks(masks, points - 0.5, labels)
            loses = _loses_object(masks, self.prompts[obj][frame].prior)
            refined = np.concatenate([np.full(4, owners[i][1]) for i in rows])
            single = np.tile(np.arange(4) == 0, len(rows))
            iou = np.concatenate([ious[i] for i in rows])
            best = np.lexsort((-iou, ~single, ~refined, wrong, loses))[0]
            chosen = logits[rows[best // 4], best % 4]
            chosen = np.where(valid, chosen, min(float(chosen.min()), -1.0))
            entry = self.prompts[obj][frame]
            entry.logits = chosen.astype(np.float32)
            entry.confidence = float(np.clip(iou[best], 0.0, 1.0))
            descriptor = app.mask_descriptor(self._view.embedding, entry.logits > 0)
            if descriptor is not None:
                self.appearance[obj] = descriptor

    # -- output -------------------------------------------------------------------------------

    def _emit(self, frame: int, items: dict[int, Outcome], prompted: set[int]) -> FrameResult:
        """Masks at the frame's size from low-resolution outcomes. A pixel two objects claim
        goes to the one with the higher logit there (prompted objects first), in the
        low-resolution states as in the output; the histories record the frame."""
        result = FrameResult(frame=frame)
        ids = list(items)
        found = [o for o in ids if items[o].logits is not None]
        bonus = np.array([_PROMPTED_PRIORITY if o in prompted else 0.0 for o in found])
        if found:
            low = np.stack([items[o].logits for o in found])  # (K, lh, lw)
            owned = exclusive(low > 0, low + bonus[:, None, None])
            for k, obj in enumerate(found):
                lost_cells = (low[k] > 0) & ~owned[k]
                if lost_cells.any():
                    items[obj].logits = np.where(lost_cells, -1.0, low[k]).astype(np.float32)
            masks, logits = self._upsample(np.stack([items[o].logits for o in found]))
            masks = exclusive(masks, logits + bonus[:, None, None].astype(np.float32))
        height, width = self.grid.frame
        for obj in ids:
            outcome = items[obj]
            if outcome.logits is not None:
                mask = masks[found.index(obj)]
            else:
                mask = np.zeros((height, width), dtype=bool)
            result.masks[obj] = mask
            score = float(outcome.confidence)
            if outcome.logits is None:  # lost: below every tracked object's score
                score = min(score, 0.5 * self.config.lost_below)
            result.scores[obj] = score
            low_mask = None if outcome.logits is None else outcome.logits > 0
            if low_mask is None:
                low_mask = np.zeros(self.grid.low, dtype=bool)
            self.history.setdefault(obj, MaskHistory(self.config.history_frames))
            self.history[obj].put(frame, low_mask, outcome.confidence)
        return result

    def _upsample(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, lh, lw) low-resolution logits -> (K, H, W) bool masks at the frame's size
        (edge-refined where the predictor refines; its image is the frame) and the (K, H, W)
        float32 logits there."""
        model = self.predictor.model
        tensor = torch.from_numpy(logits)[:, None]  # (K, 1, lh, lw)
        with torch.inference_mode():
            full = model.postprocess_masks(tensor, self.grid.input_size, self.grid.frame)
        full = full[:, 0].numpy()
        return self.predictor.threshold_masks(full), full


# A correction's candidate keeping less than this share of the tracked mask loses the object.
_KEPT_SHARE = 0.25


def _loses_object(masks: np.ndarray, prior: np.ndarray | None) -> np.ndarray:
    """(C,) bool: which of the candidate masks (C, lh, lw) bool lose a corrected object,
    i.e. are empty or keep under `_KEPT_SHARE` of its tracked mask `prior` (lh, lw) bool (a
    click without a positive one, e.g. a lone background click, decoded without the mask
    prompt segments nothing); all False without a prior (a first prompt)."""
    if prior is None:
        return np.zeros(len(masks), dtype=bool)
    kept = np.count_nonzero(masks & prior, axis=(1, 2))
    return (kept < _KEPT_SHARE * np.count_nonzero(prior)) | ~masks.any(axis=(1, 2))
