"""What the API accepts: the parameters, headers and body fields that routes declare, with every rule they follow.

The OpenAPI schema must state every constraint the server enforces on an input, so that a client generated from it
sends only what the server takes and a gateway that enforces it lets through everything the server takes. FastAPI
states the constraints it enforces itself (``Query(ge=1, le=500)``, pydantic ``Field(max_length=200)``); the inputs
below are checked by the service instead, which answers 400 with its own message, so each states the service's rule
in the schema from the same constants. A route takes a workflow name, an instance id or one of these headers only
through these types; ``tests/server/test_api_contract.py`` fails on a route that reads an input the schema does not
describe, or a parameter whose schema states no bounds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Header, Path, Query
from pydantic import BeforeValidator, Field, WithJsonSchema

from postgit.definition import CONCURRENCY_STRATEGIES, QUEUE_NAME_RULE, QUEUE_PATTERN
from postgit.engine_types import RESERVED_EVENT_PREFIX
from postgit.errors import InvalidInput
from postgit.service import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_WORKFLOW_NAME_LENGTH, WORKFLOW_NAME_PATTERN
from postgit.starts import MAX_PRIORITY, MIN_PRIORITY
from postgit.tracing import TRACEPARENT_PATTERN
from postgit.validation import (
    MAX_CONCURRENCY,
    MAX_CONCURRENCY_KEY_LENGTH,
    MAX_ID_LENGTH,
    MAX_RATE_PER_SECOND,
    MAX_RETENTION,
    MAX_WORKFLOW_TIMEOUT,
)

MAX_INT4 = 2**31 - 1
"""The largest version number PostgreSQL's ``integer`` holds."""
MAX_EVENT_ID = 2**63 - 1
"""The largest event id PostgreSQL's ``bigint`` holds."""
MAX_OUTBOX_ID = 2**53
"""The largest outbox message id the API takes: far beyond any id the outbox reaches, and exact in JSON tools that
read numbers as doubles (a bound of 2**63 - 1 is not: they send numbers above it that they read as equal to it)."""

WORKFLOW_NAME_TEXT = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
WORKFLOW_NAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_WORKFLOW_NAME_LENGTH,
    "pattern": WORKFLOW_NAME_PATTERN,
}
NO_NUL = r"^[^\x00]*$"
"""A pattern for text the server stores: PostgreSQL's text and JSON cannot hold the NUL character (400 otherwise)."""
ANY_JSON_TEXT = "Any JSON value, at most 1 MB; no string in it (keys included) may hold the NUL character \\u0000"
IDEMPOTENCY_KEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
    "pattern": NO_NUL,
}

# -- path, query and header parameters ---------------------------------------------------------------------------

WorkflowName = Annotated[
    str, Path(description=f"The workflow's name: {WORKFLOW_NAME_TEXT}", json_schema_extra=WORKFLOW_NAME_SCHEMA)
]
"""A workflow's name in the path; the service answers 400 for an invalid one."""

ScheduleName = Annotated[
    str, Path(description=f"The schedule's name: {WORKFLOW_NAME_TEXT}", json_schema_extra=WORKFLOW_NAME_SCHEMA)
]
"""A schedule's name in the path (the workflow-name rule); the service answers 400 for an invalid one."""

WorkflowFilter = Annotated[
    str | None,
    Query(description=f"Only instances of this workflow ({WORKFLOW_NAME_TEXT})"),
    WithJsonSchema(WORKFLOW_NAME_SCHEMA),
]
"""A workflow name to filter by (``?workflow=``): an empty or invalid one is a 400, not "no filter"."""

InstanceId = Annotated[
    str,
    Path(
        description="The instance's id, a UUID (8-4-4-4-12 hexadecimal digits); any other text is an unknown instance",
        json_schema_extra={"format": "uuid"},
    ),
]
"""An instance id in the path; a string that is not one answers 404, as an unknown instance does."""

TraceparentHeader = Annotated[
    str | None,
    Header(
        alias="traceparent",
        max_length=512,
        description="W3C trace context: the instance's step spans (OpenTelemetry, when workers trace) are its "
        f"children; one that does not match `{TRACEPARENT_PATTERN}` (or names all-zero ids) is ignored, as the W3C "
        "spec asks",
    ),
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description=(
            "Starting twice with one key returns the first instance; 1-200 characters, not only spaces. When the "
            "body also has an `idempotency_key`, the two must be equal (400 otherwise)"
        ),
    ),
    # HTTP drops the spaces around a header's value: a value of spaces only arrives empty
    WithJsonSchema({**IDEMPOTENCY_KEY_SCHEMA, "pattern": r"[^ \t]"}),
]

OutboxMessageId = Annotated[
    int, Path(ge=1, le=MAX_OUTBOX_ID, description="The outbox message's id (as `pst outbox ls` shows it)")
]
"""An outbox message's id in the path."""

LastEventIdHeader = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        description="Set by EventSource clients on reconnection: the id of the last event received (an integer)",
    ),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_EVENT_ID}),
]
"""The event stream's cursor as a header; anything but an event id (digits, at most ``MAX_EVENT_ID``) is a 400."""

# -- body fields -------------------------------------------------------------------------------------------------

WorkflowNameField = Annotated[str, WithJsonSchema({**WORKFLOW_NAME_SCHEMA, "description": WORKFLOW_NAME_TEXT})]

