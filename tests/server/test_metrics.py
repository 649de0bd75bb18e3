"""Prometheus metrics: the server's ``/metrics``, a worker's at ``POSTGIT_METRICS_PORT``, and the Grafana dashboard."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from postgit import Node, Sequence, WaitForEvent
from postgit.errors import PostgitError
from postgit.plugins import load_registry
from postgit.service import WorkflowService
from postgit.settings import WorkerSettings
from tests.support.engine import in_process_worker, wait_finished
from tests.support.ports import free_port
from tests.support.probe import Probe, ProbePlugin
from tests.support.processes import running_workers
from tests.support.server import running_server, serving
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import wait_for

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana" / "postgit.json"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


async def test_server_metrics_count_steps_instances_and_events_without_instance_ids(store, database_url):
    registry = load_registry(extra=[ProbePlugin])
    service = WorkflowService(store, registry)
    name = f"metered_{uuid.uuid4().hex[:8]}"
    flow = Sequence(
        id="root",
        children=[
            Probe(id="ok"),
            WaitForEvent(id="approve", event="approval"),
            Probe(id="bad", fail="retry"),  # two attempts: one retried, one failed for good
        ],
    )
    await service.deploy(name, flow.to_json())
    row, _ = await service.start(name, {})
    await service.send_event(row["id"], "approval", {"by": "ada"})  # kept until the wait begins
    async with serving(database_url) as server, in_process_worker(store, registry, database_url):
        assert (await wait_finished(store, row["id"]))["status"] == "failed"
        async with httpx.AsyncClient(base_url=server.url) as client:

            async def scraped() -> dict | None:
                response = await client.get("/metrics")
                assert response.status_code == 200, response.text
                assert response.headers["content-type"].startswith("text/plain")
                assert not UUID.search(response.text), "an instance id in a label"
                found = samples(response.text)
                return found if value(found, "postgit_instances", status="failed") else None

            found = await wait_for(scraped, what="the failed instance to be counted")
    probe = {"workflow": name, "node_type": "Probe"}
    assert value(found, "postgit_steps_started_total", **probe) == 3
    assert value(found, "postgit_steps_completed_total", **probe) == 1
    assert value(found, "postgit_steps_retried_total", **probe) == 1
    assert value(found, "postgit_steps_failed_total", **probe) == 1
    assert value(found, "postgit_step_duration_seconds_count", **probe) == 3
    assert value(found, "postgit_steps_completed_total", workflow=name, node_type="WaitForEvent") == 1
    assert value(found, "postgit_events_delivered_total", workflow=name) == 1
    assert value(found, "postgit_instances", status="failed") == 1
    assert value(found, "postgit_instances", status="pending") == 0
    assert value(found, "postgit_live_workers") == 1
    assert value(found, "postgit_oldest_due_instance_age_seconds") == 0
    assert value(found, "postgit_database_up") == 1
    assert value(found, "postgit_claim_lag_seconds_count") >= 1
    assert value(found, "postgit_group_commit_batch_size_count") >= 1
    assert value(found, "postgit_group_commit_seconds_count") >= 1


async def test_the_oldest_due_instance_is_reported_by_its_age(service, store, database_url):
    await service.deploy("later", Sequence(id="root", children=[Node("Shout", id="s", text="x")]).to_json())
    await service.start("later", {})  # no worker runs it
    async with serving(database_url) as server, httpx.AsyncClient(base_url=server.url) as client:

        async def aged() -> float | None:
            age = value(samples((await client.get("/metrics")).text), "postgit_oldest_due_instance_age_seconds")
            return age if age and age > 0.2 else None

        await wait_for(aged, what="the due instance to age")
        found = samples((await client.get("/metrics")).text)
    assert value(found, "postgit_instances", status="pending") == 1
    assert value(found, "postgit_live_workers") == 0


async def test_an_instance_waiting_for_a_concurrency_slot_is_not_due(service, store, database_url):
    root = Sequence(id="root", children=[Node("Shout", id="s", text="x")])
    await service.deploy("keyed", {"root": root.to_json(), "concurrency": {"key": "all"}})
    holder, _ = await service.start("keyed", {})
    waiting, _ = await service.start("keyed", {})
    async with store.pool.connection() as conn:  # the holder sleeps: it is not due either
        await conn.execute(
            "UPDATE postgit.instances SET status = 'waiting', run_at = now() + interval '1 hour' WHERE id = %s",
            (holder["id"],),
        )
    assert (await store.get_instance(waiting["id"]))["awaiting_slot"]
    async with serving(database_url) as server, httpx.AsyncClient(base_url=server.url) as client:
        found = samples((await client.get("/metrics")).text)
    assert value(found, "postgit_instances", status="pending") == 1
    assert value(found, "postgit_oldest_due_instance_age_seconds") == 0


async def test_a_database_that_does_not_answer_leaves_its_series_out_but_metrics_answer(database_url):
    with tcp_proxy(database_url) as proxy:
        async with serving(proxy.url_for(database_url)) as server, httpx.AsyncClient(base_url=server.url) as client:
            assert value(samples((await client.get("/metrics")).text), "postgit_database_up") == 1
            proxy.set_mode("blackhole")

            async def down() -> dict | None:
                started = time.monotonic()
                response = await client.get("/metrics", timeout=30)
                assert response.status_code == 200, response.text
                assert time.monotonic() - started < 10, "a scrape waited on the database"
                found = samples(response.text)
                return found if value(found, "postgit_database_up") == 0 else None

            found = await wait_for(down, what="the scrape to report the database down")
            assert not any(name == "postgit_instances" for name, _ in found)
            assert ("postgit_steps_started_total", ()) not in found  # the families are there, without samples
            proxy.set_mode("forward")


def test_a_bad_metrics_port_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@127.0.0.1/x")
    for bad in ("0", "70000", "abc", "1.5"):
        monkeypatch.setenv("POSTGIT_METRICS_PORT", bad)
        with pytest.raises(PostgitError, match="POSTGIT_METRICS_PORT"):
            WorkerSettings.from_env()
    monkeypatch.setenv("POSTGIT_METRICS_PORT", "9464")
    assert WorkerSettings.from_env().metrics_port == 9464


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def declared(text: str) -> set[str]:
    """The names of the series an exposition declares, with or without samples yet."""
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def dashboard_metrics() -> set[str]:
    """The metric names the dashboard's queries read (a histogram's ``_bucket`` etc. included)."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [variable["definition"] for variable in dashboard["templating"]["list"]]
    assert exprs
    return {name for expr in exprs for name in re.findall(r"\bpostgit_[a-z_]+\b", expr)}


async def test_a_worker_serves_metrics_at_its_port_and_the_dashboard_reads_only_metrics_that_exist(
    service, store, database_url, tmp_path
):
    await service.deploy("dash", Sequence(id="root", children=[Node("Shout", id="s", text="x")]).to_json())
    row, _ = await service.start("dash", {})
    port = free_port()
    with (
        running_workers(database_url, tmp_path, POSTGIT_METRICS_PORT=str(port)),
        running_server(database_url, tmp_path) as (_, url),
    ):
        assert (await wait_finished(store, row["id"]))["status"] == "completed"
        async with httpx.AsyncClient() as client:
            worker_text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            server_text = (await client.get(f"{url}/metrics")).text
    worker = samples(worker_text)
    assert value(worker, "postgit_steps_completed_total", workflow="dash", node_type="Shout") == 1
    exposed = declared(worker_text) | declared(server_text)
    missing = dashboard_metrics() - exposed
    assert not missing, f"the dashboard queries metrics nobody exposes: {sorted(missing)}"
