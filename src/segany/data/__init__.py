"""Datasets for training and evaluation: synthetic scenes (generated, or pooled on disk) and
readers of SA-1B folders, COCO instance files and PNG mask folders, all returning `Sample`s."""

from segany.data.coco import CocoDataset
from segany.data.folder import MaskFolder
from segany.data.pool import SceneDataset, build_pool
from segany.data.sa1b import SA1BDataset
from segany.data.sample import DenseMasks, EncodedMasks, Masks, Sample
from segany.data.synthetic import Scene, SceneConfig, make_scene, split_seeds

__all__ = [
    "CocoDataset",
    "DenseMasks",
    "EncodedMasks",
    "MaskFolder",
    "Masks",
    "SA1BDataset",
    "Sample",
    "Scene",
    "SceneConfig",
    "SceneDataset",
    "build_pool",
    "make_scene",
    "split_seeds",
]
