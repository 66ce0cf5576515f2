"""One frame of the image-model tracker: every tracked object's next mask from its previous
state, the frame's embedding and the optical flow since the previous frame.

For an object being tracked (SAM-PT, Rajic et al. 2023; Track-Anything, Yang et al. 2023):
points inside its previous mask are followed by sparse optical flow; the similarity transform
they fit moves the previous logits (the *prior*); the decoder gets the prior as the mask
prompt, its box (grown a little) and the deepest followed points as clicks; of its 4 masks
(single + 3 ambiguity-aware) the one with the best predicted IoU x IoU with the prior wins,
and that product is the object's confidence. Below `lost_below`, or when the mask's mean
embedding no longer looks like the object's appearance, the object is lost: its mask is
emptied and its last good state kept. A lost object is looked for on every frame, at its last
place and at the peak of the embedding's similarity to its appearance; a candidate is
accepted when predicted IoU x appearance similarity reaches `found_above`.

Everything here works on the low-resolution grid (`segany.track.geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segany.predictor import SamPredictor
from segany.track import appearance as app
from segany.track.config import ImageTrackerConfig
from segany.track.decoder import LowPrompt, decode
from segany.track.flow import fit_motion, rescale_affine, sample_points, track_points, warp
from segany.track.geometry import Grid, deepest, expand_box, interior_points, mask_box, mask_iou
from segany.track.state import ObjectState

# The logit of cells moved in from outside the frame: clearly background.
_OUTSIDE = -20.0
# A re-detected mask this many times smaller or larger than the object was is refused.
_AREA_RATIO = 4.0


@dataclass
class FrameView:
    """A frame as the tracker sees it: index, grey flow frame (h, w) uint8 and the image
    embedding (C, eh, ew) float32 (the predictor's current image)."""

    index: int
    grey: np.ndarray
    embedding: np.ndarray


@dataclass
class Outcome:
    """An object on one frame: logits (lh, lw) float32 of its mask, None when lost;
    confidence in [0, 1]."""

    logits: np.ndarray | None
    confidence: float


@dataclass
class _Candidate:
    owner: int
    kind: str  # "track", "place" or "search"
    prompt: LowPrompt
    prior: np.ndarray | None = None  # (lh, lw) bool


class FrameStepper:
    """Runs one frame for several objects with a predictor whose image is the frame."""

    def __init__(self, predictor: SamPredictor, grid: Grid, config: ImageTrackerConfig):
        self.predictor = predictor
        self.grid = grid
        self.config = config
        self.valid = grid.valid_mask()

    # -- priors -------------------------------------------------------------------------------

    def flow_prior(
        self, state: ObjectState, prev_grey: np.ndarray, grey: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The previous logits moved by the object's flow -> ((lh, lw) float32 prior logits,
        (N, 2) continuous low-resolution xy of the followed points that the motion explains)."""
        cfg, grid = self.config, self.grid
        rows, cols = grid.valid
        fh, fw = grey.shape
        on_flow = cv2.resize(
            state.mask[:rows, :cols].astype(np.uint8), (fw, fh), interpolation=cv2.INTER_NEAREST
        ).astype(bool)
        points = sample_points(prev_grey, on_flow, cfg.flow_points)
        src, dst = track_points(prev_grey, grey, points, cfg.fb_threshold)
        motion = fit_motion(src, dst)
        frame_h, frame_w = grid.frame
        sx, sy = grid.scale
        to_low = (sx * frame_w / fw, sy * frame_h / fh)  # low cells per flow pixel
        affine = rescale_affine(motion.affine, to_low)
        prior = warp(state.logits, affine, _OUTSIDE)
        prior[~self.valid] = _OUTSIDE
        followed = (motion.dst[motion.inliers].astype(np.float64) + 0.5) * np.array(to_low)
        return prior, followed

    def _prompt_from(self, prior_logits: np.ndarray, clicks: np.ndarray) -> LowPrompt | None:
        """Box, clicks and mask prompt from a prior; None when the prior is empty."""
        cfg = self.config
        prior = prior_logits > 0
        box = mask_box(prior)
        if box is None:
            return None
        box = expand_box(box, cfg.box_margin, cfg.box_pad, self.grid.valid)
        spacing = max(2.0, 0.15 * min(box[2] - box[0], box[3] - box[1]))
        points = deepest(clicks, prior, cfg.positive_points, spacing)
        if len(points) < cfg.positive_points:
            extra = interior_points(prior, cfg.positive_points - len(points), spacing)
            points = np.concatenate([points, extra])[: cfg.positive_points]
        mask = prior_logits if cfg.mask_prompt else None
        return LowPrompt(points, np.ones(len(points), np.int64), box, mask)

    def _centre(self, state: ObjectState) -> tuple[float, float]:
        """(y, x) low-resolution centre of the object's last good mask (the grid's centre
        when it has none)."""
        rows, cols = np.nonzero(state.mask)
        if len(rows) == 0:
            return self.grid.valid[0] / 2, self.grid.valid[1] / 2
        return float(rows.mean()), float(cols.mean())

    def _reach(self, state: ObjectState) -> float:
        """How far (cells, one standard deviation) from its last place a lost object is
        looked for: 3 object radii, and a tenth of the frame more for each frame lost."""
        radius = max(np.sqrt(state.area / np.pi), 1.0)
        diagonal = float(np.hypot(*self.grid.valid))
        return 3 * radius + 0.1 * diagonal * max(state.lost, 1)

    def _search_prompt(
        self, state: ObjectState, view: FrameView, taken: np.ndarray
    ) -> LowPrompt | None:
        """A click at the embedding cell most like the object (cells other objects hold
        excluded); None without an appearance."""
        if state.appearance is None:
            return None
        similarity = app.similarity_map(view.embedding, state.appearance)  # (eh, ew)
        eh, ew = similarity.shape
        lh, lw = self.grid.low
        blocked = cv2.resize(taken.astype(np.float32), (ew, eh), interpolation=cv2.INTER_AREA)
        valid = cv2.resize(self.valid.astype(np.float32), (ew, eh), interpolation=cv2.INTER_AREA)
        similarity[(blocked > 0.5) | (valid < 0.5)] = -1.0
        # objects reappear near where they went: the similarity fades with the distance
        rows, cols = np.mgrid[0:eh, 0:ew] + 0.5
        cy, cx = self._centre(state)
        far = ((rows * lh / eh - cy) ** 2 + (cols * lw / ew - cx) ** 2) / self._reach(state) ** 2
        similarity = similarity * np.exp(-0.5 * far)
        row, col = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
        point = np.array([[(col + 0.5) * lw / ew, (row + 0.5) * lh / eh]])
        return LowPrompt(point, np.ones(1, np.int64))

    # -- the frame ----------------------------------------------------------------------------

    def step(
        self,
        states: dict[int, ObjectState],
        prev_grey: np.ndarray,
        view: FrameView,
        taken: np.ndarray,
    ) -> dict[int, Outcome]:
        """Each object's outcome on `view`'s frame from its state on the previous frame of the
        pass. taken: (lh, lw) bool cells already held by objects not in `states` (prompted
        ones), never searched. States are not changed (see `settle`)."""
        candidates: list[_Candidate] = []
        for obj, state in states.items():
            if state.lost == 0:
                prior, clicks = self.flow_prior(state, prev_grey, view.grey)
                prompt = self._prompt_from(prior, clicks)
                if prompt is not None:
                    candidates.append(_Candidate(obj, "track", prompt, prior > 0))
                    continue
            # lost (or its prior left the frame): its last place, then a search
            if state.area > 0:
                prompt = self._prompt_from(state.logits, np.zeros((0, 2)))
                if prompt is not None:
                    candidates.append(_Candidate(obj, "place", prompt))
            if state.lost >= self.config.search_after:
                held = taken.copy()
                for other, s in states.items():
                    if other != obj and s.lost == 0:
                        held |= s.mask
                prompt = self._search_prompt(state, view, held)
                if prompt is not None:
                    candidates.append(_Candidate(obj, "search", prompt))
        self._push_apart(candidates)
        outcomes = {obj: Outcome(None, 0.0) for obj in states}
        if not candidates:
            return outcomes
        logits, ious = decode(self.predictor, self.grid, [c.prompt for c in candidates], "all")
        for cand, cand_logits, cand_ious in zip(candidates, logits, ious, strict=True):
            state = states[cand.owner]
            outcome = self._judge(cand, state, cand_logits, cand_ious, view)
            if outcome.logits is not None and (
                outcomes[cand.owner].logits is None
                or outcome.confidence > outcomes[cand.owner].confidence
            ):
                outcomes[cand.owner] = outcome
            elif outcomes[cand.owner].logits is None:
                outcomes[cand.owner].confidence = max(
                    outcomes[cand.owner].confidence, outcome.confidence
                )
        return outcomes

    def _push_apart(self, candidates: list[_Candidate]) -> None:
        """Another tracked object's clicks inside an object's box and outside its prior
        become that object's background clicks (objects side by side or overlapping)."""
        tracks = [c for c in candidates if c.kind == "track"]
        for cand in tracks:
            box = cand.prompt.box
            pushed = []
            for other in tracks:
                if other.owner == cand.owner or len(other.prompt.points) == 0:
                    continue
                pts = other.prompt.points[other.prompt.labels == 1]
                inside = (
                    (pts[:, 0] >= box[0])
                    & (pts[:, 0] <= box[2])
                    & (pts[:, 1] >= box[1])
                    & (pts[:, 1] <= box[3])
                )
                cols = np.clip(pts[:, 0].astype(int), 0, self.grid.low[1] - 1)
                rows = np.clip(pts[:, 1].astype(int), 0, self.grid.low[0] - 1)
                pushed.append(pts[inside & ~cand.prior[rows, cols]])
            if pushed:
                extra = np.concatenate(pushed)
                cand.prompt.points = np.concatenate([cand.prompt.points, extra])
                cand.prompt.labels = np.concatenate(
                    [cand.prompt.labels, np.zeros(len(extra), np.int64)]
                )

    def _judge(
        self,
        cand: _Candidate,
        state: ObjectState,
        logits: np.ndarray,
        ious: np.ndarray,
        view: FrameView,
    ) -> Outcome:
        """The best of a candidate's C masks and whether it is the object."""
        cfg = self.config
        masks = (logits > 0) & self.valid  # (C, lh, lw)
        if cand.kind == "track":
            prior = cand.prior & self.valid
            scores = [float(iou) * mask_iou(m, prior) for m, iou in zip(masks, ious, strict=True)]
        else:
            scores = []
            for m, iou in zip(masks, ious, strict=True):
                area = float(np.count_nonzero(m))
                ratio = area / state.area if state.area > 0 else 1.0
                if area == 0 or not 1 / _AREA_RATIO <= ratio <= _AREA_RATIO:
                    scores.append(0.0)
                    continue
                similarity = app.cosine(app.mask_descriptor(view.embedding, m), state.appearance)
                rows, cols = np.nonzero(m)
                cy, cx = self._centre(state)
                far = ((rows.mean() - cy) ** 2 + (cols.mean() - cx) ** 2) / self._reach(state) ** 2
                scores.append(float(iou) * max(similarity, 0.0) * float(np.exp(-0.5 * far)))
        best = int(np.argmax(scores))
        confidence = float(np.clip(scores[best], 0.0, 1.0))
        if cand.kind == "track":
            if confidence < cfg.lost_below:
                return Outcome(None, confidence)
            if state.appearance is not None:
                descriptor = app.mask_descriptor(view.embedding, masks[best])
                if app.cosine(descriptor, state.appearance) < cfg.appearance_below:
                    return Outcome(None, confidence)
        elif confidence < cfg.found_above:
            return Outcome(None, confidence)
        return Outcome(logits[best], confidence)

    # -- after the frame ----------------------------------------------------------------------

    def settle(
        self,
        states: dict[int, ObjectState],
        outcomes: dict[int, Outcome],
        view: FrameView,
    ) -> None:
        """Update `states` from this frame's final `outcomes` (overlaps already removed): a
        found object takes the frame's logits, confidence and (when confident) a share of its
        appearance; a lost one keeps its last good state and counts the frame."""
        cfg = self.config
        for obj, outcome in outcomes.items():
            state = states[obj]
            if outcome.logits is None:
                state.lost += 1
                state.confidence = outcome.confidence
                continue
            mask = (outcome.logits > 0) & self.valid
            if not mask.any():
                state.lost += 1
                state.confidence = 0.0
                continue
            state.logits = outcome.logits.astype(np.float32)
            state.confidence = outcome.confidence
            state.lost = 0
            state.area = float(np.count_nonzero(mask))
            if outcome.confidence >= cfg.found_above:
                descriptor = app.mask_descriptor(view.embedding, mask)
                state.appearance = app.update(state.appearance, descriptor, cfg.appearance_momentum)
