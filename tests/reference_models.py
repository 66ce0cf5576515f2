"""Reference-package models (the test oracles) with seeded random weights, saved as files.

Random init leaves many SAM parameters at exact constants (zero relative positions and
absolute positions, unit norms); every parameter and buffer gets seeded noise on top so that
an equivalence test exercises all of them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from segany.model_spec import ModelSpec
from segany.registry import get_spec


def build_reference(name: str) -> torch.nn.Module:
    """The reference implementation of registered model `name`, default-initialised."""
    if name == "vit_t":
        from mobile_sam import sam_model_registry as mobile_registry

        return mobile_registry["vit_t"]()
    from segment_anything import sam_model_registry

    if name in sam_model_registry and name != "default":
        return sam_model_registry[name]()
    return reference_from_spec(get_spec(name))


def reference_from_spec(spec: ModelSpec) -> torch.nn.Module:
    """Compose the reference's own modules with the sizes of one of our ViT specs."""
    from functools import partial

    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    enc, dec = spec.encoder, spec.decoder
    grid = enc.img_size // enc.patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=enc.img_size,
            patch_size=enc.patch_size,
            embed_dim=enc.embed_dim,
            depth=enc.depth,
            num_heads=enc.num_heads,
            mlp_ratio=enc.mlp_ratio,
            out_chans=enc.out_chans,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=enc.window_size,
            global_attn_indexes=enc.global_attn_indexes,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dec.transformer_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(enc.img_size, enc.img_size),
            mask_in_chans=dec.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=dec.num_multimask_outputs,
            transformer=TwoWayTransformer(
                depth=dec.depth,
                embedding_dim=dec.transformer_dim,
                mlp_dim=dec.mlp_dim,
                num_heads=dec.num_heads,
            ),
            transformer_dim=dec.transformer_dim,
            iou_head_depth=dec.iou_head_depth,
            iou_head_hidden_dim=dec.iou_head_hidden_dim,
        ),
        pixel_mean=list(spec.pixel_mean),
        pixel_std=list(spec.pixel_std),
    )


@torch.no_grad()
def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Add seeded noise to every floating parameter and buffer (variances stay positive)."""
    gen = torch.Generator().manual_seed(seed)
    for key, tensor in list(model.state_dict().items()):
        if not tensor.is_floating_point():
            continue
        noise = torch.randn(tensor.shape, generator=gen) * 0.02
        if key.endswith("running_var"):
            tensor.copy_(1.0 + noise.abs() * 10)
        elif "rel_pos" in key or "pos_embed" in key or "attention_biases" in key:
            tensor.add_(noise * 10)
        else:
            tensor.add_(noise)
    return model.eval()


def save_reference(name: str, path: Path, seed: int = 0) -> torch.nn.Module:
    """Build and randomise the reference model, save its state dict to `path`; return it."""
    torch.manual_seed(seed)
    model = randomise(build_reference(name), seed)
    torch.save(model.state_dict(), path)
    return model
