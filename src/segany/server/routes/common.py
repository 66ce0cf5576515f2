"""What the routers share: the app state, and images and annotations as the API shows them."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from segany.project.workspace import stored


def state(request: Request) -> Any:
    """The `AppState` of the running app."""
    return request.app.state.segany


def image_item(request: Request, image: Any, annotations: int) -> dict[str, Any]:
    """An `ImageItem`: the stored image with its encoding status and annotation count."""
    return {
        "id": image.id,
        "file_name": image.file_name,
        "width": image.width,
        "height": image.height,
        "encoded": state(request).model.is_encoded(stored(image)),
        "annotations": annotations,
        "reviewed": image.reviewed,
    }
