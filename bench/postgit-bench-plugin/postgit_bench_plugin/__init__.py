"""Node types for the benchmark: handlers that do no I/O, so a run measures the engine alone."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

import postgit


class NoParams(BaseModel):
    """Noop and NoopRecord take no params."""

    model_config = ConfigDict(extra="forbid")


class BlobParams(BaseModel):
    """How large a blob to return."""

    model_config = ConfigDict(extra="forbid")
    bytes: int = Field(ge=0, le=900_000)


async def blob(ctx: postgit.StepContext, params: BlobParams) -> dict[str, str]:
    """Return ``bytes`` characters of data (to grow an instance's state to a given size)."""
    return {"data": "x" * params.bytes}


async def noop(ctx: postgit.StepContext, params: NoParams) -> dict[str, bool]:
    """Do nothing; the tiny output still makes the engine record a step output."""
    return {"ok": True}


async def noop_record(ctx: postgit.StepContext, params: NoParams) -> dict[str, float]:
    """Return the wall-clock time at which this handler began (``time.time()``)."""
    return {"t": time.time()}


@postgit.hookimpl
def postgit_node_types() -> list[postgit.NodeType]:
    """The benchmark's node types."""
    return [
        postgit.NodeType(name="Noop", params=NoParams, handler=noop, description="Do nothing (benchmark)"),
        postgit.NodeType(
            name="NoopRecord",
            params=NoParams,
            handler=noop_record,
            description="Return the time the handler began (benchmark)",
        ),
        postgit.NodeType(name="Blob", params=BlobParams, handler=blob, description="Return N bytes (benchmark)"),
    ]
