"""SAM 2's model container, prompt encoder and mask decoder against the reference `sam2`
package (1.1.0): official state-dict keys for all eight models, the same outputs on shared
random weights, and checkpoints of the wrong variant named as what they are."""

from __future__ import annotations

import pytest
import torch

import segany
from sam2_reference import NAMES, build_reference
from segany import CheckpointError
from segany.modeling.build import build_model
from segany.modeling.sam2.mask_decoder import Sam2MaskDecoder, sam2_two_way_transformer
from segany.modeling.sam2.model import Sam2
from segany.modeling.sam2.prompt_encoder import Sam2PromptEncoder
from segany.registry import get_spec
from segany.sam2_predictor import Sam2Predictor

SIZE = 256  # input side: a 16 x 16 embedding


@pytest.fixture(scope="module")
def reference():
    return build_reference("sam2.1_hiera_t", image_size=SIZE)


def _sub_state(model: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in model.state_dict().items() if k.startswith(prefix)}


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_is_the_official_layout(name):
    official = build_reference(name, image_size=SIZE).state_dict()
    ours = build_model(get_spec(name).at_image_size(SIZE)).state_dict()
    assert sorted(ours) == sorted(official)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        k: tuple(v.shape) for k, v in official.items()
    }
    assert ("no_obj_embed_spatial" in ours) == name.startswith("sam2.1")
    assert ("obj_ptr_tpos_proj.weight" in ours) == name.startswith("sam2.1")


