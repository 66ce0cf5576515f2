"""The trainer's configuration: plain dataclasses in five groups, loaded from TOML or JSON.

A config file has up to five tables, each optional, whose keys are the fields below:

    [data]   train = "synthetic:train:1000:256"   val = "synthetic:val:50:256"
    [model]  name = "test_tiny"   checkpoint = "..."   pretrained = false   trainable = "decoder"
    [optim]  lr = 1e-4   batch_size = 4   masks_per_image = 8   ...
    [loop]   max_steps = 1000   output_dir = "runs/tiny"   ...
    [loss]   iou_weight = 1.0, iou_rank_weight = 0.0

Unknown tables or keys and out-of-range values raise `ConfigError`, naming the key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segany.errors import ConfigError

TRAINABLE = ("all", "decoder", "decoder+prompt", "iou_head")


@dataclass(frozen=True)
class DataConfig:
    """Dataset specs (see `segany.data.spec.open_dataset`). `val` may be empty (no validation);
    `val_images` caps the validation images used, `val_masks` the masks per image (0: all)."""

    train: str = ""
    val: str = ""
    val_images: int = 32
    val_masks: int = 16


@dataclass(frozen=True)
class ModelConfig:
    """Which registered model to train, from which weights, and which of its parts.

    checkpoint: the weights to start from; without one, `pretrained = true` starts from the
    model's own weights (shipped with segany, or downloaded: `segany.build_sam`'s rule, e.g.
    to fine-tune segany-tiny on an exported project) and `pretrained = false` (the default)
    from random weights.
    trainable: "all", "decoder" (mask decoder only), "decoder+prompt" (mask decoder and
    prompt encoder) or "iou_head" (the decoder's IoU-prediction MLP alone: the masks stay
    exactly as they are and only the choice among them is retrained). With a frozen image
    encoder, embeddings are cached in memory.
    image_size: train at this input size instead of the model's own (0), for models whose
    weights allow it (segany-tiny-v2): a cheaper first stage at a lower resolution; the
    weights saved load into the model at its own size.
    """

    name: str = "test_tiny"
    checkpoint: str | None = None
    pretrained: bool = False
    trainable: str = "all"
    embedding_cache: int = 4096  # images whose embeddings are kept when the encoder is frozen
    image_size: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 0:
            raise ConfigError(f"model.image_size = {self.image_size} must be 0 or a size in px")
        if self.trainable not in TRAINABLE:
            raise ConfigError(
                f"model.trainable = {self.trainable!r}; expected one of {', '.join(TRAINABLE)}"
            )


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a linear warm-up and step decay (the SAM paper's recipe).

    batch_size: images per micro-batch over all processes (each of W processes takes
    batch_size / W); an optimizer step uses `grad_accum` micro-batches.
    masks_per_image: ground-truth masks drawn per image, each one interactive episode.
    milestones: optimizer steps after which the learning rate is multiplied by `gamma`.
    clip_grad_norm: max global gradient norm (0: no clipping).
    """

    lr: float = 8e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 250
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    grad_accum: int = 1
    batch_size: int = 4
    masks_per_image: int = 8
    clip_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("optim.lr must be > 0 and optim.weight_decay >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas = {self.betas}; expected two values in [0, 1)")
        if min(self.grad_accum, self.batch_size, self.masks_per_image) < 1:
            raise ConfigError("optim.grad_accum, batch_size and masks_per_image must be >= 1")
        if self.warmup_steps < 0 or self.clip_grad_norm < 0 or not 0 < self.gamma <= 1:
            raise ConfigError("optim.warmup_steps and clip_grad_norm >= 0, 0 < gamma <= 1")
        if list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"optim.milestones {self.milestones} must be increasing")


@dataclass(frozen=True)
class LoopConfig:
    """The training loop.

    iterations: steps of each mask's interactive episode: 1 first prompt, then points from the
    error region, the last two (when iterations >= 3) without a new point: 11 = 1 + 8 + 2.
    val_every / checkpoint_every: in optimizer steps (0: never; the end always checkpoints).
    device: "auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...
    autocast: bf16 autocast, applied on CUDA only.
    """

    max_steps: int = 1000
    val_every: int = 0
    checkpoint_every: int = 100
    iterations: int = 11
    seed: int = 0
    device: str = "auto"
    autocast: bool = True
    output_dir: str = "runs/train"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.iterations < 1:
            raise ConfigError("loop.max_steps and loop.iterations must be >= 1")
        if self.val_every < 0 or self.checkpoint_every < 0:
            raise ConfigError("loop.val_every and loop.checkpoint_every must be >= 0")

    @property
    def point_iterations(self) -> int:
        return self.iterations - 1 - self.mask_only_iterations

    @property
    def mask_only_iterations(self) -> int:
        return 2 if self.iterations >= 3 else 0


