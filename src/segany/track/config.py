"""`ImageTrackerConfig`: the image-model tracker's options, one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, fields

from segany.errors import ConfigError


@dataclass(frozen=True)
class ImageTrackerConfig:
    """Options of the image-model tracker (`segany.track.image_tracker`).

    Prompts each frame (SAM-PT, Rajic et al. 2023; Track-Anything, Yang et al. 2023):
        positive_points: flow-tracked points inside the object given as clicks (0: none).
        box_margin, box_pad: the previous mask's box, moved by the flow, grown by this share
            of its size plus this many low-resolution cells, is the box prompt.
        mask_prompt: feed the previous frame's logits, moved by the flow, as the mask prompt.
    Optical flow:
        flow_size: long side (px) of the grey frames the flow runs on.
        flow_points: points followed per object; fb_threshold: forward-backward error (flow
            frame px) above which a point is dropped.
    Confidence (predicted IoU x agreement with the flow-warped previous mask):
        lost_below: an object whose confidence falls below this is lost (its mask emptied;
            its score then at most half this, below every tracked object's).
        appearance_below: ... or whose mask looks less like it (cosine of the mean embedding
            under the mask to the object's appearance) than this.
        found_above: a re-detection of a lost object is accepted at this confidence.
        appearance_momentum: weight of the old appearance in its running mean.
        search_after: frames an object stays lost before the embedding search starts (the
            first frames try the last known place only).
    Memory and output:
        history_frames: per object, the latest frames whose masks are kept (1 bit per
            low-resolution cell, 8 KB at 256 x 256) so that a correction or a new start on
            one of them begins from the tracked mask; bounded, whatever the length.
        image_size: run the image encoder at this input size (None: the model's own); only
            models whose encoder allows it (segany-tiny-v2's pyramid encoder).
        refine_edges: snap the output masks to the frame's edges with the model's guided
            filter, where the model has one.
    """

    positive_points: int = 2
    box_margin: float = 0.1
    box_pad: float = 2.0
    mask_prompt: bool = True
    flow_size: int = 640
    flow_points: int = 40
    fb_threshold: float = 1.0
    lost_below: float = 0.35
    appearance_below: float = 0.5
    found_above: float = 0.55
    appearance_momentum: float = 0.8
    search_after: int = 0
    history_frames: int = 256
    image_size: int | None = None
    refine_edges: bool = True

    def __post_init__(self) -> None:
        for name in ("positive_points", "flow_points", "history_frames", "search_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.flow_size < 16:
            raise ConfigError(f"flow_size must be >= 16 px, got {self.flow_size}")
        for name in ("lost_below", "appearance_below", "found_above", "appearance_momentum"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.box_margin < 0 or self.box_pad < 0 or self.fb_threshold <= 0:
            raise ConfigError("box_margin and box_pad must be >= 0 and fb_threshold > 0")

    @classmethod
    def from_options(cls, options: dict) -> ImageTrackerConfig:
        """A config from keyword options; `ConfigError` naming the known ones for any other."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown image-tracker option(s) {unknown}; known: {sorted(known)}")
        return cls(**options)
