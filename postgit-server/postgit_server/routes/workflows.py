"""Workflows: deploy a definition, list workflows, show one and its versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from postgit.checking import check_definition
from postgit.service import check_workflow_name
from postgit_server.audit import note
from postgit_server.auth import ADMIN, VIEWER
from postgit_server.dependencies import Service
from postgit_server.inputs import MAX_INT4, WorkflowName
from postgit_server.models import (
    CheckRequest,
    CheckResponse,
    DefinitionErrorBody,
    DeployRequest,
    DeployResponse,
    ErrorBody,
    ValidationErrorBody,
    VersionSummary,
    WorkflowDetail,
    WorkflowSummary,
    WorkflowVersion,
)

router = APIRouter(prefix="/workflows", tags=["workflows"])

LOOKUP_ERRORS = {
    400: {"model": ErrorBody, "description": "Invalid workflow name"},
    404: {"model": ErrorBody, "description": "No such workflow or version"},
}


@router.post(
    "",
    dependencies=[ADMIN],
    status_code=status.HTTP_201_CREATED,
    response_model=DeployResponse,
    response_model_exclude_none=True,
    responses={
        200: {"model": DeployResponse, "description": "This exact definition was already deployed"},
        400: {"model": ErrorBody, "description": "Invalid workflow name"},
        422: {
            "model": DefinitionErrorBody | ValidationErrorBody,
            "description": "An invalid definition (with `issues`), or a body that is not a deploy request (`errors`)",
        },
    },
)
async def deploy(body: DeployRequest, service: Service, response: Response, request: Request) -> DeployResponse:
    """Validate a definition against this server's node types and store it as the workflow's next version.

    Deploying a definition identical to an existing version returns that version with `created: false`. When a
    live worker runs another package or version of a node type the definition uses, `warnings` says which.
    """
    note(request, target=f"workflow {body.name}")
    deployed = await service.deploy(body.name, body.definition)
    note(request, version=deployed.version, created=deployed.created)
    if not deployed.created:
        response.status_code = status.HTTP_200_OK
    return DeployResponse(
        name=deployed.name,
        version=deployed.version,
        created=deployed.created,
        warnings=list(deployed.warnings) or None,
    )


@router.get("", dependencies=[VIEWER], response_model=list[WorkflowSummary])
async def list_workflows(service: Service) -> list[WorkflowSummary]:
    """Every workflow with its latest version, sorted by name."""
    return [WorkflowSummary.model_validate(row) for row in await service.store.list_workflows()]


@router.get("/{name}", dependencies=[VIEWER], response_model=WorkflowDetail, responses=LOOKUP_ERRORS)
async def get_workflow(name: WorkflowName, service: Service) -> WorkflowDetail:
    """The latest definition of a workflow and the list of its versions."""
    check_workflow_name(name)
    latest = await service.get_workflow(name)
    versions = await service.store.list_workflow_versions(name)
    return WorkflowDetail(
        name=latest["name"],
        latest_version=latest["version"],
        definition=latest["definition"],
        versions=[VersionSummary.model_validate(row) for row in versions],
    )


@router.get(
    "/{name}/versions/{version}", dependencies=[VIEWER], response_model=WorkflowVersion, responses=LOOKUP_ERRORS
)
async def get_workflow_version(
    name: WorkflowName, version: Annotated[int, Path(ge=1, le=MAX_INT4)], service: Service
) -> WorkflowVersion:
    """One version of a workflow with its definition."""
    check_workflow_name(name)
    return WorkflowVersion.model_validate(await service.get_workflow(name, version))


@router.post(
    "/{name}/check",
    dependencies=[VIEWER],
    response_model=CheckResponse,
    responses={
        **LOOKUP_ERRORS,
        422: {
            "model": DefinitionErrorBody | ValidationErrorBody,
            "description": "An invalid definition (with `issues`), or a body that is not a check request (`errors`)",
        },
    },
)
async def check_workflow(name: WorkflowName, body: CheckRequest, service: Service) -> CheckResponse:
    """Replay a new definition over the recorded runs of the latest finished instances of the workflow's version.

    For each instance, the first node where the new definition would act differently: another branch or case, a
    node that was not recorded before a recorded one, a node of another type, a ref that no longer resolves, or an
    end before recorded runs. Nothing is deployed or written.
    """
    return CheckResponse.model_validate(await check_definition(service, name, body.definition, body.instances))
