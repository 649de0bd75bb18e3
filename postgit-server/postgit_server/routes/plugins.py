"""``GET /plugins``: every node type the server or a live worker has, who has it, and at which version."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter

from postgit.definition import CONTROL_TYPES
from postgit.engine_types import builtin_node_types
from postgit_server.auth import VIEWER
from postgit_server.dependencies import Service
from postgit_server.models import PluginRow

router = APIRouter(tags=["plugins"])

ENGINE_PACKAGE = "postgit-core"


@router.get("/plugins", dependencies=[VIEWER], response_model=list[PluginRow])
async def list_plugins(service: Service) -> list[PluginRow]:
    """One row per node type, sorted by name: its provenance on the server, and the live workers that can run it.

    `worker_versions` gives the package and version each of those workers runs, `worker_queues` the queues each
    serves (null: every queue), and `warnings` each worker whose versions differ from the server's (which validated
    the definitions). The node types the engine runs itself are listed
    too, with `builtin` true.
    """
    workers = await service.live_workers()
    workers_by_type: dict[str, list[str]] = {}
    for worker in workers:
        for node_type in worker["node_types"]:
            workers_by_type.setdefault(node_type, []).append(worker["id"])
    warnings: dict[str, list[str]] = {}
    for mismatch in service.plugin_mismatches(workers):
        warnings.setdefault(mismatch.node_type, []).append(mismatch.message())
    rows: dict[str, dict[str, Any]] = {}
    for row in service.registry.describe():
        rows[str(row["name"])] = {**row, "on_server": True}
    engine_version = _installed_version(ENGINE_PACKAGE)
    every_worker = sorted(worker["id"] for worker in workers)
    for name, description in builtin_node_types().items():
        rows[name] = {
            "name": name,
            "package": ENGINE_PACKAGE,
            "version": engine_version,
            "description": description,
            "plugin": "engine",
            "builtin": True,
            "on_server": True,
        }
        if name in CONTROL_TYPES:  # interpreted by every worker's engine; workers do not list them
            workers_by_type[name] = every_worker
    for node_type in workers_by_type:
        rows.setdefault(
            node_type,
            {
                "name": node_type,
                "package": None,
                "version": None,
                "description": None,
                "plugin": None,
                "on_server": False,
            },
        )
    result = []
    for name in sorted(rows):
        ids = sorted(workers_by_type.get(name, []))
        versions = {worker["id"]: (worker.get("plugins") or {}).get(name) for worker in workers if worker["id"] in ids}
        result.append(
            PluginRow.model_validate(
                {
                    **rows[name],
                    "workers": ids,
                    "worker_versions": {} if rows[name].get("builtin") else versions,
                    "warnings": warnings.get(name, []),
                    "worker_queues": {worker["id"]: worker.get("queues") for worker in workers if worker["id"] in ids},
                }
            )
        )
    return result


def _installed_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None
