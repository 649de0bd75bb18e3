"""The scheduler: fires due schedules, in every worker and server process, each nominal time exactly once.

A pass claims the due schedule rows (``FOR UPDATE SKIP LOCKED``, then ``claimed_until`` for
:data:`CLAIM_SECONDS`: another process's pass skips them), decides each due nominal time by the catch-up window
and the overlap policy, starts instances through :meth:`WorkflowService.start` (input checks, idempotency: the key
is the schedule and the nominal time), then records the fires and the next nominal time and ends the claim in one
statement. No transaction stays open while instances start, so a process needs no second connection to fire. If
the process dies between a start and that record, its claim lapses and a later pass handles the same nominal times
again, finding their instances by key: a nominal time never starts two instances.

Between passes the loop sleeps until the soonest schedule is due by the database's clock (so hosts whose clocks
disagree still fire on time), and at most ``poll_seconds``, to notice new schedules and finished instances that
buffered fires wait for. A pass begins :data:`AHEAD_SECONDS` early: it claims, plans and looks up what is due by
then and checks each start, which is written at its nominal time (a cancellation of ``cancel_other`` waits for it
too), so that the start is not late by the pass's own round trips and Python. A pass that holds an overdue
schedule (catching up) looks no further than now: what it starts is recorded at once, not after a wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from postgit.cron import CronSpec, fire_key
from postgit.db.store import Row
from postgit.errors import Conflict, InvalidInput, NotFound, PostgitError
from postgit.schedules import UNFINISHED, fire_record
from postgit.service import WorkflowService

log = logging.getLogger("postgit.scheduler")

CLAIM_SECONDS = 10.0
"""How long a pass holds its schedules: long enough for any pass, short enough for a dead process's to lapse."""
PASS_SCHEDULES = 100
"""Schedules one pass locks and fires at most; more due are taken by the next pass at once."""
PASS_FIRES = 1_000
"""Nominal times of one schedule one pass handles at most (a long outage is caught up over several passes)."""
MAX_COUNTED_MISSED = 10_000
"""Missed nominal times are counted up to this many for their record (past it, the record says 'at least')."""
MAX_BUFFERED = 1_000
"""Fires ``buffer_all`` keeps waiting at most; later ones are skipped."""
FIRE_HISTORY = 1_000
"""Fire records kept per schedule; older ones are deleted about once a minute."""
PRUNE_INTERVAL = 60.0
MAX_CACHED_SPECS = 10_000
"""Parsed cron specs a scheduler keeps (one per distinct expression and time zone)."""
AHEAD_SECONDS = 0.2
"""How long before a nominal time a pass claims its schedule and prepares the start (which waits for the time)."""
MIN_WAIT = 0.01
STOP_GRACE = 5.0
"""Seconds a pass under way may take to record what it started when the process stops."""


@dataclass
class Plan:
    """What is due for one schedule in one pass: a missed range, the nominal times to fire, the next time."""

    missed: list[datetime] = field(default_factory=list)
    """The first and last missed nominal time (empty when none)."""
    missed_count: int = 0
    due: list[datetime] = field(default_factory=list)
    next_fire_at: datetime | None = None


def plan(row: Row, spec: CronSpec, now: datetime) -> Plan:
    """The nominal times of ``row`` due at ``now``: those older than the catch-up window are missed."""
    result = Plan()
    first: datetime = row["next_fire_at"]
    if first > now:
        return result
    window_start = now - timedelta(seconds=row["catchup_window"])
    if first < window_start:
        result.missed_count = sum(
            1 for _ in spec.times(first, window_start - timedelta(microseconds=1), MAX_COUNTED_MISSED)
        )
        result.missed = [first, spec.previous_before(window_start)]
        first = window_start
    result.due = list(spec.times(first, now, PASS_FIRES))
    last = result.due[-1] if result.due else window_start - timedelta(microseconds=1)
    result.next_fire_at = spec.next_after(last)
    return result