def _decoder_inputs(batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    return dict(
        image_embeddings=draw(1, 256, 16, 16),
        image_pe=draw(1, 256, 16, 16),
        sparse_prompt_embeddings=draw(batch, 3, 256),
        dense_prompt_embeddings=draw(batch, 256, 16, 16),
        high_res_features=[draw(1, 32, 64, 64), draw(1, 64, 32, 32)],
    )


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("training", [False, True])
def test_mask_decoder_matches_reference(reference, multimask, training):
    expected_decoder = reference.sam_mask_decoder
    ours = Sam2MaskDecoder(sam2_two_way_transformer())
    ours.load_state_dict(expected_decoder.state_dict(), strict=True)
    expected_decoder.train(training)
    ours.train(training)
    inputs = _decoder_inputs(5, torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = expected_decoder(**inputs, multimask_output=multimask, repeat_image=True)
        got = ours(
            inputs["image_embeddings"],
            inputs["image_pe"],
            inputs["sparse_prompt_embeddings"],
            inputs["dense_prompt_embeddings"],
            multimask,
            tuple(inputs["high_res_features"]),
        )
    expected_decoder.eval()
    masks, iou, tokens, scores = want
    assert got.masks.shape == masks.shape == (5, 3 if multimask else 1, 64, 64)
    torch.testing.assert_close(got.masks, masks, atol=1e-3, rtol=0)
    torch.testing.assert_close(got.iou, iou, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.sam_tokens, tokens, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.object_score_logits, scores, atol=1e-4, rtol=0)


def test_single_mask_falls_back_to_the_best_of_three_when_unstable(reference):
    decoder = Sam2MaskDecoder(sam2_two_way_transformer()).eval()
    decoder.load_state_dict(reference.sam_mask_decoder.state_dict())
    masks = torch.zeros(2, 4, 8, 8)
    masks[0, 0] = 5.0  # stable single mask
    masks[1, 0] = torch.linspace(-1, 1, 64).view(8, 8)  # unstable: many logits near 0
    masks[1, 2] = 7.0
    iou = torch.tensor([[0.1, 0.9, 0.2, 0.3], [0.5, 0.1, 0.8, 0.3]])
    chosen, chosen_iou = decoder.stable_or_best(masks, iou)
    torch.testing.assert_close(chosen[:, 0], torch.stack([masks[0, 0], masks[1, 2]]))
    torch.testing.assert_close(chosen_iou, torch.tensor([[0.1], [0.8]]))


def test_prompt_encoder_matches_reference(reference):
    expected = reference.sam_prompt_encoder
    ours = Sam2PromptEncoder(256, (16, 16), (SIZE, SIZE), 16)
    ours.load_state_dict(expected.state_dict(), strict=True)
    generator = torch.Generator().manual_seed(2)
    coords = torch.rand((3, 5, 2), generator=generator) * SIZE
    labels = torch.tensor([[2, 3, 1, 0, -1], [1, 1, 0, -1, -1], [2, 3, -1, 0, 1]], dtype=torch.int)
    boxes = torch.tensor([[10.0, 20.0, 200.0, 180.0]] * 3)
    masks = torch.randn((3, 1, 64, 64), generator=generator)
    with torch.no_grad():
        for points, box, mask in [
            ((coords, labels), None, None),
            ((coords, labels), boxes, masks),
            (None, boxes, None),
            (None, None, masks),
        ]:
            want = expected(points, box, mask)
            got = ours(points, box, mask)
            for g, w in zip(got, want, strict=True):
                assert g.shape == w.shape
                torch.testing.assert_close(g, w, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.get_dense_pe(), expected.get_dense_pe())


def test_image_features_are_the_references_set_image_path(reference):
    ours = build_model(get_spec("sam2.1_hiera_t").at_image_size(SIZE)).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    image = torch.rand((2, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        backbone = reference.forward_image(image)
        got = ours.image_features(image)
    levels = backbone["backbone_fpn"]
    want = levels[2] + reference.no_mem_embed.view(1, -1, 1, 1)
    torch.testing.assert_close(got["image_embed"], want, atol=1e-4, rtol=0)
    torch.testing.assert_close(got["high_res_feat_s0"], levels[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(got["high_res_feat_s1"], levels[1], atol=1e-4, rtol=0)


def test_model_surface():
    model = segany.build_sam("sam2_hiera_t", pretrained=False, seed=0, image_size=SIZE)
    assert isinstance(model, Sam2) and model.spec.name == "sam2_hiera_t"
    assert model.image_size == SIZE and model.device == torch.device("cpu")
    assert model.tracking.version == "2.0" and not model.training
    assert model.prompt_encoder is model.sam_prompt_encoder
    assert model.mask_decoder is model.sam_mask_decoder
    assert isinstance(model.obj_ptr_tpos_proj, torch.nn.Identity)
    assert not hasattr(model, "no_obj_embed_spatial")
    assert model.mask_downsample.weight.shape == (1, 1, 4, 4)
    assert model.image_feature_shapes()["image_embed"] == (256, 16, 16)
    with pytest.raises(TypeError, match="SamPredictor"):
        model(torch.zeros(1, 3, SIZE, SIZE))
    predictor = segany.SamPredictor(model)
    assert isinstance(predictor, Sam2Predictor) and isinstance(predictor, segany.SamPredictor)
    with pytest.raises(TypeError, match="Sam2 model"):
        Sam2Predictor(segany.build_sam("test_tiny", pretrained=False, seed=0))


@pytest.mark.parametrize(
    "saved, requested",
    [
        ("sam2_hiera_t", "sam2.1_hiera_t"),
        ("sam2.1_hiera_t", "sam2_hiera_t"),
        ("sam2.1_hiera_s", "sam2.1_hiera_t"),
    ],
)
def test_wrong_variant_checkpoint_is_named(tmp_path, saved, requested):
    model = build_model(get_spec(saved).at_image_size(SIZE))
    path = tmp_path / f"{saved}.pt"
    torch.save({"model": model.state_dict()}, path)
    with pytest.raises(CheckpointError, match=f"this looks like a {saved} checkpoint"):
        segany.build_sam(requested, checkpoint=path, image_size=SIZE)
    loaded = segany.build_sam(saved, checkpoint=path, image_size=SIZE)
    torch.testing.assert_close(loaded.no_mem_embed, model.no_mem_embed)
