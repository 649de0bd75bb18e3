"""HitEndpoint: call an HTTP endpoint with httpx."""

from __future__ import annotations

import asyncio
import re
import ssl
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
        check_url(url)
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


_HOST_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
MAX_HOST_NAME = 253


def check_url(url: str) -> None:
    """ValueError, saying what is wrong, unless ``url`` is an http(s) URL that a request can be sent to."""
    try:
        parsed = httpx.URL(url)
        httpx.Request("GET", parsed)
    except (httpx.InvalidURL, ValueError) as exc:  # IDNA problems are a ValueError
        raise ValueError(f"is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ValueError(f"port {parsed.port} is not between 1 and 65535")
    host = parsed.raw_host.decode("ascii")
    if ":" not in host and (len(host.rstrip(".")) > MAX_HOST_NAME or not _HOST_NAME.fullmatch(host)):
        raise ValueError(f"host '{parsed.host}' is not a valid host name")


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


_ssl_context: ssl.SSLContext | None = None


async def _client() -> httpx.AsyncClient:
    """One connection-pooling client per event loop, every connection checked against the network policy."""
    global _ssl_context
    if _ssl_context is None:  # loading the CA certificates takes a fraction of a second of CPU: not on the loop
        _ssl_context = await asyncio.to_thread(httpx.create_ssl_context)
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        transport = GuardedTransport(NetworkPolicy.from_env(), _ssl_context)
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
    if ctx.traceparent is not None and not any(name.lower() == "traceparent" for name in params.headers):
        headers["traceparent"] = ctx.traceparent  # the called service's spans join the step's trace
    try:
        response = await (await _client()).request(
            params.method,
            params.url,
            headers=headers,
            json=params.json_body,
            content=params.body,
            timeout=params.timeout,
        )
    except BlockedHost as exc:
        raise FatalError(f"{params.method} {params.url} refused: {exc}") from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
        # a request that cannot be sent as it is (a redirect to a malformed URL or another scheme, a header that
        # HTTP cannot carry): trying again changes nothing
        raise FatalError(f"{params.method} {params.url} cannot be sent: {type(exc).__name__}: {exc}") from exc
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
