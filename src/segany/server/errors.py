"""Typed errors of the annotation server, each mapping to one HTTP status in the API layer."""

from segany.errors import SeganyError


class NotFoundError(SeganyError, LookupError):
    """An image, category or annotation id that does not exist (HTTP 404)."""


class ConflictError(SeganyError):
    """A write that clashes with stored data, e.g. a duplicate category name (HTTP 409)."""


class InvalidValueError(SeganyError, ValueError):
    """A value the storage refuses: an empty name, a malformed colour or RLE, a mask of another
    size than its image (HTTP 422)."""
