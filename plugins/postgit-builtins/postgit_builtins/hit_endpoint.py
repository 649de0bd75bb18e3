"""HitEndpoint: call an HTTP endpoint with httpx."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from postgit import FatalError, NodeType, RetryableError, StepContext, hookimpl
from postgit_builtins.network_policy import BlockedHost, GuardedTransport, NetworkPolicy


class HitEndpointParams(BaseModel):
    """Params of a HitEndpoint node."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str = Field(max_length=8192)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    timeout: float = Field(default=30.0, gt=0, le=3600)
    accept_status: list[int] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("must be an http:// or https:// URL with a host")
        return url

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, method: Any) -> Any:
        return method.upper() if isinstance(method, str) else method

    @model_validator(mode="after")
    def _one_body(self) -> HitEndpointParams:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give either 'json' or 'body', not both")
        return self


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def _client() -> httpx.AsyncClient:
    """One connection-pooling client per event loop, every connection checked against the network policy."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        transport = GuardedTransport(NetworkPolicy.from_env())
        client = _clients[loop] = httpx.AsyncClient(transport=transport, follow_redirects=True, trust_env=False)
    return client


async def close_client() -> None:
    """Close this event loop's client and its connections (for a worker embedded in a longer-lived program)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


async def hit_endpoint(ctx: StepContext, params: HitEndpointParams) -> dict[str, Any]:
    """Send the request; 5xx, 429 and network errors are retryable, other 4xx fail unless accepted."""
    headers = {"Idempotency-Key": ctx.idempotency_key, **params.headers}
    try:
        response = await _client().request(
            params.method,
            params.url,
            headers=headers,
            json=params.json_body,
            content=params.body,
            timeout=params.timeout,
        )
    except BlockedHost as exc:
        raise FatalError(f"{params.method} {params.url} refused: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise RetryableError(f"{params.method} {params.url} timed out after {params.timeout:g}s") from exc
    except httpx.HTTPError as exc:
        raise RetryableError(f"{params.method} {params.url} failed: {type(exc).__name__}: {exc}") from exc
    result = {"status": response.status_code, "headers": dict(response.headers), "body": _body(response)}
    status = response.status_code
    if status in params.accept_status:
        return result
    if status >= 500 or status == 429:
        raise RetryableError(f"{params.method} {params.url} answered {status}", details=result)
    if status >= 400:
        raise FatalError(f"{params.method} {params.url} answered {status}", details=result)
    return result


def _body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text


@hookimpl
def postgit_node_types() -> list[NodeType]:
    """The node type this module provides."""
    return [
        NodeType(
            name="HitEndpoint",
            params=HitEndpointParams,
            handler=hit_endpoint,
            description="Call an HTTP endpoint; the response's status, headers and body are the output",
            timeout=3_610,  # the params' request timeout (at most 3600 s) bounds the step
        )
    ]
