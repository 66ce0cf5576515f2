"""Saving and restoring training: the resumable `last.pt` (written atomically) and the final
weights in the official state-dict format (`model.pth`) and as safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from segany.errors import CheckpointError
from segany.formats.atomic import atomic_file

LAST = "last.pt"


def _atomic(path: Path, write: Any) -> None:
    """Write through `write(tmp_path)`, then rename, durably (`segany.formats.atomic`): a
    killed run or a power cut never leaves a torn last.pt that a resumed run would load."""
    with atomic_file(path) as temporary:
        write(temporary)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_last(out: Path, state: dict[str, Any]) -> None:
    """`state` (model, optimizer, scheduler, step, rng) -> OUT/last.pt, atomically."""
    _atomic(out / LAST, lambda tmp: torch.save(state, tmp))


def load_last(out: Path) -> dict[str, Any] | None:
    """The state in OUT/last.pt, loaded to the CPU, or None if there is none.

    CPU, whatever device trains: the RNG states must stay CPU byte tensors, and
    `load_state_dict` of the model and the optimizer moves tensors to their parameters' device.
    """
    path = out / LAST
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a torn or foreign file
        raise CheckpointError(
            f"cannot resume from {path}: {type(e).__name__}: {e}; remove it to start over"
        ) from None


def save_weights(out: Path, state_dict: dict[str, torch.Tensor]) -> tuple[Path, Path]:
    """OUT/model.pth (torch.save of the state dict, the official format) and
    OUT/model.safetensors; returns both paths."""
    cpu = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    pth, safe = out / "model.pth", out / "model.safetensors"
    _atomic(pth, lambda tmp: torch.save(cpu, tmp))
    _atomic(safe, lambda tmp: save_file(cpu, str(tmp)))
    return pth, safe
