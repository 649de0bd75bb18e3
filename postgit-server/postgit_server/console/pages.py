"""The console's pages: workflows, instances, one instance (live), workers, plugins, the outbox, and actions.

Every page reads through the same service and store methods as the API (one query per list page); every action
calls the API itself (:mod:`postgit_server.console.actions`). Bad input is a page with a one-line error and a 4xx.

Live parts (an instance's page, the first page of the instance list) are long polls: the page asks for its live
part again with ``wait``, and the server answers when the server process's one change listener
(:class:`~postgit.engine.changes.ChangeHub`) hears that what the part shows changed, or after ``wait`` seconds; the
page then asks again at once. No watcher polls the database while nothing changes; a change notification that is
lost delays an update until the next long poll starts (:data:`LONG_POLL_SECONDS`) and looks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from postgit.db.store import COUNT_CAP
from postgit.engine.changes import ChangeWatch
from postgit.errors import NotFound, PostgitError
from postgit.service import LIVE_WORKER_SECONDS, check_workflow_name, parse_instance_id
from postgit_server.audit import record_console_refusal
from postgit_server.console.access import CsrfRefused, Session
from postgit_server.console.actions import INSTANCE_ACTIONS, call_api, find_action
from postgit_server.console.forms import RAW_FIELD, form_fields, input_schema, read_input
from postgit_server.console.session import console_session, page
from postgit_server.console.timeline import build_timeline
from postgit_server.console.tree import definition_tree
from postgit_server.errors import status_for
from postgit_server.models import InstanceStatus
from postgit_server.roles import Role

router = APIRouter(prefix="/ui", include_in_schema=False)
CurrentSession = Annotated[Session, Depends(console_session)]

START_ROLE = Role.operator
"""The least role that may start an instance (the API's ``start_instance`` needs the same)."""
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
STEPS_SHOWN = 5_000
INSTANCE_PANELS = ["_timeline.html", "_steps.html", "_state.html", "_children.html"]
"""The panels of the instance page, in order, each a template given the instance: append one to add a panel."""
STEP_PANELS: list[str] = ["_step_logs.html"]
"""Templates shown inside each step attempt of the instance page (given ``step``), after its params, output, error."""
LONG_POLL_SECONDS = 25
"""How long a page's live part waits for a change before it asks again (under the usual proxy timeouts of 30 s+)."""
MAX_WAIT_SECONDS = 30
RECHECK_SECONDS = 0.2
"""The shortest time between two looks of one live part at the database, however often changes are announced."""
LIST_SETTLE_SECONDS = 1.0
"""How long a list's live part lets changes gather after the first one before it renders them."""


class PageError(Exception):
    """Bad input on a page: shown as a one-line error with this HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def error_page(request: Request, session: Session | None, message: str, status: int) -> Response:
    """A page saying what went wrong, in one line."""
    return page(request, session, "error.html", {"message": message}, status=status)


def failure_page(request: Request, session: Session | None, exc: PageError | PostgitError) -> Response:
    """The error page for bad input on a page, or for an error of the engine (with the API's status for it)."""
    return error_page(request, session, str(exc), exc.status if isinstance(exc, PageError) else status_for(exc))


# -- workflows ---------------------------------------------------------------------------------------------------


@router.get("/workflows")
async def workflows_page(request: Request, session: CurrentSession) -> Response:
    """Every workflow with its latest version."""
    rows = await request.app.state.service.store.list_workflows()
    return page(request, session, "workflows.html", {"workflows": rows})


@router.get("/workflows/{name}")
async def workflow_page(
    request: Request, session: CurrentSession, name: str, version: Annotated[str | None, Query()] = None
) -> Response:
    """One workflow version: its definition as a tree, its versions, a start form, its recent instances."""
    service = request.app.state.service
    try:
        check_workflow_name(name)
        chosen = _whole_number(version, "version") if version else None
        row = await service.get_workflow(name, chosen)
    except (PageError, PostgitError) as exc:
        return failure_page(request, session, exc)
    versions = await service.store.list_workflow_versions(name)
    counts, recent = await service.store.find_instances(workflow=name, limit=10)
    definition = row["definition"]
    schema = input_schema(definition)
    return page(
        request,
        session,
        "workflow.html",
        {
            "workflow": row,
            "versions": versions,
            "tree": definition_tree(definition),
            "schema": schema,
            "fields": form_fields(schema),
            "raw_field": RAW_FIELD,
            "counts": {status: _count(n, counts.partial) for status, n in counts.items()},
            "recent": recent,
            "start_role": START_ROLE,
        },
    )


@router.post("/workflows/{name}/start")
async def start_from_form(request: Request, session: CurrentSession, name: str) -> Response:
    """Start an instance from the start form, then show it."""
    form = await request.form()
    service = request.app.state.service
    try:
        _check_csrf(request, session, form)
        await _require(request, session, START_ROLE, "POST", f"/workflows/{quote(name, safe='')}/instances")
        check_workflow_name(name)
        version = _whole_number(str(form.get("version") or ""), "version") if form.get("version") else None
        row = await service.get_workflow(name, version)
        schema = input_schema(row["definition"])
        body: dict[str, Any] = {"input": read_input(form_fields(schema), _strings(form)), "version": row["version"]}
        key = str(form.get("idempotency_key") or "").strip()
        if key:
            body["idempotency_key"] = key
    except (PageError, PostgitError) as exc:
        return failure_page(request, session, exc)
    answer = await call_api(request.app, session, "POST", f"/workflows/{quote(name, safe='')}/instances", body)
    if not answer.ok:
        return error_page(request, session, answer.error, answer.status)
    return RedirectResponse(f"/ui/instances/{answer.body['id']}", status_code=303)


# -- instances ---------------------------------------------------------------------------------------------------


@router.get("/instances")
async def instances_page(request: Request, session: CurrentSession) -> Response:
    """Instances newest first: filters, counts per status, a page at a time (keyset); the first page is live."""
    try:
        context = await _instances_context(request)
    except (PageError, PostgitError) as exc:
        return failure_page(request, session, exc)
    return page(request, session, "instances.html", context)


@router.get("/instances/live")
async def instances_live(request: Request, session: CurrentSession) -> Response:
    """The first page's counts and rows once they differ from ``seen`` (the page's version of them).

    As an instance's live part: at once without ``wait`` (204 when nothing changed); with ``wait``, a long poll
    that looks again each time any instance changes, letting changes gather for :data:`LIST_SETTLE_SECONDS` first.
    """
    seen = request.query_params.get("seen")
    try:
        waiting = _wait_seconds(request.query_params.get("wait"))
        hub = request.app.state.changes
        loop = asyncio.get_running_loop()
        deadline = loop.time() + waiting
        with hub.watch() as watch:
            while True:
                context = await _instances_context(request)
                if seen is None or seen != context["seen"]:
                    break
                remaining = deadline - loop.time()
                if remaining <= 0 or hub.closed:
                    return Response(status_code=204)
                if await watch.wait(remaining):
                    if hub.closed:
                        return Response(status_code=204)
                    await asyncio.sleep(max(0.0, min(LIST_SETTLE_SECONDS, deadline - loop.time())))
                elif loop.time() >= deadline:
                    return Response(status_code=204)
    except (PageError, PostgitError) as exc:
        return failure_page(request, session, exc)
    return page(request, session, "_instances_live.html", context)


async def _instances_context(request: Request) -> dict[str, Any]:
    params = request.query_params
    filters = _instance_filters(params)
    limit = _whole_number(params.get("limit") or str(PAGE_SIZE), "limit", most=MAX_PAGE_SIZE)
    after = _keyset(params.get("after"))
    store = request.app.state.service.store
    counts, rows = await store.find_instances(**filters, after=after, limit=limit + 1, count_cap=COUNT_CAP)
    more = len(rows) > limit
    rows = rows[:limit]
    kept = {key: value for key, value in params.items() if key not in ("after", "wait", "seen") and value}
    next_url = None
    if more:
        last = rows[-1]
        next_url = "/ui/instances?" + urlencode({**kept, "after": f"{last['created_at'].isoformat()}~{last['id']}"})
    status_links = {
        status.value: "/ui/instances?" + urlencode({**_without(kept, "status"), "status": status})
        for status in InstanceStatus
    }
    capped = counts.partial or any(count > COUNT_CAP for count in counts.values())
    seen = _list_tag(rows, counts, next_url)
    return {
        "instances": rows,
        "counts": {status: _count(n, counts.partial) for status, n in counts.items()},
        "total": _count(sum(min(n, COUNT_CAP) for n in counts.values()), capped),
        "count_cap": COUNT_CAP,
        "capped": capped,
        "partial": counts.partial,
        "statuses": [status.value for status in InstanceStatus],
        "status_links": status_links,
        "all_link": "/ui/instances?" + urlencode(_without(kept, "status")),
        "filters": params,
        "next_url": next_url,
        "first_url": "/ui/instances?" + urlencode(kept) if after else None,
        "seen": seen,
        "live_url": None
        if after
        else "/ui/instances/live?" + urlencode({**kept, "seen": seen, "wait": LONG_POLL_SECONDS}),
    }


def _list_tag(rows: list[dict[str, Any]], counts: Mapping[str, int], next_url: str | None) -> str:
    """What changes whenever a list page's live part would: its rows' versions, the counts, the next page."""
    shown = [(str(row["id"]), row["status"], row["updated_at"].isoformat()) for row in rows]
    text = json.dumps([shown, sorted(counts.items()), next_url])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _count(n: int, more: bool = False) -> str:
    """A count as the page shows it: ``1,234``, or ``10,000+`` past :data:`~postgit.db.store.COUNT_CAP`."""
    if n > COUNT_CAP:
        return f"{COUNT_CAP:,}+"
    return f"{n:,}+" if more else f"{n:,}"


@router.get("/instances/{instance_id}")
async def instance_page(request: Request, session: CurrentSession, instance_id: str) -> Response:
    """One instance: actions, status and why it waits, then its panels (timeline, steps, state, children)."""
    try:
        context = await _instance_context(request, instance_id)
    except PostgitError as exc:
        return failure_page(request, session, exc)
    instance = context["instance"]
    paused = instance.get("paused_at") is not None
    context["actions"] = [a for a in INSTANCE_ACTIONS if a.offered(request.app, instance["status"], paused)]
    context["done"] = request.query_params.get("done")
    return page(request, session, "instance.html", context)


@router.get("/instances/{instance_id}/live")
async def instance_live(
    request: Request,
    session: CurrentSession,
    instance_id: str,
    seen: Annotated[str | None, Query()] = None,
    wait: Annotated[str | None, Query()] = None,
) -> Response:
    """The instance's live part once it differs from ``seen`` (the page's version of it).

    Without ``wait`` the answer is immediate: 204 (htmx swaps nothing) when nothing changed. With ``wait``, a long
    poll: the answer comes as soon as the instance changes, or is 204 after ``wait`` seconds without a change.
    """
    try:
        waiting = _wait_seconds(wait)
        parsed = parse_instance_id(instance_id)
        with request.app.state.changes.watch(parsed) as watch:
            changed = await _until_changed(request, parsed, seen, waiting, watch)
        if not changed:
            return Response(status_code=204)
        context = await _instance_context(request, instance_id)
    except (PageError, PostgitError) as exc:
        return failure_page(request, session, exc)
    return page(request, session, "_instance_live.html", context)


async def _until_changed(
    request: Request, instance_id: uuid.UUID, seen: str | None, waiting: float, watch: ChangeWatch
) -> bool:
    """Whether the instance's version differs from ``seen``, within ``waiting`` seconds.

    It looks again each time ``watch`` hears of a change, at most every :data:`RECHECK_SECONDS`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + waiting
    store = request.app.state.service.store
    while True:
        looked = loop.time()
        row = await store.get_instance(instance_id)
        if row is None:
            raise NotFound(f"instance {instance_id} does not exist")
        if seen is None or seen != _version_tag(row):
            return True
        remaining = deadline - loop.time()
        if remaining <= 0 or request.app.state.changes.closed:
            return False
        if await watch.wait(remaining):
            await asyncio.sleep(max(0.0, min(looked + RECHECK_SECONDS, deadline) - loop.time()))
        elif loop.time() >= deadline:
            return False  # nothing heard (a wait cut short while the hub cannot listen looks again)


@router.post("/instances/{instance_id}/do/{action_name}")
async def instance_action(request: Request, session: CurrentSession, instance_id: str, action_name: str) -> Response:
    """Run an action: the first submission shows the confirmation, the confirmed one calls the API."""
    form = _strings(await request.form())
    action = find_action(action_name)
    try:
        _check_csrf(request, session, form)
        if action is None:
            raise PageError(f"no action '{action_name}' on instances", 404)
        parsed = parse_instance_id(instance_id)
        await _require(request, session, action.role, "POST", action.route.format(instance_id=parsed))
        body = action.body(form)
    except (PageError, PostgitError) as exc:
        return failure_page(request, session, exc)
    if form.get("confirmed") != "yes":
        shown = {field.label: form.get(field.name, "") for field in action.fields}
        return page(
            request,
            session,
            "confirm.html",
            {"action": action, "instance_id": parsed, "question": action.question.format(id=parsed), "form": form,
             "shown": shown},
        )  # fmt: skip
    answer = await call_api(request.app, session, "POST", action.route.format(instance_id=parsed), body)
    if not answer.ok:
        return error_page(request, session, f"{action.label} {parsed}: {answer.error}", answer.status)
    return RedirectResponse(f"/ui/instances/{parsed}?" + urlencode({"done": action.done}), status_code=303)


# -- workers, plugins, outbox ------------------------------------------------------------------------------------


@router.get("/workers")
async def workers_page(request: Request, session: CurrentSession) -> Response:
    """The live workers: heartbeat, node types, instances in flight."""
    rows = await request.app.state.service.store.list_live_workers_in_flight(LIVE_WORKER_SECONDS)
    return page(request, session, "workers.html", {"workers": rows, "within": LIVE_WORKER_SECONDS})


@router.get("/plugins")
async def plugins_page(request: Request, session: CurrentSession) -> Response:
    """Every node type: package, version, which workers have it at which version."""
    answer = await call_api(request.app, session, "GET", "/plugins")
    if not answer.ok:
        return error_page(request, session, answer.error, answer.status)
    return page(request, session, "plugins.html", {"plugins": answer.body})


@router.get("/outbox")
async def outbox_page(request: Request, session: CurrentSession) -> Response:
    """The mail outbox: parked, sent or all messages."""
    which = request.query_params.get("status") or "parked"
    if which not in ("parked", "sent", "all"):
        return error_page(request, session, f"status {which!r}: choose parked, sent or all", 400)
    rows = await request.app.state.service.store.list_outbox(200, which)
    return page(request, session, "outbox.html", {"messages": rows, "which": which})


# -- audit log ---------------------------------------------------------------------------------------------------


@router.get("/audit")
async def audit_page(request: Request, session: CurrentSession) -> Response:
    """The audit log newest first, a page at a time (keyset on the entry id), of one actor when asked."""
    params = request.query_params
    try:
        before = _whole_number(params.get("before"), "before", most=2**63 - 1) if params.get("before") else None
        actor = (params.get("actor") or "").strip() or None
        if actor is not None and (len(actor) > 64 or "\x00" in actor):
            raise PageError("actor: at most 64 characters, no NUL")
    except PageError as exc:
        return failure_page(request, session, exc)
    rows = await request.app.state.service.store.list_audit(limit=PAGE_SIZE + 1, before=before, actor=actor)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    kept = {"actor": actor} if actor else {}
    next_url = "/ui/audit?" + urlencode({**kept, "before": rows[-1]["id"]}) if more else None
    first_url = "/ui/audit?" + urlencode(kept) if before else None
    context = {"entries": rows, "actor": actor or "", "next_url": next_url, "first_url": first_url}
    return page(request, session, "audit.html", context)


# -- helpers -----------------------------------------------------------------------------------------------------


async def _instance_context(request: Request, instance_id: str) -> dict[str, Any]:
    service = request.app.state.service
    row = await service.get_instance(instance_id, steps_limit=STEPS_SHOWN, logs=True)
    definition = (await service.get_workflow(row["workflow"], row["version"]))["definition"]
    now = datetime.now(UTC)
    loop = request.query_params.get("loop") or None
    first_item = request.query_params.get("items") or "0"
    items_from = {loop: int(first_item)} if loop and first_item.isdigit() and len(first_item) < 10 else {}
    timeline = build_timeline(definition, row["steps"], row["created_at"], row["finished_at"], now, items_from)
    live = row["status"] in ("pending", "running", "waiting")
    return {
        "instance": row,
        "wait": LONG_POLL_SECONDS,
        "timeline": timeline,
        "panels": INSTANCE_PANELS,
        "step_panels": STEP_PANELS,
        "live": live,
        "seen": _version_tag(row),
        "open_loop": loop,
        "browse": urlencode({"loop": loop, "items": first_item}) if items_from else "",
        "steps_shown": STEPS_SHOWN,
    }


def _version_tag(row: Mapping[str, Any]) -> str:
    """What changes whenever the instance does (each commit updates it): the live part compares it."""
    return f"{row['status']}~{row['updated_at'].isoformat()}"


def _wait_seconds(raw: str | None) -> float:
    """How long a live part may wait for a change: ``wait``, 0 to :data:`MAX_WAIT_SECONDS` seconds (0: not at all)."""
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise PageError(f"wait: {raw[:40]!r} is not a number of seconds") from None
    if not 0 <= value <= MAX_WAIT_SECONDS:  # also refuses nan
        raise PageError(f"wait: {raw[:40]!r} must be between 0 and {MAX_WAIT_SECONDS} seconds")
    return value


def _instance_filters(params: Mapping[str, str]) -> dict[str, Any]:
    status = params.get("status") or None
    if status is not None and status not in {s.value for s in InstanceStatus}:
        raise PageError(f"status {status!r}: choose one of {', '.join(s.value for s in InstanceStatus)}")
    workflow = (params.get("workflow") or "").strip() or None
    if workflow is not None:
        check_workflow_name(workflow)
    raw_id = (params.get("id") or "").strip()
    key = (params.get("key") or "").strip() or None
    if key is not None and (len(key) > 200 or "\x00" in key):
        raise PageError("idempotency key: at most 200 characters, no NUL")
    return {
        "status": status,
        "workflow": workflow,
        "instance_id": _uuid(raw_id, "id") if raw_id else None,
        "idempotency_key": key,
        "created_from": _moment(params.get("from"), "from"),
        "created_to": _moment(params.get("to"), "to"),
    }


def _uuid(raw: str, where: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise PageError(f"{where}: {raw!r} is not an instance id (a UUID)") from None


def _moment(raw: str | None, where: str) -> datetime | None:
    """A time from a ``datetime-local`` field (or ISO 8601), taken as UTC when it names no zone."""
    if not raw or not raw.strip():
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise PageError(f"{where}: {raw!r} is not a date and time (YYYY-MM-DDTHH:MM)") from None
    if not 1 <= value.year <= 9999 or value.year in (1, 9999):
        raise PageError(f"{where}: {raw!r} is out of range")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _keyset(raw: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not raw:
        return None
    created, _, ident = raw.partition("~")
    try:
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except ValueError:
        raise PageError(f"after: {raw!r} is not a page cursor (follow the page's links)") from None


def _whole_number(raw: str | None, where: str, most: int = 2_147_483_647) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise PageError(f"{where}: {raw!r} is not a whole number") from None
    if not 1 <= value <= most:
        raise PageError(f"{where}: {value} must be between 1 and {most}")
    return value


def _without(params: Mapping[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in params.items() if key != name}


def _strings(form: Any) -> dict[str, str]:
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _check_csrf(request: Request, session: Session, form: Mapping[str, Any]) -> None:
    try:
        request.app.state.console.check_csrf(request, session, form.get("csrf"))
    except CsrfRefused as exc:
        raise PageError(str(exc), 403) from None


async def _require(request: Request, session: Session, role: Role, method: str, path: str) -> None:
    """Refuse (403) a session whose role is below ``role``; the audit log records the refusal of ``method path``."""
    if not session.allows(role):
        await record_console_refusal(request.app, actor=session.name, role=session.role, method=method, path=path)
        raise PageError(f"your role ({session.role}) may not do this: it needs the role {role}", 403)
