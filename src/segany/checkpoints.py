"""Reading checkpoint files, recognising which model they belong to, and loading them strictly.

The official files (`sam_vit_h_4b8939.pth`, ..., MobileSAM's `mobile_sam.pt`) are plain state
dicts whose keys are exactly our model's (`image_encoder.*`, `prompt_encoder.*`,
`mask_decoder.*`), so they load unchanged. Pickles are read with `weights_only=True`: a
checkpoint is data, and must not be able to run code on the machine that opens it.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from segany.errors import CheckpointError
from segany.model_spec import ModelSpec
from segany.modeling.config import ENCODER_CONFIGS, Fingerprint

if TYPE_CHECKING:
    from torch import nn

# Training scripts often save {"model": state_dict, "optimizer": ..., "epoch": ...}.
_WRAPPER_KEYS = ("model", "state_dict")
# How many keys of each kind an error message lists before summarising the rest.
_LIST_LIMIT = 10


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict (parameter name -> CPU tensor) from a `.pth`/`.pt` or `.safetensors` file.

    A `{"model": {...}}` or `{"state_dict": {...}}` training wrapper is unwrapped. Raises
    `CheckpointError` if the file is missing, unreadable, corrupt, holds Python objects other
    than tensors, or is not a mapping of names to tensors.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(
            f"checkpoint file not found: {path}. Check the path, or fetch the official weights "
            "with segany.download.download_checkpoint(name) and load the file it returns."
        )
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint path {path} is not a file; pass the weights file itself."
        )

    if path.suffix == ".safetensors":
        content = _read_safetensors(path)
    else:
        content = _read_torch_pickle(path)
    return _as_state_dict(content, path)


def _read_safetensors(path: Path) -> object:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise CheckpointError(
            f"cannot read safetensors checkpoint {path}: {e}. The file is corrupt or truncated "
            "(an interrupted download or copy?); download or export it again."
        ) from e


def _read_torch_pickle(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # What a damaged file makes torch.load raise varies with where the damage is: a broken
        # zip directory, a short read, an unknown pickle opcode, a missing record, and from the
        # weights-only unpickler IndexError, struct.error or UnicodeDecodeError on random bytes.
        # To the user all mean the same (the file is damaged), so all are caught.
        # torch names the offending global in its message, e.g. "GLOBAL argparse.Namespace".
        refused = re.search(r"GLOBAL ([\w.]+)", str(e))
        if isinstance(e, pickle.UnpicklingError) and refused:
            raise CheckpointError(
                f"refused to load {path}: besides tensors it contains the Python object "
                f"{refused.group(1)}, and segany loads checkpoints with weights_only=True so "
                "that opening a file cannot run code. If you trust the file, re-save only its "
                "weights: torch.save(obj.state_dict(), 'weights.pth') (or the 'model' entry of "
                "the training checkpoint) and load that."
            ) from e
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(e).__name__}: {_first_line(e)}). It is not "
            "a valid PyTorch or safetensors file, or it is corrupt or truncated (an interrupted "
            "download?); download it again. safetensors files must end in .safetensors."
        ) from e


def _first_line(error: BaseException) -> str:
    """The part of a torch.load error that describes the damage.

    The weights-only unpickler wraps its finding ("Unsupported operand 123") in advice to retry
    with weights_only=False, which is wrong for a damaged file and unsafe for a foreign one, so
    only the finding is kept.
    """
    text = str(error).strip()
    finding = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n|$)", text)
    if finding:
        return finding.group(1)
    return text.splitlines()[0] if text else "no details"


def _as_state_dict(content: object, path: Path) -> dict[str, torch.Tensor]:
    """Unwrap a training wrapper and check that what is left maps names to tensors."""
    while isinstance(content, Mapping) and not _all_tensors(content):
        inner = next(
            (content[k] for k in _WRAPPER_KEYS if isinstance(content.get(k), Mapping)), None
        )
        if inner is None:
            break
        content = inner

    if not isinstance(content, Mapping):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(content).__name__}, not a state dict (a mapping of "
            "parameter names to tensors); save model.state_dict() rather than the model or a list."
        )
    bad = [(k, v) for k, v in content.items() if not (isinstance(k, str) and torch.is_tensor(v))]
    if bad:
        shown = ", ".join(f"{k!r}: {type(v).__name__}" for k, v in bad[:_LIST_LIMIT])
        raise CheckpointError(
            f"checkpoint {path} is not a state dict: {len(bad)} entries are not name -> tensor "
            f"({shown}). If it is a training checkpoint, save its model's state_dict() alone."
        )
    return dict(content)


def _all_tensors(mapping: Mapping) -> bool:
    return all(torch.is_tensor(v) for v in mapping.values())


# ---------------------------------------------------------------------------------------------
# Recognising the variant


def fingerprint_of_spec(spec: ModelSpec) -> Fingerprint:
    """The shape facts a checkpoint of `spec` shows (see `fingerprint_of_state_dict`)."""
    facts = {**spec.encoder.fingerprint(), "decoder_dim": spec.decoder.transformer_dim}
    if spec.tracking is not None:
        facts["sam2_version"] = spec.tracking.version
    return facts


def fingerprint_of_state_dict(sd: Mapping[str, torch.Tensor]) -> Fingerprint:
    """Shape facts read off official-layout keys; a fact whose key is absent is left out."""
    facts: Fingerprint = {}
    for config in ENCODER_CONFIGS:
        found = config.read_fingerprint(sd)
        if found is not None:
            facts.update(found)
            break
    neck = sd.get("image_encoder.neck.0.weight")  # (out_chans, C_last, 1, 1)
    if neck is not None and neck.dim() == 4:
        facts["neck"] = (neck.shape[0], neck.shape[1])
    iou_token = sd.get("mask_decoder.iou_token.weight")  # (1, transformer_dim)
    if iou_token is None:
        iou_token = sd.get("sam_mask_decoder.iou_token.weight")  # SAM 2's name
    if iou_token is not None and iou_token.dim() == 2:
        facts["decoder_dim"] = iou_token.shape[1]
    if "no_mem_embed" in sd:  # a SAM 2 model; 2.1 added the spatial no-object embedding
        facts["sam2_version"] = "2.1" if "no_obj_embed_spatial" in sd else "2.0"
    return facts


def detect_variant(
    state_dict: Mapping[str, torch.Tensor], candidates: Iterable[ModelSpec]
) -> str | None:
    """Name of the first of `candidates` whose shapes this state dict shows, else None.

    Only shapes are used (encoder kind and width, number of blocks, neck and decoder widths,
    position-embedding grid). `segany.registry.detect_variant` asks every registered model.
    """
    facts = fingerprint_of_state_dict(state_dict)
    if "encoder" not in facts or "width" not in facts:
        return None
    for spec in candidates:
        expected = fingerprint_of_spec(spec)
        if all(expected.get(k) == v for k, v in facts.items()):
            return spec.name
    return None


# ---------------------------------------------------------------------------------------------
# Loading


def load_checkpoint_into(
    model: nn.Module, path: str | Path, spec: ModelSpec, candidates: Sequence[ModelSpec] = ()
) -> None:
    """Load the checkpoint at `path` into `model` (built from `spec`), keys and shapes exact.

    On any missing key, unexpected key or shape mismatch nothing is loaded and a
    `CheckpointError` names the model among `candidates` (the registered ones, when called by
    `build_sam`) that the file looks like, and lists the differences.
    """
    sd = read_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        (k, tuple(sd[k].shape), tuple(v.shape))
        for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            _mismatch_message(
                Path(path), spec.name, candidates, sd, missing, unexpected, mismatched
            )
        )
    # assign: the file's tensors become the parameters, so no second copy is made.
    model.load_state_dict(sd, strict=True, assign=True)


def _mismatch_message(
    path: Path,
    requested: str,
    candidates: Sequence[ModelSpec],
    sd: Mapping[str, torch.Tensor],
    missing: list[str],
    unexpected: list[str],
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
) -> str:
    detected = detect_variant(sd, candidates)
    if detected is not None and detected != requested:
        verdict = (
            f"this looks like a {detected} checkpoint, but model {requested} was requested: "
            f"load it as model {detected!r}."
        )
    elif detected == requested:
        verdict = (
            f"its shapes look like {requested}, but its keys differ from this build "
            "(a fine-tuned or re-exported file?)."
        )
    else:
        verdict = (
            f"it does not look like any registered model "
            f"({', '.join(spec.name for spec in candidates)}); it may be a checkpoint of a "
            "different architecture."
        )
    lines = [f"checkpoint {path} does not fit model {requested}: {verdict}"]
    if unexpected and all(k.startswith("module.") for k in unexpected):
        lines.append(
            "All its keys start with 'module.' (saved from DataParallel/DistributedDataParallel): "
            "re-save model.module.state_dict(), or strip that prefix from the keys."
        )
    if missing:
        lines.append(f"missing keys ({len(missing)}): {_summarise(missing)}")
    if unexpected:
        lines.append(f"unexpected keys ({len(unexpected)}): {_summarise(unexpected)}")
    if mismatched:
        shown = [f"{k}: file {tuple(a)} vs model {tuple(b)}" for k, a, b in mismatched]
        lines.append(f"shape mismatches ({len(mismatched)}): {_summarise(shown)}")
    return "\n".join(lines)


def _summarise(items: list[str]) -> str:
    text = ", ".join(items[:_LIST_LIMIT])
    if len(items) > _LIST_LIMIT:
        text += f", ... and {len(items) - _LIST_LIMIT} more"
    return text
