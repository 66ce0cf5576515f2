"""Reading an uploaded file's bytes within a limit, for every route that takes a file."""

from __future__ import annotations

from fastapi import UploadFile

from segany.project.image_files import TooLargeError

_CHUNK = 1 << 20


async def read_upload(file: UploadFile, limit: int) -> bytes:
    """The upload's bytes; `TooLargeError` (413) as soon as more than `limit` bytes came.
    (The ASGI guard already refuses larger request bodies before they are read; this bounds
    the one file within a multipart body.)"""
    data = bytearray()
    while chunk := await file.read(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise TooLargeError(f"{file.filename}: the upload is over {limit:,} bytes")
    return bytes(data)
