"""Everything the API does with the project database, as plain functions over a Session.

Each write commits before it returns (an acknowledged annotation is on disk). Unknown ids raise
NotFoundError, clashes (a duplicate category name) ConflictError, refused values (a malformed
RLE, a mask of another size than its image) InvalidValueError; all from segany.errors.
The functions live in one module per table; this one gathers them for a single import.
"""

from segany.project.storage.annotations import (
    NewAnnotation,
    add_annotation,
    add_annotations,
    delete_annotation,
    get_annotation,
    list_annotations,
    update_annotation,
)
from segany.project.storage.categories import (
    add_category,
    delete_category,
    get_category,
    list_categories,
    update_category,
)
from segany.project.storage.common import UNSET, Unset
from segany.project.storage.export import ProjectImage, iter_project
from segany.project.storage.images import (
    MAX_PAGE_SIZE,
    ImagePage,
    ImageSummary,
    NewImage,
    add_image,
    add_image_or_get,
    add_images,
    all_images,
    delete_image,
    find_image_by_sha256,
    get_image,
    list_images,
    next_images,
    record_file,
    update_image,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "UNSET",
    "ImagePage",
    "ImageSummary",
    "NewAnnotation",
    "NewImage",
    "ProjectImage",
    "Unset",
    "add_annotation",
    "add_annotations",
    "add_category",
    "add_image",
    "add_image_or_get",
    "add_images",
    "all_images",
    "delete_annotation",
    "delete_category",
    "delete_image",
    "find_image_by_sha256",
    "get_annotation",
    "get_category",
    "get_image",
    "iter_project",
    "list_annotations",
    "list_categories",
    "list_images",
    "next_images",
    "record_file",
    "update_annotation",
    "update_category",
    "update_image",
]
