"""`segany.VideoPredictor` against sam2 1.1.0's `SAM2VideoPredictor` on shared random weights,
its bounded memory bank, and its typed errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sam2.build_sam import build_sam2_video_predictor

import segany
from sam2_reference import NAMES, build_reference, reference_config, save_checkpoint
from segany.errors import ConfigError, ImageError, NotFoundError, PromptError
from segany.modeling.sam2.config import TrackingConfig
from segany.modeling.sam2.memory_bank import FrameOutput, object_pointer_frames
from segany.modeling.sam2.memory_bank import spatial_memory_frames as memory_frames
from segany.video.frames import FrameSource
from segany.video.postprocess import fill_holes, non_overlapping
from segany.video.state import VideoState

SIZE = 128  # model input: an 8 x 8 embedding grid keeps the reference's runs short
H, W = 96, 128  # the video's resolution
FAST = {"sam2.1_hiera_t", "sam2_hiera_t"}
OBJECT_SCORE_BIAS = 1.0


def write_frames(folder, n: int = 10):
    """n JPEG frames: a textured background, a red disc moving right, a green square moving
    left and down."""
    folder.mkdir(exist_ok=True)
    yy, xx = np.mgrid[0:H, 0:W]
    for t in range(n):
        img = np.empty((H, W, 3), np.uint8)
        img[...] = (40, 60, 80)
        img += (np.sin(xx / 7.0 + t)[..., None] * 20 + 20).astype(np.uint8)
        img[(xx - (20 + 6 * t)) ** 2 + (yy - 30) ** 2 < 14**2] = (230, 40, 40)
        img[(abs(xx - (100 - 5 * t)) < 12) & (abs(yy - (65 + 2 * t)) < 10)] = (30, 200, 90)
        Image.fromarray(img).save(folder / f"{t:05d}.jpg", quality=95)
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_frames(tmp_path_factory.mktemp("video") / "frames")


def models(name: str, tmp_path, image_size: int = SIZE):
    """(reference SAM2VideoPredictor, segany Sam2) with the same seeded random weights; the
    object-score head is biased towards "present" (random weights mostly judge the object
    absent, and absent objects' masks are a constant -1024)."""
    weights = build_reference(name, image_size)
    with torch.no_grad():
        weights.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(OBJECT_SCORE_BIAS)
    path = save_checkpoint(weights, tmp_path / f"{name}.pt")
    reference = build_sam2_video_predictor(
        reference_config(name),
        str(path),
        device="cpu",
        hydra_overrides_extra=[f"++model.image_size={image_size}"],
    )
    return reference, segany.build_sam(name, checkpoint=path, image_size=image_size)


def session(predictor, video) -> list[tuple[str, int, list, torch.Tensor]]:
    """Every call of the API on a 10-frame video; each result as (call, frame, ids, logits).

    Objects are tracked only from their prompted frames onwards, in each direction: on a CPU,
    the reference fails (bfloat16 memories meet float32 weights) on a frame that has neither
    an object pointer from the past nor a tracked neighbour.
    """
    results = []

    def keep(call, result):
        frame_idx, obj_ids, logits = result
        results.append((call, frame_idx, list(obj_ids), logits.float().cpu().clone()))

    mask = np.zeros((H, W), bool)
    mask[20:45, 45:70] = True
    with torch.inference_mode():
        state = predictor.init_state(video_path=str(video))
        keep("points", predictor.add_new_points_or_box(state, 0, 1, [[20, 30]], [1]))
        keep("more", predictor.add_new_points_or_box(state, 0, 1, [[40, 60]], [0], False))
        keep("box", predictor.add_new_points_or_box(state, 0, 2, box=[88, 52, 112, 76]))
        for result in predictor.propagate_in_video(state):
            keep("forward", result)
        keep("mask", predictor.add_new_mask(state, 5, 3, mask))
        keep("correct", predictor.add_new_points_or_box(state, 7, 1, [[62, 30]], [1]))
        for result in predictor.propagate_in_video(state, start_frame_idx=5):
            keep("from 5", result)
        for result in predictor.propagate_in_video(state, start_frame_idx=5, reverse=True):
            keep("reverse", result)
        passing = predictor.propagate_in_video(state, 3, max_frame_num_to_track=5)
        for i, result in enumerate(passing):
            keep("passing", result)
            if i == 1:  # a click while propagation is under way
                keep("mid", predictor.add_new_points_or_box(state, 9, 2, [[55, 83]], [1]))
        for result in predictor.propagate_in_video(state, start_frame_idx=8):
            keep("from 8", result)
        keep("clear", predictor.clear_all_prompts_in_frame(state, 9, 2))
        obj_ids, updated = predictor.remove_object(state, 3)
        for frame_idx, logits in updated:
            keep("removed", (frame_idx, obj_ids, logits))
        for result in predictor.propagate_in_video(state, 8, 4, reverse=True):
            keep("reverse from 8", result)
        predictor.reset_state(state)
        keep("after reset", predictor.add_new_points_or_box(state, 4, 5, [[44, 30]], [1]))
        for result in predictor.propagate_in_video(state, max_frame_num_to_track=3):
            keep("forward again", result)
    return results


def assert_same(ours, theirs):
    assert [r[:3] for r in ours] == [r[:3] for r in theirs]
    for (call, frame_idx, _, a), (*_, b) in zip(ours, theirs, strict=True):
        assert a.shape == b.shape == (a.shape[0], 1, H, W), (call, frame_idx)
        where = f"{call} on frame {frame_idx}"
        assert (a - b).abs().max().item() <= 1e-2, where
        assert ((a > 0) == (b > 0)).float().mean().item() >= 0.999, where


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]
)
def test_session_equals_reference(name, video, tmp_path):
    reference, model = models(name, tmp_path)
    ours = session(segany.VideoPredictor(model), video)
    assert len(ours) == 47
    assert_same(ours, session(reference, video))


