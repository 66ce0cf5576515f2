"""Running automatic mask generation over many images ("the data engine"): image discovery,
resumable per-image outputs, a local engine and a Ray Data engine.

    from segany.engine import ModelSource, OutputOptions, run_amg
    summary = run_amg(["photos/"], ModelSource("vit_b", "sam_vit_b_01ec64.pth"),
                      OutputOptions("masks/", format="sa1b"))
"""

from segany.engine.jobs import ImageJob, find_images
from segany.engine.options import FORMATS, ModelSource, OutputOptions, RayOptions
from segany.engine.run import ENGINES, RunSummary, run_amg

__all__ = [
    "ENGINES",
    "FORMATS",
    "ImageJob",
    "ModelSource",
    "OutputOptions",
    "RayOptions",
    "RunSummary",
    "find_images",
    "run_amg",
]
