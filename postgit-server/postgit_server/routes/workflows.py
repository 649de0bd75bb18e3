"""Workflows: deploy a definition, list workflows, show one and its versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from postgit.service import check_workflow_name
from postgit_server.dependencies import Service
from postgit_server.models import (
    MAX_INT4,
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
    status_code=status.HTTP_201_CREATED,
    response_model=DeployResponse,
    responses={
        200: {"model": DeployResponse, "description": "This exact definition was already deployed"},
        400: {"model": ErrorBody, "description": "Invalid workflow name"},
        422: {
            "model": DefinitionErrorBody | ValidationErrorBody,
            "description": "An invalid definition (with `issues`), or a body that is not a deploy request (`errors`)",
        },
    },
)
async def deploy(body: DeployRequest, service: Service, response: Response) -> DeployResponse:
    """Validate a definition against this server's node types and store it as the workflow's next version.

    Deploying a definition identical to an existing version returns that version with `created: false`.
    """
    deployed = await service.deploy(body.name, body.definition)
    if not deployed.created:
        response.status_code = status.HTTP_200_OK
    return DeployResponse(name=deployed.name, version=deployed.version, created=deployed.created)


@router.get("", response_model=list[WorkflowSummary])
async def list_workflows(service: Service) -> list[WorkflowSummary]:
    """Every workflow with its latest version, sorted by name."""
    return [WorkflowSummary.model_validate(row) for row in await service.store.list_workflows()]


@router.get("/{name}", response_model=WorkflowDetail, responses=LOOKUP_ERRORS)
async def get_workflow(name: str, service: Service) -> WorkflowDetail:
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


@router.get("/{name}/versions/{version}", response_model=WorkflowVersion, responses=LOOKUP_ERRORS)
async def get_workflow_version(
    name: str, version: Annotated[int, Path(ge=1, le=MAX_INT4)], service: Service
) -> WorkflowVersion:
    """One version of a workflow with its definition."""
    check_workflow_name(name)
    return WorkflowVersion.model_validate(await service.get_workflow(name, version))