def test_video_file_equals_folder(tiny_predictor, video, tmp_path):
    """init_state on a lossless video file gives the results of the folder of its frames."""
    import av  # the segany[video] extra, part of segany[dev]

    path = tmp_path / "clip.mkv"
    frames = [np.asarray(Image.open(p)) for p in sorted(video.iterdir())[:3]]
    folder = tmp_path / "pngs"
    folder.mkdir()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.height, stream.width, stream.pix_fmt = H, W, "bgr0"
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(folder / f"{i}.png")
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    predictor = tiny_predictor
    outputs = []
    for source in (path, folder):
        state = predictor.init_state(source)
        predictor.add_new_points_or_box(state, 0, 1, [[20, 30]], [1])
        outputs.append([logits for _, _, logits in predictor.propagate_in_video(state)])
    for a, b in zip(*outputs, strict=True):
        assert torch.equal(a, b)


# -- the bounded memory bank, with a stand-in tracker -----------------------------------------


class _Frames(FrameSource):
    """A video of `n` frames that are never read."""

    def __init__(self, n: int) -> None:
        super().__init__(image_size=16)
        self.n, self.height, self.width = n, 8, 8

    def __len__(self) -> int:
        return self.n

    def read_image(self, index):
        raise AssertionError("the stand-in tracker reads no frames")


class _Model(torch.nn.Module):
    image_size = 16
    tracking = TrackingConfig()
    device = torch.device("cpu")


def _stand_in(predictor, seen):
    """Replace the networks: each step records which frames' memories and pointers it would
    read, and files an output whose pointer is its frame index."""
    runner = predictor.runner

    def run(state, track, frame_idx, is_init, reverse, points=None, mask=None, **_):
        bank = track.bank
        if not is_init and mask is None:
            cfg = predictor.model.tracking
            spatial = memory_frames(
                frame_idx, bank, bank.conditioning, {}, cfg.num_maskmem, 1, reverse
            )
            ptrs = object_pointer_frames(
                frame_idx, bank, bank.conditioning, {}, 16, state.num_frames, reverse
            )
            seen.append(
                (frame_idx, [int(o.obj_ptr) for _, o in spatial], [(d, int(p)) for d, p in ptrs])
            )
        value = torch.tensor(float(frame_idx))
        out = FrameOutput(value.view(1, 1, 1, 1), value, value, value, value)
        return out, out.pred_masks

    runner.run = run
    runner.features = lambda state, frame_idx: None
    runner.encode_memory = lambda state, frame_idx, out: None
    runner.to_video = lambda state, logits: logits
    runner.frame_masks = lambda state, frame_idx, is_cond: torch.zeros(1)


def _long_session(predictor, seen) -> VideoState:
    """Passes over a 300-frame video that start where the bounded bank promises the
    reference's memories: on prompted frames, and where the last pass stopped; clicks on the
    frame where a pass stopped and just after a prompted frame."""
    _stand_in(predictor, seen)
    state = predictor.init_state(_Frames(300))
    add = predictor.add_new_points_or_box
    add(state, 0, 1, [[1, 1]], [1])
    add(state, 150, 2, [[1, 1]], [1])
    passes = [
        {},
        {"start_frame_idx": 150, "reverse": True, "max_frame_num_to_track": 60},
        "clicks",
        {"start_frame_idx": 90, "reverse": True},  # resumes where the last pass stopped
        {"start_frame_idx": 90},
        {"start_frame_idx": 150, "reverse": True},
        {"max_frame_num_to_track": 20},
    ]
    for options in passes:
        if options == "clicks":
            add(state, 90, 1, [[2, 2]], [1])  # where propagation stopped
            add(state, 160, 2, [[2, 2]], [1])  # 10 frames after a prompted frame
            continue
        for _ in predictor.propagate_in_video(state, **options):
            pass
    return state