@dataclass(frozen=True)
class LossConfig:
    """The weights of the loss's parts (see `segany.train.losses`).

    iou_weight: the IoU head's mean squared error is added to the mask loss (20 x focal +
    1 x dice) times this; 1.0 is the SAM paper's. A higher weight makes the shared decoder
    spend more of its capacity on predicting the IoU that chooses among the three masks.
    iou_rank_weight: weight of a ranking term over the three predicted IoUs (the KL divergence
    between the softmaxes of actual and predicted IoUs, `segany.train.losses.iou_rank_loss`),
    which trains the head's *choice* rather than its values; 0 (the default) leaves it out.
    """

    iou_weight: float = 1.0
    iou_rank_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("iou_weight", "iou_rank_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and 0 <= value < float("inf")
            ):
                raise ConfigError(f"loss.{name} = {value!r} must be a number >= 0")


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> TrainConfig:
        """A config from nested dicts (tables -> keys); `ConfigError` on unknown names or
        wrong types."""
        if not isinstance(raw, dict):
            raise ConfigError(f"a training config is a table of tables, got {type(raw).__name__}")
        groups = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(groups))
        if unknown:
            raise ConfigError(f"unknown config table(s) {unknown}; expected {sorted(groups)}")
        kinds = {
            "data": DataConfig,
            "model": ModelConfig,
            "optim": OptimConfig,
            "loop": LoopConfig,
            "loss": LossConfig,
        }
        made = {name: _group(kinds[name], name, raw.get(name, {})) for name in kinds}
        return cls(**made)


def _group(kind: type, name: str, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] must be a table of keys, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in [{name}]; known keys: {sorted(fields)}")
    for key, value in values.items():
        default = getattr(kind(), key)
        if default is None or isinstance(value, type(default)):
            continue
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            continue
        if isinstance(default, tuple) and isinstance(value, list):
            continue
        raise ConfigError(
            f"{name}.{key} = {value!r} is a {type(value).__name__}; "
            f"expected a {type(default).__name__}"
        )
    try:
        return kind(**values)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"[{name}]: {e}") from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a TOML (.toml) or JSON (.json) training config, then apply `overrides`
    ("TABLE.KEY=VALUE", the value read as TOML, else as a string: "loop.max_steps=3",
    "loop.output_dir=runs/x"). Raises `ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {e.start}); is it the right file?"
        ) from None
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON: {e}") from None
    elif path.suffix.lower() == ".toml":
        toml = _toml_module()
        try:
            raw = toml.loads(text)
        except toml.TOMLDecodeError as e:
            raise ConfigError(f"{path} is not valid TOML: {e}") from None
    else:
        raise ConfigError(f"config file {path} must end in .toml or .json")
    for override in overrides:
        _apply_override(raw, override)
    return TrainConfig.from_dict(raw)


def _apply_override(raw: Any, override: str) -> None:
    """Set raw[TABLE][KEY] from "TABLE.KEY=VALUE" (checked later by from_dict)."""
    name, sep, text = override.partition("=")
    table, dot, key = name.strip().partition(".")
    if not sep or not dot or not table or not key:
        raise ConfigError(f"override {override!r} must look like TABLE.KEY=VALUE")
    if not isinstance(raw, dict):
        raise ConfigError("the config file must hold a table of tables")
    toml = _toml_module()
    try:
        value = toml.loads(f"value = {text}")["value"]
    except toml.TOMLDecodeError:
        value = text  # a bare string, e.g. a path
    raw.setdefault(table, {})[key] = value


def _toml_module() -> Any:
    try:
        import tomllib

        return tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli

            return tomli
        except ModuleNotFoundError:
            raise ConfigError(
                "reading TOML on Python 3.10 needs the tomli package (pip install tomli), "
                "or write the config as JSON"
            ) from None
