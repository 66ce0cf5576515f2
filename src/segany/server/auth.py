"""Access: the bearer token (when the server has one) and who is annotating."""

from __future__ import annotations

import hmac

from fastapi import Header, HTTPException, Request

USER_HEADER = "X-Segany-User"
ANONYMOUS = "anonymous"
MAX_USER_LENGTH = 200


def require_token(request: Request, authorization: str | None = Header(default=None)) -> None:
    """401 unless the request carries the server's token (`Authorization: Bearer TOKEN`); no
    check when the server has no token (it then listens on loopback only)."""
    token = request.app.state.segany.settings.token
    if not token:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        raise HTTPException(
            status_code=401,
            detail="this server needs an access token: send 'Authorization: Bearer TOKEN'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def current_user(x_segany_user: str | None = Header(default=None)) -> str:
    """The annotator's name from the X-Segany-User header ("anonymous" without one)."""
    name = (x_segany_user or "").strip()
    if len(name) > MAX_USER_LENGTH:
        raise HTTPException(status_code=422, detail=f"{USER_HEADER} is over 200 characters")
    return name or ANONYMOUS
