"""Rules every route follows, so that the OpenAPI schema says exactly what the server accepts.

Checked on the application itself, for every route (those added later too): a route reads only inputs it declares
(FastAPI puts those in the schema), each with its bounds stated; bearer security is declared only when the server
requires a token. What the server does with the inputs the schema states is checked by the schemathesis run in
``tests/fuzz/test_api_schema.py``.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from fastapi.security.base import SecurityBase
from pydantic import BaseModel

from postgit.definition import WORKFLOW_KEYS
from postgit_server.app import create_app
from postgit_server.inputs import WORKFLOW_SCHEMA
from tests.support.server import server_settings

TOKEN = "contract-token"
UNDOCUMENTED_ROUTES = {"/openapi.json", "/", "/docs"}
"""Routes left out of the schema: the schema itself (served only with the token when the server has one), and the
console's HTML pages (``/``, ``/ui/...``, and ``/docs`` for a browser logged in to the console), which are no API."""
FREE_FORM = {"input", "data", "definition"}
"""Body fields whose limits JSON Schema cannot state: any JSON value (a size in bytes), a definition (its nodes are
checked when it is deployed against the node types installed, see schemathesis.toml)."""


def build(token: str | None) -> FastAPI:
    return create_app(server_settings("postgresql://postgres@127.0.0.1:1/unused", api_token=token))


def dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from dependants(sub)


def routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every API route of ``app``, those of included routers too.

    FastAPI 0.165 keeps an included router as one entry of ``app.routes``; its routes, with the prefix and the
    router-level dependencies the inclusion adds, are its effective route contexts (which carry the attributes of
    an ``APIRoute`` this module reads: path, methods, ``include_in_schema``, the combined ``dependant``).
    """
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "effective_route_contexts"):
            for context in route.effective_route_contexts():
                if isinstance(context.original_route, APIRoute):
                    yield context


def operation(app: FastAPI, route: APIRoute, method: str) -> dict[str, Any]:
    return app.openapi()["paths"][route.path_format][method.lower()]


INTERNAL_HEADER_READERS = {"_identify"}
"""Functions that may read request headers the schema leaves out: the console's in-process calls to the API carry
its session's caller in headers that only count with a key no client knows (postgit_server.auth)."""


def raw_request_uses(call: Callable[..., Any], name: str) -> list[str]:
    """The lines of ``call`` that use its raw request parameter ``name`` other than as ``<name>.app`` or
    ``<name>.state`` (the application's and the request's state, which are not inputs), following the request
    into the module-level functions it is passed to."""
    if not inspect.isfunction(call) and not inspect.ismethod(call):
        call = type(call).__call__  # a callable instance: its __call__ reads the request
    if call.__name__ in INTERNAL_HEADER_READERS:
        return []
    lines, _ = inspect.getsourcelines(call)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    allowed = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr in ("app", "state")
    }
    passed_on = {}  # the request handed to another function: that function's uses count instead
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            callee = call.__globals__.get(node.func.id)
            if not inspect.isfunction(callee):
                continue
            parameters = list(inspect.signature(callee).parameters)
            for index, argument in enumerate(node.args):
                if isinstance(argument, ast.Name) and argument.id == name and index < len(parameters):
                    passed_on[id(argument)] = (callee, parameters[index])
            for keyword in node.keywords:
                if isinstance(keyword.value, ast.Name) and keyword.value.id == name and keyword.arg:
                    passed_on[id(keyword.value)] = (callee, keyword.arg)
    uses = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name) or node.id != name or id(node) in allowed:
            continue
        if id(node) in passed_on:
            callee, parameter = passed_on[id(node)]
            uses += [f"{callee.__name__}: {use}" for use in raw_request_uses(callee, parameter)]
        else:
            uses.append(lines[node.lineno - 1].strip())
    return uses


def undescribed_inputs(app: FastAPI) -> list[str]:
    """What the routes of ``app`` read that its schema does not describe."""
    problems = []
    for route in routes(app):
        if not route.include_in_schema:
            if route.path not in UNDOCUMENTED_ROUTES and not route.path.startswith("/ui/"):
                problems.append(f"{route.path} is left out of the schema")
            continue
        for method in sorted(route.methods):
            documented = operation(app, route, method)
            for dependant in dependants(route.dependant):
                where = f"{method} {route.path} ({getattr(dependant.call, '__name__', type(dependant.call).__name__)})"
                params = [
                    *dependant.path_params,
                    *dependant.query_params,
                    *dependant.header_params,
                    *dependant.cookie_params,
                    *dependant.body_params,
                ]
                problems += [
                    f"{where}: {param.name} is hidden from the schema"
                    for param in params
                    if not param.field_info.include_in_schema
                ]
                if isinstance(dependant.call, SecurityBase):
                    # it reads the Authorization header: the operation must declare that scheme
                    declared = {name for requirement in documented.get("security", []) for name in requirement}
                    if dependant.call.scheme_name not in declared:
                        problems.append(f"{where}: reads credentials the schema does not declare")
                    continue
                for name in (
                    dependant.request_param_name,
                    dependant.websocket_param_name,
                    dependant.http_connection_param_name,
                ):
                    uses = raw_request_uses(dependant.call, name) if name and dependant.call else []
                    if uses:
                        problems.append(
                            f"{where} reads the raw request ({'; '.join(uses)}): declare what it reads as a Path, "
                            "Query, Header or Body parameter (see postgit_server.inputs) so that the schema states it"
                        )
    return problems


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def bounds_problems(schema: dict[str, Any], components: dict[str, Any], where: str) -> list[str]:
    """Why an input's schema (with the fields and items inside it) does not bound it: one line per problem."""
    schema = resolve(schema, components)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return [problem for option in options for problem in bounds_problems(option, components, where)]
    kind = schema.get("type")
    if kind is None and not schema.keys() - {"title", "description", "default"}:
        return [f"{where} is any JSON value"]
    if kind == "string" and not {"pattern", "enum", "format", "maxLength", "const"} & schema.keys():
        return [f"{where} is a string with no pattern, enum, format or maxLength"]
    if kind == "integer" and not {"minimum", "exclusiveMinimum"} & schema.keys():
        return [f"{where} is an integer with no minimum"]
    if kind == "integer" and not {"maximum", "exclusiveMaximum"} & schema.keys():
        return [f"{where} is an integer with no maximum (PostgreSQL's integers have one)"]
    if kind == "array":
        problems = [] if "maxItems" in schema else [f"{where} is an array with no maxItems"]
        return problems + bounds_problems(schema.get("items", {}), components, f"{where}[]")
    return [
        problem
        for name, field in schema.get("properties", {}).items()
        if name not in FREE_FORM
        for problem in bounds_problems(field, components, f"{where}.{name}")
    ]


