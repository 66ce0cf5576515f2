"""Typed errors raised to users. Each message says what was wrong and how to fix it."""


class SeganyError(Exception):
    """Base class of every error segany raises on purpose."""


class CheckpointError(SeganyError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


class DownloadError(SeganyError):
    """A checkpoint could not be downloaded or failed verification."""


class ModelNotFoundError(SeganyError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ImageError(SeganyError, ValueError):
    """An image of the wrong type, rank, dtype, channel count or size."""


class PromptError(SeganyError, ValueError):
    """A prompt (points, labels, box, mask) that is malformed, or given before an image."""


class ConfigError(SeganyError, ValueError):
    """An option value that is out of range or inconsistent with another option."""


class FormatError(SeganyError, ValueError):
    """A mask file (SA-1B JSON, COCO, PNG folder) that is malformed or not of its format."""


class DataError(SeganyError):
    """A dataset that is missing, unreadable or inconsistent (e.g. a mask of another size than its
    image)."""


class NotFoundError(SeganyError, LookupError):
    """An image, category or annotation id that does not exist (HTTP 404 in the server)."""


class ConflictError(SeganyError):
    """A write that clashes with stored data, e.g. a duplicate category name (HTTP 409)."""


class InvalidValueError(SeganyError, ValueError):
    """A value the project's storage refuses: an empty name, a malformed colour or RLE, a mask
    of another size than its image (HTTP 422)."""


class GoneError(NotFoundError):
    """A stored record whose file was moved or deleted outside segany, e.g. an imported image
    (HTTP 410): the record is there, its file is not."""