IdempotencyKeyField = Annotated[
    str | None,
    Field(
        description=(
            "Starting twice with one key returns the first instance; 1-200 characters. When the Idempotency-Key "
            "header is sent too, the two must be equal (400 otherwise)"
        )
    ),
    WithJsonSchema({"anyOf": [IDEMPOTENCY_KEY_SCHEMA, {"type": "null"}]}),
]


def _whole_number(value: Any) -> Any:
    """A float without a fractional part as the integer it is: JSON Schema's ``integer`` takes ``2.0``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


VersionField = Annotated[
    Annotated[int, Field(ge=1, le=MAX_INT4, strict=True)] | None,
    BeforeValidator(_whole_number),
    Field(description="The version to run; default latest"),
]
"""A version to run: a whole number (``3`` or ``3.0``), never ``true`` or text that reads as one."""

PriorityField = Annotated[
    Annotated[int, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY, strict=True)] | None,
    BeforeValidator(_whole_number),
    Field(
        description="1 (claimed first) to 5 (claimed last); default 3. Workers claim due instances by priority, "
        "then by due time"
    ),
]
"""A start's priority: a whole number from 1 to 5."""


QUEUE_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": QUEUE_PATTERN}
"""A queue's name (a step's or a workflow's ``queue``)."""

NODE_SCHEMA: dict[str, Any] = {
    "title": "WorkflowNode",
    "type": "object",
    "description": (
        "A node: `id` and `type`, then the fields of its type (`params`, `children`, ...). Its type must be one of "
        "this server's node types (GET /plugins) or a control-flow type, with params its schema accepts"
    ),
    "required": ["id", "type"],
    "properties": {
        "id": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_LENGTH,
            "description": "Unique in the workflow; printable characters, not only spaces",
        },
        "type": {"type": "string", "minLength": 1},
        "rateLimit": {
            "type": "object",
            "required": ["key", "perSecond"],
            "properties": {
                "key": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_CONCURRENCY_KEY_LENGTH,
                    "description": "A template rendered over the state when the step runs: `api-{{ input.region }}`",
                },
                "perSecond": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RATE_PER_SECOND},
            },
            "additionalProperties": False,
            "description": "A leaf node's steps start at most `perSecond` times a second per rendered key, across "
            "every worker (a second's worth at once); a step that finds no token waits for the one it reserved",
        },
        "queue": {
            **QUEUE_SCHEMA,
            "description": f"A step's queue: only workers serving it run the step (POSTGIT_QUEUES); {QUEUE_NAME_RULE}; "
            "control-flow nodes take none",
        },
    },
}
WORKFLOW_SCHEMA: dict[str, Any] = {
    "title": "WorkflowSettings",
    "type": "object",
    "description": "A root node with the workflow's settings",
    "required": ["root"],
    "properties": {
        "root": NODE_SCHEMA,
        "timeout": {
            "anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WORKFLOW_TIMEOUT}, {"type": "null"}],
            "description": "Seconds from its start after which an instance fails",
        },
        "inputSchema": {
            "anyOf": [{"type": "object"}, {"type": "boolean"}, {"type": "null"}],
            "description": "A JSON Schema every start's input must satisfy",
        },
        "retention": {
            "anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RETENTION}, {"type": "null"}],
            "description": "Seconds a finished instance is kept, instead of the workers' POSTGIT_RETENTION",
        },
        "concurrency": {
            "anyOf": [
                {
                    "type": "object",
                    "required": ["key"],
                    "properties": {
                        "key": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_CONCURRENCY_KEY_LENGTH,
                            "description": "A template rendered over the start's input, e.g. `{{ input.customer }}`",
                        },
                        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY, "default": 1},
                        "strategy": {"enum": list(CONCURRENCY_STRATEGIES), "default": "queue"},
                    },
                    "additionalProperties": False,
                },
                {"type": "null"},
            ],
            "description": "At most `limit` instances per rendered key hold a slot (run) at once; a slot is held "
            "until the instance finishes, across sleeps and waits for events",
        },
        "queue": {
            "anyOf": [QUEUE_SCHEMA, {"type": "null"}],
            "description": f"The queue of the steps that name none (default: `default`); {QUEUE_NAME_RULE}",
        },
    },
    "additionalProperties": False,
}

NOT_RESERVED_EVENT_NAME: dict[str, Any] = {"not": {"pattern": f"^{re.escape(RESERVED_EVENT_PREFIX)}"}}
"""Added to an event name's schema: names starting with ``postgit.`` are Postgit's own (the service answers 400)."""

DefinitionField = Annotated[
    Any,
    WithJsonSchema(
        {
            "description": (
                "The workflow: its root node, or `{root, timeout, inputSchema, retention, concurrency, queue}`. Every "
                "node is checked when it is deployed (its type, params, templates and what it reads); a definition "
                "that does not pass answers 422 with `issues`. At most 1 MB of JSON, 5,000 nodes, 50 levels deep; no "
                "string in it may hold the NUL character \\u0000"
            ),
            "oneOf": [NODE_SCHEMA, WORKFLOW_SCHEMA],
        }
    ),
]


def parse_moment(field: str, text: str) -> datetime:
    """A time the request gave as RFC 3339 text (its pattern checked), in UTC; InvalidInput naming ``field``.

    In UTC, because PostgreSQL takes no offset beyond 15:59, which RFC 3339 allows.
    """
    try:
        return datetime.fromisoformat(text.replace("z", "Z").replace("t", "T")).astimezone(UTC)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {text!r} is not a valid time ({exc})") from None
    except OverflowError:
        raise InvalidInput(f"{field}: {text!r} is out of range (years 1 to 9999, in UTC)") from None
