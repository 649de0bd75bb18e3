"""Schedules: start a workflow on a cron spec. Create, list, show, pause, resume, trigger, backfill and delete.

Every input is checked before anything is written, each refusal naming its field (``cron``, ``timezone``,
``workflow``, ``overlap``, ``catchup_window``, ``input``). What fires a schedule is
:class:`postgit.engine.scheduler.Scheduler`, in every worker and server process; a trigger and a backfill start their
instances here, with the idempotency key a fire at the same nominal time has (:func:`postgit.cron.fire_key`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from croniter.croniter import CroniterError

from postgit.cron import CronSpec, fire_key
from postgit.db.store import Row
from postgit.errors import Conflict, InvalidInput, NotFound
from postgit.service import WorkflowService, check_workflow_name
from postgit.starts import ItemError, Started, StartItem, encode_input

OVERLAP_POLICIES = ("skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all")
"""What a fire does while the instance the schedule started last has not finished (``skip`` by default)."""
DEFAULT_OVERLAP = "skip"
DEFAULT_CATCHUP_WINDOW = 3600.0
"""Seconds: a fire handled later than this after its nominal time (after an outage) is missed, not started."""
MIN_CATCHUP_WINDOW = 1.0
MAX_CATCHUP_WINDOW = 365 * 86400.0
MAX_BACKFILL_FIRES = 1_000
"""The most nominal times one backfill starts."""
UPCOMING_FIRES = 5
"""How many next fire times a schedule's detail lists."""
RECENT_FIRES = 20
"""How many fire records a schedule's detail lists, newest first."""
UNFINISHED = frozenset({"pending", "running", "waiting"})


def check_schedule_name(name: Any) -> None:
    """InvalidInput unless ``name`` is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    try:
        check_workflow_name(name)
    except InvalidInput as exc:
        raise InvalidInput(str(exc).replace("invalid workflow name", "invalid schedule name")) from None


def check_overlap(overlap: Any) -> str:
    """``overlap`` when it is one of :data:`OVERLAP_POLICIES`; InvalidInput naming the field otherwise."""
    if overlap not in OVERLAP_POLICIES:
        raise InvalidInput(f"overlap: {str(overlap)[:40]!r} is not one of {', '.join(OVERLAP_POLICIES)}")
    return str(overlap)


def check_catchup_window(seconds: Any) -> float:
    """``seconds`` as a float when it is a catch-up window (1 s to 365 days); InvalidInput naming the field."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or not MIN_CATCHUP_WINDOW <= seconds <= MAX_CATCHUP_WINDOW
    ):
        raise InvalidInput(
            f"catchup_window: {seconds!r} must be from {MIN_CATCHUP_WINDOW:g} second to "
            f"{int(MAX_CATCHUP_WINDOW):,} seconds (365 days)"
        )
    return float(seconds)