def test_kept_outputs_serve_every_lookup_and_stay_bounded():
    """In those passes the bounded bank gives each step exactly the memories and pointers the
    reference's full bank would, and it holds outputs near anchors only."""
    seen_full, seen_kept = [], []
    full = _long_session(segany.VideoPredictor(_Model(), keep_all_outputs=True), seen_full)
    predictor = segany.VideoPredictor(_Model())
    kept = _long_session(predictor, seen_kept)
    assert seen_kept == seen_full
    assert len(seen_full) > 1000
    radius = predictor.retention.radius
    assert radius == 15
    anchors = predictor.retention.anchors(kept)
    assert anchors == [0, 20, 90, 150, 160]  # prompts, and frame 20 where the last pass ended
    for track in kept.objects:
        assert len(track.non_cond) <= len(anchors) * (2 * radius + 1)
        assert all(min(abs(t - a) for a in anchors) <= radius for t in track.non_cond)
    assert sum(len(t.non_cond) for t in full.objects) == 2 * 300 - 2


# -- errors --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_predictor():
    model = segany.build_sam("sam2.1_hiera_t", pretrained=False, image_size=64)
    return segany.VideoPredictor(model)


def test_bad_inputs(tiny_predictor, video, tmp_path):
    with pytest.raises(ConfigError, match="SAM 2 model"):
        segany.VideoPredictor(torch.nn.Linear(2, 2))
    predictor = tiny_predictor
    with pytest.raises(ImageError, match="not found"):
        predictor.init_state(video_path=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no frames"):
        predictor.init_state(video_path=str(tmp_path / "empty"))
    state = predictor.init_state(video_path=str(video))
    assert (state["num_frames"], state["video_height"], state["video_width"]) == (10, H, W)
    with pytest.raises(PromptError, match="no object"):
        next(predictor.propagate_in_video(state))
    add = predictor.add_new_points_or_box
    with pytest.raises(PromptError, match="out of range"):
        add(state, 10, 1, [[1, 1]], [1])
    with pytest.raises(PromptError, match="out of range"):
        add(state, -1, 1, [[1, 1]], [1])
    with pytest.raises(PromptError, match="one label per point"):
        add(state, 0, 1, [[1, 1], [2, 2]], [1])
    with pytest.raises(PromptError, match="together"):
        add(state, 0, 1, points=[[1, 1]])
    with pytest.raises(PromptError, match="points"):
        add(state, 0, 1, [1, 2, 3], [1])
    with pytest.raises(PromptError, match="box"):
        add(state, 0, 1, box=[1, 2, 3])
    with pytest.raises(PromptError, match="clear_old_points"):
        add(state, 0, 1, box=[1, 2, 30, 40], clear_old_points=False)
    with pytest.raises(PromptError, match=r"\(H, W\)"):
        predictor.add_new_mask(state, 0, 1, np.zeros((1, H, W), bool))
    assert state["obj_ids"] == []  # no failed call left an object behind
    with pytest.raises(NotFoundError, match="no object id 7"):
        predictor.remove_object(state, 7, strict=True)
    assert predictor.remove_object(state, 7) == ([], [])
    with pytest.raises(NotFoundError):
        predictor.clear_all_prompts_in_frame(state, 0, 7)
    add(state, 0, 1, [[10, 10]], [1])
    add(state, 3, 2, [[10, 10]], [1])
    predictor.clear_all_prompts_in_frame(state, 3, 2)
    with pytest.raises(PromptError, match="object id 2 has no prompt"):
        next(predictor.propagate_in_video(state))
    predictor.remove_object(state, 2)
    with pytest.raises(PromptError, match="out of range"):
        next(predictor.propagate_in_video(state, start_frame_idx=12))


# -- post-processing -----------------------------------------------------------------------


def test_non_overlapping_equals_reference():
    from sam2.modeling.sam2_base import SAM2Base

    logits = torch.randn(3, 1, 20, 24, generator=torch.Generator().manual_seed(0)) * 20
    expected = SAM2Base._apply_non_overlapping_constraints(None, logits)
    assert torch.equal(non_overlapping(logits), expected)
    assert torch.equal(non_overlapping(logits[:1]), logits[:1])


def test_fill_holes():
    """Background regions (logit <= 0, 8-connected) of at most `max_area` pixels become 0.1."""
    logits = torch.full((2, 1, 12, 12), 5.0)
    logits[0, 0, 2:4, 2:4] = -3.0  # a 4-pixel hole
    logits[0, 0, 6, 6] = logits[0, 0, 7, 7] = 0.0  # 2 pixels touching diagonally: one hole
    logits[0, 0, 8:12, 0:3] = -1.0  # 12 pixels: too large
    logits[1] = -2.0  # all background: one large region
    filled = fill_holes(logits, max_area=4)
    assert torch.equal(filled[0, 0, 2:4, 2:4], torch.full((2, 2), 0.1))
    assert filled[0, 0, 6, 6] == filled[0, 0, 7, 7] == 0.1
    assert torch.equal(filled[0, 0, 8:12, 0:3], logits[0, 0, 8:12, 0:3])
    assert torch.equal(filled[1], logits[1])
    assert torch.equal(filled[0, 0, 0], logits[0, 0, 0])  # foreground untouched
