"""Turning a device name ("auto", "cpu", "cuda:1", "mps") into a usable torch device."""

from __future__ import annotations

import torch

from segany.errors import ConfigError


def resolve_device(name: str | torch.device) -> torch.device:
    """'auto' -> CUDA when available, else CPU; anything else must name a device that exists
    here. `ConfigError` for a name that is no device, or a device this machine lacks."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"device {name!r} is not a device; use cpu, cuda, cuda:1, mps or auto"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available here; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} "
                "CUDA device(s)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: MPS is not available here; use cpu")
    return device


def computes_bfloat16_natively(device: torch.device) -> bool:
    """Whether `device` has bfloat16 arithmetic: CUDA GPUs that support it, and CPUs with
    AVX512-BF16 or AMX (oneDNN runs bfloat16 convolutions and matrix products there faster
    than float32). Elsewhere bfloat16 is emulated and far slower, so autocast is not used."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
