"""Access: the bearer token (when the server has one) and who is annotating.

The token is checked in one place, `TokenGuard`, a pure ASGI layer in front of the routes: a
request without the token is answered 401 from its headers alone, before any route runs and
before one byte of its body is read (a FastAPI dependency runs only after the body has been
read, so it could not refuse an upload before spooling it). Every path needs the token except
`PUBLIC_PATHS` and the static files: the pages themselves, which hold no data (the annotator
then asks for the token, and sends it with every API request), the health check and the API's
description.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from fastapi import Header, HTTPException

from segany.server.refusal import ASGIApp, Receive, Scope, Send, header, refuse

USER_HEADER = "X-Segany-User"
ANONYMOUS = "anonymous"
MAX_USER_LENGTH = 200
# What anyone may GET without the token: pages and files that hold no project data.
PUBLIC_PATHS = frozenset({"/", "/health", "/map", "/docs", "/docs/oauth2-redirect", "/redoc"})
PUBLIC_PATHS |= {"/openapi.json"}
PUBLIC_PREFIXES = ("/static/",)
# "Bearer" and the token, separated by spaces or tabs (RFC 7235 `credentials`).
_BEARER = re.compile(rb"[ \t]*bearer[ \t]+(\S+)[ \t]*", re.IGNORECASE)


def needs_token(path: str) -> bool:
    """Whether a request for `path` (the ASGI scope's, percent-decoded) must carry the token."""
    return path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIXES)


def token_matches(values: list[bytes], token: str) -> bool:
    """Whether the request's Authorization header values (raw bytes, any of them: non-ASCII,
    several headers, no scheme) are exactly one `Bearer TOKEN` with the server's token. Compared
    as bytes in constant time (`hmac.compare_digest` refuses non-ASCII str)."""
    if len(values) != 1:
        return False
    match = _BEARER.fullmatch(values[0])
    return match is not None and hmac.compare_digest(match.group(1), token.encode("utf-8"))


class TokenGuard:
    """401 for a request that needs the token (`needs_token`) and does not carry it; no check
    when `token` is None or empty (the server then listens on loopback only)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.token is not None
            and scope["type"] in ("http", "websocket")
            and needs_token(scope["path"])
            and not token_matches(header(scope, b"authorization"), self.token)
        ):
            await refuse(
                scope,
                send,
                401,
                "this server needs an access token: send 'Authorization: Bearer TOKEN' (in the "
                "browser, open the page as /?token=TOKEN once)",
                [("www-authenticate", "Bearer")],
            )
            return
        await self.app(scope, receive, send)


def document_token(app: Any) -> None:
    """Describe the token in `app`'s OpenAPI schema (a bearer scheme on every operation that
    needs it), so that /docs can send it; the check itself is `TokenGuard`'s."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["bearer"] = {"type": "http", "scheme": "bearer"}
            for path, operations in schema.get("paths", {}).items():
                if needs_token(path):
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
        return app.openapi_schema

    app.openapi = openapi


def current_user(x_segany_user: str | None = Header(default=None)) -> str:
    """The annotator's name from the X-Segany-User header ("anonymous" without one)."""
    name = (x_segany_user or "").strip()
    if len(name) > MAX_USER_LENGTH:
        raise HTTPException(status_code=422, detail=f"{USER_HEADER} is over 200 characters")
    return name or ANONYMOUS
