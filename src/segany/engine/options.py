"""What a run needs besides its images: the model to build, where and how to write, and
how to place work on Ray. Plain frozen dataclasses, picklable, so Ray actors receive them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from segany.errors import ConfigError

if TYPE_CHECKING:
    from segany.modeling.sam import Sam

FORMATS = ("sa1b", "coco", "png")


@dataclass(frozen=True)
class ModelSource:
    """A model every worker builds identically, by `segany.build_sam`'s rule: registry `name`;
    weights file `checkpoint`, else (`pretrained`) the weights shipped with segany or the
    downloaded official file, else (pretrained=False) random weights drawn with `seed`, the
    same in every actor and every rerun; torch `device`; `edge_refinement` False for plain
    thresholded masks (see `build_sam`).

    Weights are resolved when the source is made, so a missing file fails before any work.
    """

    name: str
    checkpoint: Path | None = None
    device: str = "cpu"
    pretrained: bool = True
    seed: int = 0
    edge_refinement: bool = True

    def __post_init__(self) -> None:
        from segany.registry import get_spec, resolve_weights

        weights = resolve_weights(get_spec(self.name), self.checkpoint, self.pretrained)
        object.__setattr__(self, "checkpoint", weights)

    def build(self) -> Sam:
        from segany.registry import build_sam

        return build_sam(
            self.name,
            self.checkpoint,
            self.device,
            self.pretrained,
            self.seed,
            edge_refinement=self.edge_refinement,
        )


@dataclass(frozen=True)
class OutputOptions:
    """out_dir: the run's output folder; format: "sa1b", "coco" or "png"; overlay: also draw
    every image's masks to out_dir/overlays/; overwrite: redo images whose outputs exist."""

    out_dir: Path
    format: str = "sa1b"
    overlay: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir).expanduser())
        if self.format not in FORMATS:
            raise ConfigError(f"unknown format {self.format!r}; expected one of {FORMATS}")


@dataclass(frozen=True)
class RayOptions:
    """address: a running cluster ("auto", "ray://host:10001"), None for a local Ray of
    `num_cpus` CPUs; actors: model replicas (each holds one model and takes `cpus_per_actor`
    CPUs, plus one GPU when the device is CUDA)."""

    address: str | None = None
    num_cpus: int = 2
    actors: int = 2
    cpus_per_actor: int = 1

    def __post_init__(self) -> None:
        for name in ("num_cpus", "actors", "cpus_per_actor"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
