"""Hooks for the ``st run`` of ``test_api_schema.py``, loaded by schemathesis through ``SCHEMATHESIS_HOOKS``.

``POSTGIT_FUZZ_EXISTING`` (JSON): for a path template (or ``"METHOD template"`` for one method only), the path
parameters of things that exist (seeded instances, deployed workflows, schedules). Valid cases name them now and
then, so that lookups and cancels find something and their answers (completed, failed, cancelled and waiting
instances, steps, events, schedules and their fires) are checked against the schema too; valid deploys, schedules
and backfills are mixed in the same way, since a random definition rarely names a real node type, nor a random
string a cron expression.

``POSTGIT_FUZZ_CALLS``: a file that gets one JSON line per request sent, ``{"operation", "status"}``, for the
test's own assertions (every operation was called, every read answered 200 at least once, no 5xx).
"""

from __future__ import annotations

import ast
import json
import os
import threading
from typing import Any

import schemathesis
from hypothesis import strategies as st

_ast_parse = ast.parse
_ast_lock = threading.Lock()


def _serialised_ast_parse(*args: Any, **kwargs: Any) -> Any:
    with _ast_lock:
        return _ast_parse(*args, **kwargs)


# `st run --workers 2` draws cases in two threads, and hypothesis parses the source of lambdas (to describe
# strategies) with ast.parse; CPython 3.11's AST validator keeps its recursion depth in shared state, so two parses
# at once can fail with "SystemError: AST constructor recursion depth mismatch", a runtime error of the run.
ast.parse = _serialised_ast_parse  # type: ignore[assignment]

EXISTING: dict[str, list[dict[str, Any]]] = json.loads(os.environ.get("POSTGIT_FUZZ_EXISTING", "{}"))
CALLS = os.environ.get("POSTGIT_FUZZ_CALLS")
_lock = threading.Lock()

VALID_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}"
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20)
DEPLOYS = st.fixed_dictionaries(
    {
        "name": st.from_regex(VALID_NAME, fullmatch=True),
        "definition": st.fixed_dictionaries(
            {
                "id": st.just("s"),
                "type": st.just("Shout"),
                "params": st.fixed_dictionaries({"text": TEXT, "exclamations": st.integers(-1, 11)}),
            }
        ),
    }
)

SCHEDULE_CREATES = st.fixed_dictionaries(
    {
        "name": st.from_regex(VALID_NAME, fullmatch=True),
        "workflow": st.just("fuzz"),
        "cron": st.sampled_from(["0 0 1 1 *", "@yearly", "0 3 * * 1", "*/5 * * * *"]),
        "timezone": st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
        "overlap": st.sampled_from(["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other"]),
        "paused": st.booleans(),
    }
)
"""Valid schedules (a random cron expression, time zone or workflow rarely is one), firing rarely if at all."""
BACKFILLS = st.fixed_dictionaries(
    {"from": st.just("2021-06-01T00:00:00Z"), "to": st.sampled_from(["2023-06-01T00:00:00Z", "2024-01-01T00:00:00Z"])}
)
"""Valid backfills of a yearly schedule: a few fire times (a random range rarely holds fewer than 1,000)."""


def _replaced(case: schemathesis.Case, **containers: Any) -> schemathesis.Case:
    derived = case.derive(keep_auth=True)
    for name, value in containers.items():
        setattr(derived, name, value)  # schemathesis re-checks a replaced part against the schema
    return derived


BATCH = "/workflows/{name}/instances/batch"
BATCH_ITEMS = 20
"""Valid batch starts are cut to this many items: hundreds of random inputs per case would only make the run long."""


KEPT_SCHEDULES = {params["name"] for params in EXISTING.get("/schedules/{name}", [])}
"""Seeded schedules the other operations read: a delete (the stateful phase follows a read's `name` to one) deletes
the schedule seeded for deletes instead."""


@schemathesis.hook
def flatmap_case(context: schemathesis.HookContext, case: schemathesis.Case) -> Any:
    name = (case.path_parameters or {}).get("name")
    if case.operation.label == "DELETE /schedules/{name}" and name in KEPT_SCHEDULES:
        case = _replaced(case, path_parameters=EXISTING["DELETE /schedules/{name}"][0])
    if case.meta is None or case.meta.generation.mode.is_negative:
        return st.just(case)
    if case.meta.phase.name == "stateful":  # a link's parameters name what an earlier step created or read
        return st.just(case)
    if case.operation.path == BATCH and isinstance(case.body, dict) and isinstance(case.body.get("instances"), list):
        case = _replaced(case, body={**case.body, "instances": case.body["instances"][:BATCH_ITEMS]})
    if case.operation.label == "POST /workflows":
        # A random definition that fits the schema names no installed node type (422), as the coverage phase's do;
        # offered beside a valid deploy, hypothesis may draw the random one in every case of a short run.
        return DEPLOYS.map(lambda body: _replaced(case, body=body))
    options = [st.just(case)]
    known = EXISTING.get(f"{case.method.upper()} {case.operation.path}", EXISTING.get(case.operation.path))
    if known:
        options.append(
            st.sampled_from(known).map(
                lambda params: _replaced(case, path_parameters={**case.path_parameters, **params})
            )
        )
    if case.operation.label == "POST /schedules":
        options.append(SCHEDULE_CREATES.map(lambda body: _replaced(case, body=body)))
    if case.operation.label == "POST /schedules/{name}/backfill" and known:
        options.append(
            st.tuples(st.sampled_from(known), BACKFILLS).map(
                lambda pair: _replaced(case, path_parameters={**case.path_parameters, **pair[0]}, body=pair[1])
            )
        )
    return st.one_of(options)


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: Any) -> None:
    if CALLS is None:
        return
    line = json.dumps({"operation": case.operation.label, "status": response.status_code})
    with _lock, open(CALLS, "a") as calls:
        calls.write(line + "\n")
