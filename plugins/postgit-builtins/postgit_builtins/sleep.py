"""Sleep: wait durably for a number of seconds or until a timestamp."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from postgit import Completed, NodeType, StepContext, Suspended, hookimpl


class SleepParams(BaseModel):
    """Params of a Sleep node: exactly one of ``seconds`` and ``until``."""

    model_config = ConfigDict(extra="forbid")

    seconds: float | None = Field(default=None, ge=0, le=366 * 86_400)
    until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SleepParams:
        if (self.seconds is None) == (self.until is None):
            raise ValueError("give exactly one of 'seconds' and 'until'")
        return self


async def sleep(ctx: StepContext, params: SleepParams) -> Any:
    """Suspend until the due time; when woken up, complete. The due time is stored, so a restart keeps it."""
    if ctx.suspended_until is not None:
        return Completed({"slept_until": ctx.suspended_until.isoformat()})
    now = ctx.now()
    until = params.until if params.until is not None else now + timedelta(seconds=params.seconds or 0)
    if until <= now:
        return Completed({"slept_until": until.isoformat()})
    return Suspended(until=until)


@hookimpl
def postgit_node_types() -> list[NodeType]:
    """The node type this module provides."""
    return [
        NodeType(
            name="Sleep",
            params=SleepParams,
            handler=sleep,
            description="Wait durably for some seconds or until a timestamp",
        )
    ]
