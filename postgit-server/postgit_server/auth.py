"""Bearer-token authentication, on when ``POSTGIT_API_TOKEN`` is set."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from postgit_server.settings import ServerSettings

bearer = HTTPBearer(
    auto_error=False,
    description="The server's POSTGIT_API_TOKEN; needed only when the server has one.",
)


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """Let the request through when the server has no token or the request carries the right one.

    Raises:
        HTTPException: 401 with a ``WWW-Authenticate: Bearer`` header when the token is missing or wrong.
    """
    settings: ServerSettings = request.app.state.settings
    if settings.api_token is None:
        return
    if credentials is None:
        raise _unauthorized("this server requires an API token: send 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(credentials.credentials.encode(), settings.api_token.encode()):
        raise _unauthorized("the API token is not valid for this server")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )
