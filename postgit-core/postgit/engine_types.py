"""The params of the leaf node types the engine runs itself: ``WaitForEvent`` and ``SubWorkflow``.

They are checked at deploy time like a plugin's params; the engine's executor runs them (they wait on other
instances and on events sent to the API, which no plugin could see).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

EVENT_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}$"
"""An event's name: 1-200 letters, digits and ``_ . : / -``."""

MAX_WAIT_SECONDS = 366 * 86_400
RESERVED_EVENT_PREFIX = "postgit."
"""Events Postgit sends itself (a child instance finishing) have names starting with this."""


class WaitForEventParams(BaseModel):
    """Wait until an event named ``event`` is sent to the instance, or to every instance waiting on ``key``."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(pattern=EVENT_NAME_PATTERN, description="The event's name")

    @field_validator("event")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith(RESERVED_EVENT_PREFIX):
            raise ValueError(f"event names starting with '{RESERVED_EVENT_PREFIX}' are reserved for Postgit itself")
        return value

    key: str | None = Field(
        default=None, min_length=1, max_length=200, description="A correlation key, usually a template"
    )
    timeout: float | None = Field(default=None, gt=0, le=MAX_WAIT_SECONDS, description="Seconds to wait at most")


class SubWorkflowParams(BaseModel):
    """Start one child instance of ``workflow`` and, unless ``wait`` is false, wait for it to finish."""

    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", description="The child's workflow")
    input: Any = Field(default=None, description="The child's input")
    version: int | None = Field(default=None, ge=1, le=2**31 - 1, description="Its version; default latest")
    wait: bool = Field(default=True, description="Wait for the child and output its final state")
    on_parent_cancel: Literal["cancel", "abandon"] = Field(
        default="cancel", description="What happens to the child when the parent is cancelled or fails"
    )


ENGINE_PARAMS: dict[str, type[BaseModel]] = {"WaitForEvent": WaitForEventParams, "SubWorkflow": SubWorkflowParams}
"""The params model of each engine leaf type."""

ENGINE_DESCRIPTIONS = {
    "WaitForEvent": "Wait for an event sent to the instance (or to a correlation key), with an optional timeout",
    "SubWorkflow": "Start a child instance of another workflow and wait for its final state",
}

CONTROL_DESCRIPTIONS = {
    "Sequence": "Run its children in order",
    "Parallel": "Run its branches at once; the output is keyed by branch name",
    "If": "Run 'then' when the condition is true, else 'else'",
    "Switch": "Run the first case whose condition is true, else 'default'",
    "ForEach": "Run the body once per item, at most 'concurrency' at once",
    "Try": "Run 'catch' when an error escapes 'body', and 'finally' always",
}


def builtin_node_types() -> dict[str, str]:
    """Every node type the engine runs itself (control flow, WaitForEvent, SubWorkflow), with its description."""
    return {**CONTROL_DESCRIPTIONS, **ENGINE_DESCRIPTIONS}
