"""Retry policy: how many attempts a step gets and how long to wait between them."""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class RetryPolicy(BaseModel):
    """Exponential backoff with jitter.

    The delay before attempt ``n + 1`` (after attempt ``n`` failed) is::

        base = min(max_interval, initial_interval * backoff_coefficient ** (n - 1))
        delay = base / 2 + uniform(0, base / 2)

    With the defaults (3 attempts, 1 s, x2, capped at 60 s) a failing step is tried at 0 s, after ~0.5-1 s and
    after a further ~1-2 s, then the instance fails with the last error. The "equal jitter" keeps at least half
    of the backoff while spreading retries of many instances apart.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=100)
    initial_interval: float = Field(default=1.0, ge=0, le=86_400)
    backoff_coefficient: float = Field(default=2.0, ge=1, le=10)
    max_interval: float = Field(default=60.0, ge=0, le=86_400)

    def next_delay(self, attempt: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait before retrying after ``attempt`` failed, or None when no attempt is left."""
        if attempt >= self.max_attempts:
            return None
        base = min(self.max_interval, self.initial_interval * self.backoff_coefficient ** (attempt - 1))
        return base / 2 + (rng or random).uniform(0, base / 2)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_defaults=True)
