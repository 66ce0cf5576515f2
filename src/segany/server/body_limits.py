"""Request bodies within a size limit per route, refused before they are read: a pure ASGI layer.

A request whose `Content-Length` is over its route's limit is answered 413 from its headers,
without reading a byte of the body. A body sent without a length (chunked), or longer than it
said, is counted as it streams: once past the limit the answer is 413 and the body stops being
read (the route sees the client gone; the connection is closed). Uploads (multipart image and
GeoTIFF files) get `Limits.upload_bytes`, every other request `Limits.json_bytes`: the routes
that take files are named by (method, path) when the app is made.
"""

from __future__ import annotations

from collections.abc import Iterable

from segany.byte_sizes import format_bytes
from segany.server.refusal import ASGIApp, Receive, Scope, Send, header, refuse


class BodyLimitGuard:
    """upload_routes: (METHOD, path) of the routes whose body is a file upload, allowed
    `upload_bytes`; any other request's body is allowed `other_bytes`."""

    def __init__(
        self,
        app: ASGIApp,
        upload_bytes: int,
        other_bytes: int,
        upload_routes: Iterable[tuple[str, str]],
    ) -> None:
        self.app = app
        self.upload_bytes = upload_bytes
        self.other_bytes = other_bytes
        self.upload_routes = frozenset((m.upper(), p) for m, p in upload_routes)

    def limit(self, scope: Scope) -> tuple[int, str]:
        """The most body bytes the request may send, and what its body is called."""
        if (scope["method"], scope["path"]) in self.upload_routes:
            return self.upload_bytes, "upload"
        return self.other_bytes, "request body"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self.limit(scope)
        lengths = header(scope, b"content-length")
        if lengths:
            if len(set(lengths)) != 1 or not lengths[0].isdigit():
                await refuse(scope, send, 400, "the Content-Length header is not one number")
                return
            if int(lengths[0]) > limit:
                await refuse(scope, send, 413, _too_large(what, limit, int(lengths[0])))
                return
        await _Counted(self.app, limit, what)(scope, receive, send)


class _Counted:
    """One request through the app with its body counted as it is received."""

    def __init__(self, app: ASGIApp, limit: int, what: str) -> None:
        self.app = app
        self.limit = limit
        self.what = what
        self.received = 0
        self.started = False  # the app has begun its answer
        self.refused = False  # we answered 413; the app's answer goes nowhere

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted_receive() -> dict:
            if self.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    self.refused = True
                    if not self.started:
                        await refuse(scope, send, 413, _too_large(self.what, self.limit, None))
                    # The route sees the client gone (Starlette raises ClientDisconnect).
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            if self.refused:
                return
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            # What the route raised after its body was cut off (ClientDisconnect and what
            # frameworks make of it) has been answered with the 413 already.
            if not self.refused:
                raise


def _too_large(what: str, limit: int, length: int | None) -> str:
    said = f" ({length:,} bytes)" if length is not None else ""
    return (
        f"the {what}{said} is over {limit:,} bytes ({format_bytes(limit)}), this route's "
        "limit; send less"
    )
