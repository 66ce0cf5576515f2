"""Readers and writers of generated masks: SA-1B JSON per image, one COCO instances file per
run, PNG folders with metadata.csv; plus atomic writes and image reading."""

from segany.formats.coco import merge_coco_parts, write_coco_part
from segany.formats.image import IMAGE_EXTENSIONS, read_image
from segany.formats.png import read_png_metadata, write_png_masks
from segany.formats.sa1b import read_sa1b, sa1b_document, write_sa1b
from segany.formats.segmentation import to_binary_mask, to_coco_rle

__all__ = [
    "IMAGE_EXTENSIONS",
    "merge_coco_parts",
    "read_image",
    "read_png_metadata",
    "read_sa1b",
    "sa1b_document",
    "to_binary_mask",
    "to_coco_rle",
    "write_coco_part",
    "write_png_masks",
    "write_sa1b",
]