class ScheduleService:
    """What the API does with schedules, on top of a :class:`WorkflowService` (whose start path fires use)."""

    def __init__(self, service: WorkflowService):
        self.service = service
        self.store = service.store

    async def create(
        self,
        name: str,
        *,
        workflow: str,
        cron: str,
        timezone: str = "UTC",
        input: Any = None,
        overlap: str = DEFAULT_OVERLAP,
        catchup_window: float = DEFAULT_CATCHUP_WINDOW,
        paused: bool = False,
    ) -> Row:
        """Create a schedule; its detail. InvalidInput naming the field, Conflict when the name is taken."""
        check_schedule_name(name)
        overlap = check_overlap(overlap)
        catchup_window = check_catchup_window(catchup_window)
        spec = CronSpec.parse(cron, timezone)
        try:
            check_workflow_name(workflow)
        except InvalidInput as exc:
            raise InvalidInput(f"workflow: {exc}") from None
        try:
            deployed = await self.service.deployed(workflow)
        except NotFound:
            raise InvalidInput(f"workflow: '{workflow}' is not deployed; deploy it first") from None
        encoded = encode_input(input)
        if isinstance(encoded, ItemError):
            raise InvalidInput(str(encoded))
        problem = deployed.check_input(input)
        if problem is not None:
            raise InvalidInput(str(problem))
        created = await self.store.insert_schedule(
            {
                "name": name,
                "workflow": workflow,
                "cron": spec.expression,
                "timezone": timezone,
                "input": input,
                "overlap": overlap,
                "catchup_window": catchup_window,
                "paused": paused,
                "next_fire_at": spec.next_after(datetime.now(UTC)),
            }
        )
        if not created:
            raise Conflict(f"schedule '{name}' already exists; remove it first (pst schedule rm {name})")
        return await self.get(name)

    async def list(self) -> list[Row]:
        """Every schedule by name, each with ``next_fire_at`` (null while paused)."""
        rows = await self.store.list_schedules()
        return [_shown(row) for row in rows]

    async def get(self, name: str) -> Row:
        """One schedule with its next fire times (``upcoming``) and its latest fire records (``fires``)."""
        row = await self._row(name)
        shown = _shown(row)
        upcoming: list[datetime] = []
        if not row["paused"]:
            spec = CronSpec.parse(row["cron"], row["timezone"])
            first = row["next_fire_at"]
            upcoming = [first, *spec.upcoming(first, UPCOMING_FIRES - 1)]
        shown["upcoming"] = upcoming
        shown["fires"] = await self.store.list_schedule_fires(name, RECENT_FIRES)
        return shown

    async def pause(self, name: str) -> Row:
        """Stop firing; a paused schedule can still be triggered and backfilled."""
        check_schedule_name(name)
        if not await self.store.set_schedule_paused(name, True, None):
            raise _not_found(name)
        return await self.get(name)

    async def resume(self, name: str) -> Row:
        """Fire again from the next nominal time after now: the times passed while paused are not fired."""
        row = await self._row(name)
        if row["paused"]:
            spec = CronSpec.parse(row["cron"], row["timezone"])
            if not await self.store.set_schedule_paused(name, False, spec.next_after(datetime.now(UTC))):
                raise _not_found(name)
        return await self.get(name)

    async def delete(self, name: str) -> None:
        """Delete a schedule and its fire records; the instances it started are left alone."""
        check_schedule_name(name)
        if not await self.store.delete_schedule(name):
            raise _not_found(name)

    async def trigger(self, name: str) -> Row:
        """Start an instance now, whatever the overlap policy, even while paused.

        Returns ``{"schedule", "nominal_time", "id", "status", "created"}``.
        """
        check_schedule_name(name)
        row = await self.store.get_schedule_now(name)
        if row is None:
            raise _not_found(name)
        now: datetime = row["now"]
        nominal = now.replace(microsecond=now.microsecond // 1000 * 1000)
        started, created = await self.service.start(
            row["workflow"], row["input"], idempotency_key=fire_key(name, nominal)
        )
        await self.store.record_schedule_fires(
            [{"name": name, "next_fire_at": None, "buffered": None, "last_instance_id": started["id"]}],
            [fire_record(name, nominal, "trigger", "started", started["id"])],
        )
        return {"schedule": name, "nominal_time": nominal, "created": created, **started}

    async def backfill(self, name: str, start: datetime, end: datetime) -> Row:
        """Start one instance per nominal time from ``start`` to ``end``, both included.

        At most :data:`MAX_BACKFILL_FIRES`, whatever the overlap policy; a time fired before keeps its instance.
        Returns ``{"schedule", "fires", "started", "existing", "failed", "errors"}``.
        """
        check_schedule_name(name)
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidInput("from, to: give a time zone offset (e.g. 2026-12-01T00:00:00Z)")
        if end < start:
            raise InvalidInput("to: is before from")
        row = await self.store.get_schedule_now(name)
        if row is None:
            raise _not_found(name)
        if end > row["now"]:
            raise InvalidInput("to: is in the future; a backfill covers times that have passed")
        spec = CronSpec.parse(row["cron"], row["timezone"])
        try:
            times = list(spec.times(start, end, MAX_BACKFILL_FIRES + 1))
        except (OverflowError, ValueError, CroniterError) as exc:
            raise InvalidInput(f"from, to: cannot compute the fire times in this range ({exc})") from None
        if len(times) > MAX_BACKFILL_FIRES:
            raise InvalidInput(
                f"from, to: the range holds more than {MAX_BACKFILL_FIRES:,} fire times; backfill it in parts"
            )
        result: Row = {"schedule": name, "fires": len(times), "started": 0, "existing": 0, "failed": 0}
        errors: list[str] = []
        if not times:
            return {**result, "errors": errors}
        items = [StartItem(row["input"], fire_key(name, moment)) for moment in times]
        outcomes = await self.service.start_many(row["workflow"], items)
        records = []
        last_id = None
        for moment, outcome in zip(times, outcomes, strict=True):
            if isinstance(outcome, Started):
                result["started" if outcome.created else "existing"] += 1
                records.append(fire_record(name, moment, "backfill", "started", outcome.id))
                last_id = outcome.id
            else:
                result["failed"] += 1
                errors.append(f"{moment.isoformat()}: {outcome}")
                records.append(fire_record(name, moment, "backfill", "failed", None, str(outcome)))
        await self.store.record_schedule_fires(
            [{"name": name, "next_fire_at": None, "buffered": None, "last_instance_id": last_id}], records
        )
        return {**result, "errors": errors[:10]}

    async def _row(self, name: str) -> Row:
        check_schedule_name(name)
        row = await self.store.get_schedule(name)
        if row is None:
            raise _not_found(name)
        return row


def _not_found(name: str) -> NotFound:
    return NotFound(f"schedule '{name}' does not exist")


def _shown(row: Row) -> Row:
    """A schedule row as the API shows it: no next fire time while paused, the buffer as ``buffered``."""
    shown = dict(row)
    if shown["paused"]:
        shown["next_fire_at"] = None
    shown["buffered"] = list(shown.get("buffered") or [])
    return shown


def fire_record(
    schedule: str,
    nominal: datetime,
    kind: str,
    outcome: str,
    instance_id: Any,
    detail: str | None = None,
    *,
    last: datetime | None = None,
    fires: int = 1,
) -> dict[str, Any]:
    """One fire record, as ``record_schedule_fires`` takes it."""
    return {
        "schedule": schedule,
        "nominal_at": nominal.isoformat(),
        "last_nominal_at": (last or nominal).isoformat(),
        "fires": fires,
        "kind": kind,
        "outcome": outcome,
        "instance_id": str(instance_id) if instance_id is not None else None,
        "detail": detail,
    }
