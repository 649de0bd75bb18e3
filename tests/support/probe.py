"""``Probe``: a node type for engine tests that records each call, can take its time, and can fail on purpose."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

import postgit
from postgit.retry import RetryPolicy


class ProbeParams(BaseModel):
    name: str
    sleep: float = 0.0
    fail: Literal["fatal", "retry", ""] = ""
    value: Any = None


@dataclass
class Call:
    name: str
    key: str
    attempt: int
    run_key: str


@dataclass
class ProbeLog:
    calls: list[Call] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def names(self) -> list[str]:
        return [call.name for call in self.calls]

    def reset(self) -> None:
        self.calls.clear()
        self.finished.clear()
        self.in_flight = self.max_in_flight = 0


PROBE = ProbeLog()


async def probe(ctx: postgit.StepContext, params: ProbeParams) -> dict[str, Any]:
    PROBE.calls.append(Call(params.name, ctx.idempotency_key, ctx.attempt, ctx.run_key))
    PROBE.in_flight += 1
    PROBE.max_in_flight = max(PROBE.max_in_flight, PROBE.in_flight)
    try:
        if params.sleep:
            await asyncio.sleep(params.sleep)
    finally:
        PROBE.in_flight -= 1
    if params.fail == "fatal":
        raise postgit.FatalError(f"{params.name} failed")
    if params.fail == "retry":
        raise postgit.RetryableError(f"{params.name} failed, retryable")
    PROBE.finished.append(params.name)
    return {"name": params.name, "value": params.value, "key": ctx.idempotency_key}


class ProbePlugin:
    @staticmethod
    @postgit.hookimpl
    def postgit_node_types() -> list[postgit.NodeType]:
        return [
            postgit.NodeType(
                name="Probe",
                params=ProbeParams,
                handler=probe,
                retry=RetryPolicy(max_attempts=2, initial_interval=0.05, max_interval=0.1),
            )
        ]


def Probe(id: str, name: str | None = None, **params: Any) -> postgit.Node:
    return postgit.Node("Probe", id=id, name=name or id, **params)
