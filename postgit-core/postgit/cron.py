"""Cron specs in a time zone: which nominal times a schedule fires at, computed by croniter, never by hand.

A spec is a cron expression (5 fields, or 6 with seconds last, as croniter reads them; ``@hourly``, ``@daily``...)
and an IANA time zone. Times are computed in that zone and returned in UTC, so daylight-saving changes are the
library's: a time the clocks skip fires at the first instant after the gap, a time that occurs twice when they go
back fires at both instants (each its own nominal time).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from postgit.errors import InvalidInput

MAX_CRON_LENGTH = 200
MAX_TIMEZONE_LENGTH = 64
MEMO_SIZE = 64
"""Answers of :meth:`CronSpec.next_after` a spec remembers."""
MAX_YEARS_BETWEEN_FIRES = 5
"""A cron expression that matches no time within this many years (``0 0 30 2 *``) is refused."""


@dataclass(frozen=True)
class CronSpec:
    """A parsed cron expression in a time zone.

    A spec keeps one croniter, moved to each moment it is asked about (building one reads the expression again, which
    costs several times a step), so a spec belongs to one thread. It remembers the last :data:`MEMO_SIZE` answers of
    :meth:`next_after`: the schedules that share a spec ask it the same question in one firing pass.
    """

    expression: str
    timezone: str
    zone: ZoneInfo
    _cron: croniter = field(init=False, repr=False, compare=False)
    _next: dict[datetime, datetime] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cron = croniter(self.expression, datetime.now(self.zone), max_years_between_matches=MAX_YEARS_BETWEEN_FIRES)
        object.__setattr__(self, "_cron", cron)
        object.__setattr__(self, "_next", {})

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> CronSpec:
        """Check both and build the spec; InvalidInput naming the field (``cron``, ``timezone``) otherwise."""
        zone = parse_timezone(timezone)
        if not isinstance(expression, str) or not 0 < len(expression.strip()) <= MAX_CRON_LENGTH:
            raise InvalidInput(f"cron: must be 1 to {MAX_CRON_LENGTH} characters")
        expression = " ".join(expression.split())
        try:
            spec = cls(expression, timezone, zone)
        except (CroniterError, ValueError, KeyError, IndexError, TypeError) as exc:
            reason = str(exc).strip().rstrip(".") or type(exc).__name__
            raise InvalidInput(
                f"cron: {expression!r} does not parse ({reason}); write 5 fields (minute hour day month weekday), "
                "or 6 with seconds last, e.g. '*/5 * * * *'"
            ) from None
        spec.next_after(datetime.now(UTC))  # refuses an expression that never fires
        return spec

    def next_after(self, moment: datetime) -> datetime:
        """The first nominal time strictly after ``moment``, in UTC."""
        found = self._next.get(moment)
        if found is not None:
            return found
        self._cron.set_current(moment.astimezone(self.zone), force=True)
        try:
            found = self._cron.get_next(datetime).astimezone(UTC)
        except CroniterError as exc:
            raise InvalidInput(
                f"cron: {self.expression!r} matches no time within {MAX_YEARS_BETWEEN_FIRES} years ({exc})"
            ) from None
        if len(self._next) >= MEMO_SIZE:
            self._next.clear()
        self._next[moment] = found
        return found

    def previous_before(self, moment: datetime) -> datetime:
        """The last nominal time strictly before ``moment``, in UTC."""
        self._cron.set_current(moment.astimezone(self.zone), force=True)
        return self._cron.get_prev(datetime).astimezone(UTC)

    def times(self, first: datetime, until: datetime, limit: int) -> Iterator[datetime]:
        """Nominal times from ``first`` (included when it matches) up to ``until`` (included), at most ``limit``."""
        moment = self.next_after(first - timedelta(microseconds=1))
        count = 0
        while moment <= until and count < limit:
            yield moment
            count += 1
            moment = self.next_after(moment)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` nominal times after ``after``."""
        result = []
        moment = after
        for _ in range(count):
            moment = self.next_after(moment)
            result.append(moment)
        return result


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; InvalidInput naming the field ``timezone`` when there is none such."""
    if isinstance(name, str) and 0 < len(name) <= MAX_TIMEZONE_LENGTH and "\x00" not in name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    shown = str(name)[:MAX_TIMEZONE_LENGTH]
    raise InvalidInput(f"timezone: {shown!r} is not a known time zone; use an IANA name such as UTC or Europe/Paris")


def nominal_text(moment: datetime) -> str:
    """A nominal time as it appears in idempotency keys: UTC, ISO 8601, milliseconds only when there are some."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def fire_key(schedule: str, moment: datetime) -> str:
    """The idempotency key of a schedule's start for one nominal time: ``schedule:NAME:2026-12-03T10:00:00Z``."""
    return f"schedule:{schedule}:{nominal_text(moment)}"
