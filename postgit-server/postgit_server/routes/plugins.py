"""``GET /plugins``: every node type the server or a live worker has, and who has it."""

from __future__ import annotations

from fastapi import APIRouter

from postgit_server.dependencies import Service
from postgit_server.models import PluginRow

router = APIRouter(tags=["plugins"])


@router.get("/plugins", response_model=list[PluginRow])
async def list_plugins(service: Service) -> list[PluginRow]:
    """One row per node type, sorted by name: provenance on the server, and the live workers that can run it."""
    workers_by_type: dict[str, list[str]] = {}
    for worker in await service.live_workers():
        for node_type in worker["node_types"]:
            workers_by_type.setdefault(node_type, []).append(worker["id"])
    rows = {
        row["name"]: PluginRow.model_validate(
            {**row, "on_server": True, "workers": sorted(workers_by_type.get(str(row["name"]), []))}
        )
        for row in service.registry.describe()
    }
    for node_type, worker_ids in workers_by_type.items():
        if node_type not in rows:
            rows[node_type] = PluginRow(
                name=node_type,
                package=None,
                version=None,
                description=None,
                plugin=None,
                on_server=False,
                workers=sorted(worker_ids),
            )
    return [rows[name] for name in sorted(rows)]
