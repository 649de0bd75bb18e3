"""The audit log: who did what to what, when, and how the server answered."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from postgit_server.auth import VIEWER
from postgit_server.dependencies import Service
from postgit_server.models import AuditEntry, AuditPage

router = APIRouter(tags=["audit"])

MAX_ID = 2**63 - 1


@router.get("/audit", dependencies=[VIEWER], response_model=AuditPage)
async def list_audit(
    service: Service,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only entries older than this id (a page's `next_before`)")
    ] = None,
    actor: Annotated[
        str | None, Query(min_length=1, max_length=64, pattern=r"^[^\x00]*$", description="Only this token's")
    ] = None,
    action: Annotated[
        str | None,
        Query(min_length=1, max_length=64, pattern=r"^[^\x00]*$", description="Only this operation's (`deploy`)"),
    ] = None,
) -> AuditPage:
    """The audit log newest first, a page at a time.

    Every state-changing request is in it, whoever sent it and however it was answered (a refused one too).
    """
    rows = await service.store.list_audit(limit=limit + 1, before=before, actor=actor, action=action)
    items = [AuditEntry.model_validate(row) for row in rows[:limit]]
    return AuditPage(items=items, next_before=items[-1].id if len(rows) > limit else None)
