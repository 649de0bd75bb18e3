"""The connection helpers that need no database: conninfo defaults, and logging an outage once."""

from __future__ import annotations

import logging

import psycopg
from psycopg.conninfo import conninfo_to_dict

from postgit.db.pool import CONNECTION_DEFAULTS, DatabaseWatch, with_connection_defaults


def test_defaults_fill_in_what_the_conninfo_omits_and_keep_what_it_says():
    params = conninfo_to_dict(
        with_connection_defaults("postgresql://u:p%40ss@db:6432/app?connect_timeout=30", application_name="x")
    )
    assert params["connect_timeout"] == "30"  # the operator's own
    assert params["keepalives_idle"] == CONNECTION_DEFAULTS["keepalives_idle"]
    assert (params["host"], params["port"], params["dbname"], params["password"]) == ("db", "6432", "app", "p@ss")
    assert params["application_name"] == "x"
    named = conninfo_to_dict(with_connection_defaults("host=db application_name=mine", application_name="x"))
    assert named["application_name"] == "mine"


def test_the_watch_logs_each_outage_once(caplog):
    watch = DatabaseWatch(logging.getLogger("postgit.test"))
    with caplog.at_level(logging.INFO, logger="postgit.test"):
        watch.succeeded()
        for attempt in range(5):
            watch.failed(psycopg.OperationalError(f"connection failed: attempt {attempt}\n\tdetails"))
        assert not watch.reachable
        assert watch.last_error == "connection failed: attempt 4"
        watch.succeeded()
        watch.succeeded()
        watch.failed(psycopg.OperationalError("again"))
    assert [record.getMessage() for record in caplog.records] == [
        "database unreachable: connection failed: attempt 0; retrying",
        "database reachable again",
        "database unreachable: again; retrying",
    ]