class Scheduler:
    """Fires due schedules until cancelled (a side task of workers and servers)."""

    def __init__(self, service: WorkflowService, *, poll_seconds: float = 1.0):
        self.service = service
        self.store = service.store
        self.poll_seconds = poll_seconds
        self._failing = False
        self._pruned_at = time.monotonic()
        self._specs: dict[tuple[str, str], CronSpec] = {}

    async def run(self) -> None:
        while True:
            wait: float | None = self.poll_seconds
            try:
                handled = await self._pass()
                if self._failing:
                    log.info("schedules: firing again")
                    self._failing = False
                if handled >= PASS_SCHEDULES and not _cancelling():
                    continue
                wait = await self.store.next_schedule_wait()
                if wait is not None:
                    wait -= AHEAD_SECONDS
                await self._prune()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away, most likely: a later pass fires what is due
                if _cancelling():  # an error in answer to the cancellation
                    raise asyncio.CancelledError from exc
                if not self._failing:
                    log.warning("schedules: a firing pass failed (%s); retrying", exc)
                    self._failing = True
            if _cancelling():  # a cancellation that a library call swallowed (asyncio.wait_for can, in 3.11)
                raise asyncio.CancelledError
            delay = self.poll_seconds if wait is None else min(self.poll_seconds, max(MIN_WAIT, wait))
            await asyncio.sleep(delay)

    async def _pass(self) -> int:
        """:meth:`fire_due`, which a cancellation (the process stops) lets record what it started, within a grace."""
        task = asyncio.ensure_future(self.fire_due())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, STOP_GRACE)
            raise

    async def _load_workflows(self, names: set[str]) -> None:
        """Read the definitions the starts will use before their time comes (a start then reads none)."""
        for name in names:
            with contextlib.suppress(PostgitError):  # the start says why it cannot start, in its fire record
                await self.service.deployed(name)

    def _spec(self, expression: str, timezone: str) -> CronSpec:
        """The parsed spec of a cron and time zone, parsed once per process (parsing costs more than firing)."""
        key = (expression, timezone)
        spec = self._specs.get(key)
        if spec is None:
            if len(self._specs) >= MAX_CACHED_SPECS:
                self._specs.clear()
            spec = self._specs[key] = CronSpec.parse(expression, timezone)
        return spec

    async def _prune(self) -> None:
        if time.monotonic() - self._pruned_at >= PRUNE_INTERVAL:
            self._pruned_at = time.monotonic()
            await self.store.prune_schedule_fires(FIRE_HISTORY)

    async def fire_due(self) -> int:
        """One pass: claim the due schedules, fire them, record it; how many schedules it handled."""
        rows = await self.store.claim_due_schedules(PASS_SCHEDULES, CLAIM_SECONDS, AHEAD_SECONDS)
        if not rows:
            return 0
        try:
            await self._fire(rows, *await self.store.database_clock())
        except BaseException:
            with contextlib.suppress(Exception):
                await self.store.release_schedule_claims([row["name"] for row in rows])
            raise
        return len(rows)

    async def _fire(self, rows: list[Row], database_now: datetime, monotonic_now: float) -> None:
        """Fire ``rows``; the database's clock read ``database_now`` at ``monotonic_now`` (``time.monotonic()``).

        Nominal times are waited for by the monotonic clock mapped from the database's, which every process firing
        schedules shares. The clock is read after the claim: a row's ``now`` is its statement's start, and a claim
        that took long would make every start of the pass as late.
        """
        planned: list[tuple[Row, Plan]] = []
        schedules: list[dict[str, Any]] = []
        fires: list[dict[str, Any]] = []
        # only a pass of schedules still to come plans ahead: one that catches up records its starts without a wait
        ahead = timedelta(seconds=AHEAD_SECONDS if all(row["next_fire_at"] > row["now"] for row in rows) else 0)
        for row in rows:
            try:
                planned.append((row, plan(row, self._spec(row["cron"], row["timezone"]), row["now"] + ahead)))
            except InvalidInput as exc:  # stored before this croniter refused it: try again in an hour
                log.warning("schedule %s: cannot compute its fire times: %s", row["name"], exc)
                retry_at = row["now"] + timedelta(hours=1)
                schedules.append({"name": row["name"], "next_fire_at": retry_at.isoformat(), "release": True})
                fires.append(fire_record(row["name"], row["next_fire_at"], "scheduled", "failed", None, str(exc)))
        keys = [fire_key(row["name"], moment) for row, due in planned for moment in due.due]
        existing = {found["idempotency_key"]: found for found in await self.store.instances_by_keys(keys)}
        await self._load_workflows({row["workflow"] for row, due in planned if due.due or row["buffered"]})

        def at(moment: datetime) -> float:
            """The monotonic time of ``moment`` by the database's clock."""
            return monotonic_now + (moment - database_now).total_seconds()

        results = await asyncio.gather(*(_Firing(self.service, row, due, existing, at).run() for row, due in planned))
        schedules += [change for change, _ in results]
        fires += [record for _, records in results for record in records]
        await self.store.record_schedule_fires(schedules, fires)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _Firing:
    """One schedule's share of a pass: buffered fires whose turn came, then the due nominal times in order."""

    def __init__(
        self,
        service: WorkflowService,
        row: Row,
        plan: Plan,
        existing: dict[str, Row],
        at: Callable[[datetime], float],
    ):
        self.service = service
        self.at = at
        self.row = row
        self.plan = plan
        self.existing = existing
        self.name: str = row["name"]
        self.policy: str = row["overlap"]
        self.last_id: uuid.UUID | None = row["last_instance_id"]
        self.busy = row["last_instance_status"] in UNFINISHED
        self.buffered: list[datetime] = list(row["buffered"] or [])
        self.records: list[dict[str, Any]] = []
        self._skipped: list[datetime] = []
        self._skip_reason = ""

    async def run(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if self.buffered and not self.busy:
            await self._start(self.buffered.pop(0), "a buffered fire, started once the previous instance finished")
        if self.plan.missed:
            first, last = self.plan.missed
            count = self.plan.missed_count
            counted = f"at least {count}" if count >= MAX_COUNTED_MISSED else str(count)
            window = f"{self.row['catchup_window']:g}s"
            self.records.append(
                fire_record(
                    self.name,
                    first,
                    "scheduled",
                    "missed",
                    None,
                    f"{counted} fire(s) older than the catch-up window ({window}) when handled",
                    last=last,
                    fires=min(count, MAX_COUNTED_MISSED),
                )
            )
        for index, moment in enumerate(self.plan.due):
            await self._fire(moment, later=index < len(self.plan.due) - 1)
        self._flush_skipped()
        change = {
            "name": self.name,
            "next_fire_at": self.plan.next_fire_at.isoformat() if self.plan.next_fire_at else None,
            "buffered": [moment.isoformat() for moment in self.buffered],
            "last_instance_id": str(self.last_id) if self.last_id else None,
            "release": True,
        }
        return change, self.records

    async def _fire(self, moment: datetime, *, later: bool) -> None:
        found = self.existing.get(fire_key(self.name, moment))
        if found is not None:  # started by an earlier pass that did not get to record it, or by a backfill
            self._flush_skipped()
            self._started(moment, found["id"], found["status"], "started before")
            return
        policy = self.policy
        if policy in ("cancel_other", "terminate_other"):
            if later:
                self._skip(moment, "a later fire was due in the same pass (cancel_other keeps the latest)")
                return
            if self.busy and self.last_id is not None:
                await self._until(moment)
                cancelled = await self._cancel(self.last_id)
                verb = "terminated" if policy == "terminate_other" else "cancelled"
                await self._start(moment, f"{verb} the previous instance {self.last_id}" if cancelled else None)
                return
            await self._start(moment)
            return
        if policy == "allow_all" or not self.busy:
            await self._start(moment)
        elif policy == "skip":
            self._skip(moment, "the previous instance was still running (overlap: skip)")
        elif len(self.buffered) < (1 if policy == "buffer_one" else MAX_BUFFERED):
            self._buffer(moment)
        else:
            self._skip(moment, f"the buffer was full (overlap: {policy})")

    async def _until(self, moment: datetime) -> None:
        """Wait for ``moment`` (a pass claims its schedules ahead of their time)."""
        await self.service.deadlines.until(self.at(moment))

    async def _start(self, moment: datetime, detail: str | None = None) -> None:
        self._flush_skipped()
        try:
            # checked and encoded now, written at its time
            started, _ = await self.service.start(
                self.row["workflow"],
                self.row["input"],
                idempotency_key=fire_key(self.name, moment),
                not_before=self.at(moment),
            )
        except (InvalidInput, NotFound, Conflict) as exc:
            self.records.append(fire_record(self.name, moment, "scheduled", "failed", None, str(exc)))
            log.warning("schedule %s: the start for %s was refused: %s", self.name, moment.isoformat(), exc)
            return
        self._started(moment, started["id"], started["status"], detail)

    def _started(self, moment: datetime, instance_id: uuid.UUID, status: str, detail: str | None) -> None:
        self.last_id = instance_id
        self.busy = status in UNFINISHED
        self.records.append(fire_record(self.name, moment, "scheduled", "started", instance_id, detail))

    async def _cancel(self, instance_id: uuid.UUID) -> bool:
        try:
            await self.service.cancel(instance_id)
        except (Conflict, NotFound):
            return False  # it finished meanwhile
        except PostgitError as exc:
            log.warning("schedule %s: cancelling instance %s failed: %s", self.name, instance_id, exc)
            return False
        return True

    def _buffer(self, moment: datetime) -> None:
        self._flush_skipped()
        self.buffered.append(moment)
        self.records.append(
            fire_record(
                self.name, moment, "scheduled", "buffered", None, f"waits for the previous instance ({self.policy})"
            )
        )

    def _skip(self, moment: datetime, reason: str) -> None:
        if self._skipped and reason != self._skip_reason:
            self._flush_skipped()
        self._skipped.append(moment)
        self._skip_reason = reason

    def _flush_skipped(self) -> None:
        """One record for a run of consecutive skipped nominal times."""
        if not self._skipped:
            return
        first, last, count = self._skipped[0], self._skipped[-1], len(self._skipped)
        self.records.append(
            fire_record(self.name, first, "scheduled", "skipped", None, self._skip_reason, last=last, fires=count)
        )
        self._skipped = []
