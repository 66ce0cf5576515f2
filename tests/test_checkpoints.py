"""Checkpoint reading, variant detection and strict loading, on the tiny test model."""

from __future__ import annotations

import argparse
import os
import random

import pytest
import torch
from safetensors.torch import save_file

from segany.checkpoints import load_checkpoint_into, read_state_dict
from segany.errors import CheckpointError
from segany.modeling.config import ViTConfig
from segany.registry import build_sam, detect_variant, get_spec, list_models


def _tiny_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in build_sam("test_tiny", pretrained=False).state_dict().items()}


def _assert_same_weights(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


def _vit_skeleton(name: str) -> dict[str, torch.Tensor]:
    """Just the official-layout tensors whose shapes tell a ViT variant apart (small to save)."""
    spec = get_spec(name)
    enc = spec.encoder
    assert isinstance(enc, ViTConfig)
    sd = {
        "image_encoder.patch_embed.proj.weight": torch.zeros(
            enc.embed_dim, 3, enc.patch_size, enc.patch_size
        ),
        "image_encoder.neck.0.weight": torch.zeros(enc.out_chans, enc.embed_dim, 1, 1),
        "mask_decoder.iou_token.weight": torch.zeros(1, spec.decoder.transformer_dim),
    }
    for i in range(enc.depth):
        sd[f"image_encoder.blocks.{i}.norm1.weight"] = torch.zeros(enc.embed_dim)
    return sd


class _Payload:
    """Runs code when unpickled, if the unpickler lets it."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


# --- round trips ------------------------------------------------------------------------------


def test_torch_save_round_trip(tmp_path):
    sd = _tiny_state_dict(seed=1)
    path = tmp_path / "tiny.pth"
    torch.save(sd, path)
    torch.manual_seed(2)  # different random init, so equality proves the weights were loaded
    model = build_sam("test_tiny", checkpoint=path)
    _assert_same_weights(model, sd)
    assert not model.training


def test_safetensors_round_trip(tmp_path):
    sd = _tiny_state_dict(seed=1)
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    torch.manual_seed(2)
    _assert_same_weights(build_sam("test_tiny", checkpoint=str(path)), sd)


@pytest.mark.parametrize("wrapper", ["model", "state_dict"])
def test_training_wrapper_is_unwrapped(tmp_path, wrapper):
    sd = _tiny_state_dict(seed=3)
    path = tmp_path / "train.pt"
    torch.save({wrapper: sd, "epoch": 7, "optimizer": {"lr": 1e-4}}, path)
    assert read_state_dict(path).keys() == sd.keys()
    _assert_same_weights(build_sam("test_tiny", checkpoint=path), sd)


# --- unreadable files ---------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match="not found") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)
    assert "download_checkpoint" in str(info.value)
    assert "--" not in str(info.value)  # the library speaks Python, not command-line flags


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not a file"):
        read_state_dict(tmp_path)


@pytest.mark.parametrize("damage", ["random", "truncated", "empty"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_file(tmp_path, damage, suffix):
    good = tmp_path / f"good{suffix}"
    sd = {"w": torch.randn(64, 64)}
    if suffix == ".safetensors":
        save_file(sd, str(good))
    else:
        torch.save(sd, good)
    data = good.read_bytes()
    bad = tmp_path / f"bad{suffix}"
    damaged = {
        "random": random.Random(0).randbytes(4096),
        "truncated": data[: len(data) // 2],
        "empty": b"",
    }
    bad.write_bytes(damaged[damage])
    with pytest.raises(CheckpointError) as info:
        read_state_dict(bad)
    message = str(info.value)
    assert str(bad) in message
    assert "corrupt" in message and "again" in message
    assert "weights_only` set to `False`" not in message  # torch's unsafe advice is not passed on


def test_random_pickle_bytes_always_give_a_checkpoint_error(tmp_path):
    # Random bytes after a pickle header make torch's weights-only unpickler fail in many ways
    # (UnpicklingError, IndexError, KeyError, UnicodeDecodeError, struct.error, EOFError); every
    # one must reach the user as the same typed error, never as a raw exception.
    causes = set()
    for seed in range(300):
        rng = random.Random(seed)
        bad = tmp_path / f"fuzz{seed}.pth"
        bad.write_bytes(b"\x80\x02" + rng.randbytes(rng.choice([8, 64, 512])))
        with pytest.raises(CheckpointError, match="corrupt") as info:
            read_state_dict(bad)
        assert "weights_only` set to `False`" not in str(info.value)
        causes.add(type(info.value.__cause__).__name__)
    assert {"IndexError", "UnicodeDecodeError", "error"} <= causes, causes


def test_content_that_is_not_a_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        read_state_dict(path)


def test_non_tensor_entries_are_refused(tmp_path):
    path = tmp_path / "mixed.pth"
    torch.save({"a": torch.zeros(2), "b": 3}, path)
    with pytest.raises(CheckpointError, match="'b': int"):
        read_state_dict(path)


def test_pickled_objects_are_refused_without_running_code(tmp_path):
    target = tmp_path / "created-by-unpickling"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "x": _Payload(str(target))}, path)
    with pytest.raises(CheckpointError, match="weights_only") as info:
        read_state_dict(path)
    assert "os.makedirs" in str(info.value)
    assert not target.exists()


def test_arbitrary_class_is_refused(tmp_path):
    path = tmp_path / "namespace.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match="argparse.Namespace"):
        read_state_dict(path)


# --- files that do not fit ---------------------------------------------------------------------


def test_wrong_variant_names_the_detected_model(tmp_path):
    path = tmp_path / "vit_b_like.pth"
    torch.save(_vit_skeleton("vit_b"), path)
    with pytest.raises(CheckpointError) as info:
        build_sam("test_tiny", checkpoint=path)
    message = str(info.value)
    assert "this looks like a vit_b checkpoint, but model test_tiny was requested" in message
    assert "load it as model 'vit_b'" in message
    assert "--model" not in message


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    sd = _tiny_state_dict()
    dropped = sorted(sd)[:12]
    for key in dropped:
        del sd[key]
    sd["extra.head.weight"] = torch.zeros(3)
    sd["extra.head.bias"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    torch.manual_seed(5)
    model = build_sam("test_tiny", pretrained=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_into(
            model, path, get_spec("test_tiny"), [get_spec(n) for n in list_models()]
        )
    message = str(info.value)
    assert "missing keys (12)" in message
    shown = [k for k in dropped if k in message]
    assert len(shown) == 10 and "and 2 more" in message
    assert "unexpected keys (2): extra.head.weight, extra.head.bias" in message
    assert "look like test_tiny" in message
    _assert_same_weights(model, before)  # nothing was half-loaded


def test_shape_mismatch_is_listed(tmp_path):
    sd = _tiny_state_dict()
    key = "mask_decoder.iou_token.weight"
    sd[key] = torch.zeros(1, 48)
    path = tmp_path / "shapes.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as info:
        build_sam("test_tiny", checkpoint=path)
    message = str(info.value)
    assert "shape mismatches (1)" in message
    assert f"{key}: file (1, 48) vs model (1, 32)" in message


def test_data_parallel_prefix_gets_a_hint(tmp_path):
    sd = {f"module.{k}": v for k, v in _tiny_state_dict().items()}
    path = tmp_path / "ddp.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="start with 'module.'"):
        build_sam("test_tiny", checkpoint=path)


# --- variant detection ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_detect_variant_on_our_own_layout(name):
    from segany.modeling.build import build_model

    with torch.device("meta"):  # shapes without memory: even vit_h builds instantly
        model = build_model(get_spec(name))
    assert detect_variant(model.state_dict()) == name


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_detect_variant_on_reference_sam_layout(name):
    import segment_anything as reference

    with torch.device("meta"):
        model = reference.sam_model_registry[name]()
    assert detect_variant(model.state_dict()) == name


def test_detect_variant_on_reference_mobile_sam_layout():
    import mobile_sam as reference

    model = reference.sam_model_registry["vit_t"]()  # 10 M parameters: quick to build
    assert detect_variant(model.state_dict()) == "vit_t"


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h", "test_tiny"])
def test_detect_variant_on_skeletons(name):
    assert detect_variant(_vit_skeleton(name)) == name


def test_detect_variant_of_unknown_content():
    assert detect_variant({}) is None
    assert detect_variant({"fc.weight": torch.zeros(2, 2)}) is None
    odd = _vit_skeleton("vit_b")
    odd["image_encoder.patch_embed.proj.weight"] = torch.zeros(100, 3, 16, 16)
    assert detect_variant(odd) is None


# --- the official files' layout -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_reference_sam_layout_matches_ours_exactly(name):
    """The official SAM .pth files are state dicts of the reference model: same keys, shapes."""
    import segment_anything as reference

    from segany.modeling.build import build_model

    with torch.device("meta"):
        theirs = reference.sam_model_registry[name]().state_dict()
        ours = build_model(get_spec(name)).state_dict()
    assert {k: tuple(v.shape) for k, v in theirs.items()} == {
        k: tuple(v.shape) for k, v in ours.items()
    }


def test_reference_mobile_sam_state_dict_loads_unchanged(tmp_path):
    import mobile_sam as reference

    torch.manual_seed(0)
    sd = reference.sam_model_registry["vit_t"]().state_dict()
    path = tmp_path / "mobile_sam.pt"
    torch.save(sd, path)
    _assert_same_weights(build_sam("vit_t", checkpoint=path), sd)
