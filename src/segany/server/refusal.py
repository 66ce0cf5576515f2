"""How the server's pure ASGI guards (host and origin, token, body size) refuse a request:
before any route runs and before its body is read, with the same `{"detail": ...}` JSON body
as every other error of the API."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A websocket refused by policy (RFC 6455 7.4.1): the handshake is turned down.
_POLICY_VIOLATION = 1008


async def refuse(
    scope: Scope,
    send: Send,
    status: int,
    detail: str,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """Answer `status` with {"detail": detail}. The connection is closed afterwards
    (`Connection: close`): the request's body, if any, is never read, so the connection cannot
    carry another request. A websocket is closed with 1008 instead."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": detail[:120]})
        return
    body = json.dumps({"detail": detail}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def header(scope: Scope, name: bytes) -> list[bytes]:
    """Every value of header `name` (lower case) in the request, raw bytes as received."""
    return [value for key, value in scope.get("headers", ()) if key == name]