def unbounded_inputs(schema: dict[str, Any]) -> list[str]:
    """The parameters and body fields of ``schema`` whose schema states no bounds."""
    components = schema.get("components", {}).get("schemas", {})
    problems = []
    for path, operations in schema["paths"].items():
        for method, documented in operations.items():
            where = f"{method.upper()} {path}:"
            for parameter in documented.get("parameters", []):
                problems += bounds_problems(
                    parameter["schema"], components, f"{where} {parameter['in']} parameter {parameter['name']}"
                )
            body = documented.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                problems += bounds_problems(body, components, f"{where} body")
    return problems


@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token", "token"])
def test_no_route_reads_an_input_the_schema_does_not_describe(token):
    app = build(token)
    checked = {(method.lower(), route.path_format) for route in routes(app) if route.include_in_schema
               for method in route.methods}  # fmt: skip
    in_schema = {(method, path) for path, methods in app.openapi()["paths"].items() for method in methods}
    assert checked == in_schema, "the check must see every operation of the schema"
    assert undescribed_inputs(app) == []


@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token", "token"])
def test_every_input_states_its_bounds(token):
    assert unbounded_inputs(build(token).openapi()) == []


def colour_of(request: Request) -> str:
    return request.headers["x-colour"]


class Thing(BaseModel):
    """A body model whose fields state no bounds."""

    label: str
    payload: Any
    tags: list[str]


def test_the_rules_catch_a_route_that_breaks_them():
    app = FastAPI()

    @app.get("/things/{name}")
    async def sneaky(
        name: str,
        request: Request,
        hidden: Annotated[int | None, Query(include_in_schema=False)] = None,
        count: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        flavour = request.headers.get("x-flavour")
        return {"name": name, "flavour": flavour, "colour": colour_of(request), "app": request.app.title}

    router = APIRouter()  # an included router's routes are checked as the app's own are

    @router.post("/things", dependencies=[Depends(HTTPBearer())])
    async def create(thing: Thing) -> Thing:
        return thing

    app.include_router(router)

    app.openapi_schema = {**app.openapi()}
    app.openapi_schema["paths"]["/things"]["post"].pop("security")
    undescribed = undescribed_inputs(app)
    assert len(undescribed) == 3, undescribed
    assert "hidden is hidden from the schema" in undescribed[0]
    assert 'request.headers.get("x-flavour")' in undescribed[1]
    assert 'colour_of: return request.headers["x-colour"]' in undescribed[1]
    assert "reads credentials the schema does not declare" in undescribed[2]
    assert unbounded_inputs(app.openapi()) == [
        "GET /things/{name}: path parameter name is a string with no pattern, enum, format or maxLength",
        "GET /things/{name}: query parameter count is an integer with no maximum (PostgreSQL's integers have one)",
        "POST /things: body.label is a string with no pattern, enum, format or maxLength",
        "POST /things: body.payload is any JSON value",
        "POST /things: body.tags is an array with no maxItems",
        "POST /things: body.tags[] is a string with no pattern, enum, format or maxLength",
    ]


def test_security_is_declared_only_when_the_server_requires_a_token():
    open_schema = build(None).openapi()
    assert "securitySchemes" not in open_schema["components"]
    for path, operations in open_schema["paths"].items():
        for method, documented in operations.items():
            assert "security" not in documented, f"{method} {path}"
            assert "401" not in documented["responses"], f"{method} {path}"

    token_schema = build(TOKEN).openapi()
    assert token_schema["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the server's tokens: POSTGIT_API_TOKEN, or a named one of POSTGIT_API_TOKENS "
        "(declared only when the server has one).",
    }
    for path, operations in token_schema["paths"].items():
        for method, documented in operations.items():
            if path == "/health":
                assert "security" not in documented
            else:
                assert documented["security"] == [{"HTTPBearer": []}], f"{method} {path}"
                assert "401" in documented["responses"], f"{method} {path}"


def test_optional_parameters_are_never_null():
    for path, operations in build(None).openapi()["paths"].items():
        for method, documented in operations.items():
            for parameter in documented.get("parameters", []):
                assert {"type": "null"} not in parameter["schema"].get("anyOf", []), f"{method} {path} {parameter}"


def test_a_definitions_settings_are_the_ones_the_engine_reads():
    assert set(WORKFLOW_SCHEMA["properties"]) == WORKFLOW_KEYS
