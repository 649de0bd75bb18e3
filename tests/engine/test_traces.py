"""Traces: a span per step attempt under a trace per instance, parented on the start request's ``traceparent``."""

from __future__ import annotations

import logging
import uuid

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from postgit import HitEndpoint, Node, Sequence, tracing
from postgit.tracing import engine_tracer, valid_traceparent
from postgit.worker_main import configure_tracing
from tests.support.engine import in_process_worker, wait_finished
from tests.support.processes import start_worker
from tests.support.server import serving

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


def traced() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def test_each_step_attempt_is_a_span_under_the_start_requests_trace(
    service, store, registry, database_url, http_server
):
    flow = Sequence(
        id="root",
        children=[
            HitEndpoint(id="call", url=f"{http_server.url}/flaky/traced/1", retry={"initialInterval": 0.05}),
            Node("Shout", id="loud", text="x"),
        ],
    )
    await service.deploy("traced", flow.to_json())
    async with serving(database_url) as server, httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post("/workflows/traced/instances", json={}, headers={"traceparent": TRACEPARENT})
        assert response.status_code == 201, response.text
        ignored = await client.post("/workflows/traced/instances", json={}, headers={"traceparent": "not a trace"})
        assert ignored.status_code == 201, ignored.text
        batch = await client.post(
            "/workflows/traced/instances/batch", json={"instances": [{}]}, headers={"traceparent": TRACEPARENT}
        )
        assert batch.status_code == 200, batch.text
    batch_id = uuid.UUID(batch.json()["results"][0]["id"])
    ignored_id = uuid.UUID(ignored.json()["id"])
    async with store.pool.connection() as conn:
        stored = await conn.execute(
            "SELECT id, traceparent FROM postgit.instances WHERE id = ANY(%s)", ([batch_id, ignored_id],)
        )
        traceparents = {row["id"]: row["traceparent"] for row in await stored.fetchall()}
    assert traceparents == {batch_id: TRACEPARENT, ignored_id: None}, "a malformed traceparent is ignored"
    for other in (batch_id, ignored_id):
        await service.cancel(other)
    instance_id = uuid.UUID(response.json()["id"])
    provider, exporter = traced()
    async with in_process_worker(store, registry, database_url, tracer_provider=provider):
        assert (await wait_finished(store, instance_id))["status"] == "completed"

    spans = sorted(exporter.get_finished_spans(), key=lambda span: span.start_time)
    assert [span.name for span in spans] == ["HitEndpoint call", "HitEndpoint call", "Shout loud"]
    for span in spans:
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        assert f"{span.parent.span_id:016x}" == PARENT_SPAN
        assert span.attributes["postgit.instance.id"] == str(instance_id)
        assert span.attributes["postgit.workflow"] == "traced"
        assert span.attributes["postgit.workflow.version"] == 1
    first, second, loud = spans
    assert (first.attributes["postgit.attempt"], first.attributes["postgit.outcome"]) == (1, "retrying")
    assert first.status.status_code is StatusCode.ERROR
    assert (second.attributes["postgit.attempt"], second.attributes["postgit.outcome"]) == (2, "completed")
    assert dict(loud.attributes) == {
        "postgit.instance.id": str(instance_id),
        "postgit.workflow": "traced",
        "postgit.workflow.version": 1,
        "postgit.node.id": "loud",
        "postgit.node.type": "Shout",
        "postgit.run": "loud",
        "postgit.attempt": 1,
        "postgit.outcome": "completed",
    }
    # HitEndpoint sends each attempt's own span as the called service's parent
    hits = http_server.hits("/flaky/traced/1")
    assert [hit.headers["traceparent"] for hit in hits] == [
        f"00-{TRACE_ID}-{span.context.span_id:016x}-01" for span in (first, second)
    ]


async def test_an_instance_started_without_a_traceparent_is_a_trace_of_its_own(service, store, registry, database_url):
    await service.deploy("own", Sequence(id="root", children=[Node("Shout", id="a", text="x")]).to_json())
    first, _ = await service.start("own", {})
    second, _ = await service.start("own", {})
    provider, exporter = traced()
    async with in_process_worker(store, registry, database_url, tracer_provider=provider):
        for row in (first, second):
            await wait_finished(store, row["id"])
    by_instance = {span.attributes["postgit.instance.id"]: span for span in exporter.get_finished_spans()}
    for row in (first, second):
        assert by_instance[str(row["id"])].context.trace_id == row["id"].int


async def test_without_a_tracer_provider_nothing_is_traced(service, store, registry, database_url, http_server):
    assert engine_tracer() is None, "no SDK provider is configured globally in the tests"
    flow = Sequence(id="root", children=[HitEndpoint(id="call", url=f"{http_server.url}/ok/untraced")])
    await service.deploy("untraced", flow.to_json())
    row, _ = await service.start("untraced", {}, traceparent=TRACEPARENT)
    async with in_process_worker(store, registry, database_url) as worker:
        assert worker.executor.steps.tracer is None
        await wait_finished(store, row["id"])
    [hit] = http_server.hits("/ok/untraced")
    assert "traceparent" not in {name.lower() for name in hit.headers}


def test_only_traceparents_the_w3c_spec_accepts_are_kept():
    assert valid_traceparent(TRACEPARENT) == TRACEPARENT
    assert valid_traceparent(f"01-{TRACE_ID}-{PARENT_SPAN}-01-future") == TRACEPARENT
    for bad in (
        None,
        "",
        "garbage",
        f"00-{'0' * 32}-{PARENT_SPAN}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"ff-{TRACE_ID}-{PARENT_SPAN}-01",
        f"00-{TRACE_ID}-{PARENT_SPAN}-01-extra",
    ):
        assert valid_traceparent(bad) is None, bad


async def test_a_worker_traces_as_the_otel_variables_say(service, store, database_url, tmp_path):
    await service.deploy("exported", Sequence(id="root", children=[Node("Shout", id="s", text="x")]).to_json())
    row, _ = await service.start("exported", {})
    worker = start_worker(database_url, tmp_path, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="traced-worker")
    try:
        assert (await wait_finished(store, row["id"]))["status"] == "completed"
    finally:
        assert worker.terminate() == 0
    output = worker.log_path.read_text()
    assert '"name": "Shout s"' in output, output
    assert '"service.name": "traced-worker"' in output
    assert f'"trace_id": "0x{row["id"].hex}"' in output


def test_an_exporter_no_package_provides_stops_the_worker_with_one_line(database_url, tmp_path):
    worker = start_worker(database_url, tmp_path, OTEL_TRACES_EXPORTER="nonesuch")
    assert worker.popen.wait(30) == 2
    worker.stop()
    output = worker.log_path.read_text()
    assert "postgit-worker: OTEL_TRACES_EXPORTER='nonesuch': no installed package provides that exporter" in output
    assert "Traceback" not in output


def test_a_worker_asked_for_traces_without_opentelemetry_warns_and_runs_untraced(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setattr(tracing, "otel_trace", None)  # as without the extra
    with caplog.at_level(logging.WARNING, logger="postgit.worker"):
        assert configure_tracing() is None
    assert "OpenTelemetry is not installed: pip install 'postgit-core[otel]'" in caplog.text
