"""Bearer-token authentication and roles: on when the server has a token (routes depend on it only then).

Every route declares the least role it needs with :func:`needs`; :func:`require_token` (the routers' dependency
when the server has tokens) finds who is calling first. A caller without the role gets a 403 naming it.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from postgit_server.roles import ANONYMOUS, Caller, Role, find_token
from postgit_server.settings import ServerSettings

bearer = HTTPBearer(
    auto_error=False,
    description="One of the server's tokens: POSTGIT_API_TOKEN, or a named one of POSTGIT_API_TOKENS "
    "(declared only when the server has one).",
)

CONSOLE_ACTOR = "x-postgit-console-actor"
CONSOLE_ROLE = "x-postgit-console-role"


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """Let the request through when the server has no token or the request carries one of its tokens.

    The caller found is kept for :func:`caller` (the role checks and the audit log).

    Raises:
        HTTPException: 401 with a ``WWW-Authenticate: Bearer`` header when the token is missing or wrong.
    """
    settings: ServerSettings = request.app.state.settings
    if not settings.auth_required:
        return
    if credentials is None:
        raise _unauthorized("this server requires an API token: send 'Authorization: Bearer <token>'")
    request.state.caller = _identify(request, credentials.credentials)


def _identify(request: Request, presented: str) -> Caller:
    settings: ServerSettings = request.app.state.settings
    found = find_token(settings.tokens, presented)
    if found is not None:
        return Caller(found.name, found.role)
    # the console calls the API in-process with a key only this process knows, on behalf of its session's caller
    internal: str = request.app.state.console_key
    if hmac.compare_digest(presented.encode(), internal.encode()):
        try:
            return Caller(request.headers.get(CONSOLE_ACTOR, ""), Role(request.headers.get(CONSOLE_ROLE, "")))
        except ValueError:
            pass
    raise _unauthorized("the API token is not valid for this server")


def caller(request: Request) -> Caller:
    """Who sent the request (after :func:`require_token`); ``anonymous`` when the server has no tokens."""
    return getattr(request.state, "caller", None) or ANONYMOUS


class RoleNeeded:
    """A route's dependency refusing, with a 403, a caller whose role is below ``role``."""

    def __init__(self, role: Role):
        self.role = role

    async def __call__(self, request: Request) -> None:
        request.state.role_needed = self.role
        who = caller(request)
        if not who.role.allows(self.role):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"the token {who.name!r} has the role {who.role.value}; this needs the role {self.role.value}",
            )


def needs(role: Role) -> DependsParam:
    """The dependency a route declares: the least role that may call it."""
    return Depends(RoleNeeded(role))


def role_of(dependencies: list[Any]) -> Role | None:
    """The role a route's dependencies declare through :func:`needs`, or None."""
    for dependency in dependencies:
        if isinstance(dependency.call, RoleNeeded):
            return dependency.call.role
    return None


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


VIEWER = needs(Role.viewer)
OPERATOR = needs(Role.operator)
ADMIN = needs(Role.admin)
