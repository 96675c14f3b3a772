"""Operations routes: health, readiness, the OpenAPI document and Prometheus metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from litestar import Litestar
from prometheus_client.parser import text_string_to_metric_families

import chat_sessions.db.migrate
from chat_sessions.app import create_app
from chat_sessions.db import Database
from support import Tenant, make_settings

# Every route of API.md, as the OpenAPI document spells paths.
API_ROUTES = {
    ("post", "/v1/sessions"),
    ("get", "/v1/sessions"),
    ("get", "/v1/sessions/{session_id}"),
    ("patch", "/v1/sessions/{session_id}"),
    ("put", "/v1/sessions/{session_id}/traits"),
    ("delete", "/v1/sessions/{session_id}"),
    ("post", "/v1/sessions/{session_id}/messages"),
    ("post", "/v1/sessions/{session_id}/messages/batch"),
    ("get", "/v1/sessions/{session_id}/messages"),
    ("get", "/v1/sessions/{session_id}/messages/{message_id}"),
    ("delete", "/v1/sessions/{session_id}/messages"),
    ("get", "/v1/sessions/{session_id}/context"),
    ("post", "/v1/sessions/{session_id}/tool-calls"),
    ("patch", "/v1/sessions/{session_id}/tool-calls/{tool_call_pk}"),
    ("get", "/v1/sessions/{session_id}/tool-calls"),
    ("get", "/v1/search"),
    ("get", "/v1/sessions/{session_id}/export"),
    ("post", "/v1/sessions/import"),
    ("get", "/v1/stats"),
    ("delete", "/v1/users/{user_id}"),
    ("post", "/v1/admin/tenants"),
    ("get", "/v1/admin/tenants"),
    ("patch", "/v1/admin/tenants/{tenant_id}"),
    ("delete", "/v1/admin/tenants/{tenant_id}"),
    ("post", "/v1/admin/tenants/{tenant_id}/keys"),
    ("delete", "/v1/admin/tenants/{tenant_id}/keys/{key_id}"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
}
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@asynccontextmanager
async def client_for(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@asynccontextmanager
async def sqlite_database() -> AsyncIterator[Database]:
    """A migrated :memory: database of the test's own, free to downgrade."""
    database = Database(make_settings())
    await database.start()
    try:
        await database.migrate()
        yield database
    finally:
        await database.stop()


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] in (
        "application/json",
        "application/problem+json",
    )
    body = response.json()
    assert body["status"] == status
    assert body["detail"]


# --- health and readiness ---------------------------------------------------------------


async def test_health_is_200_without_credentials(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()


async def test_ready_is_200_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("revision", ["base", "-1"], ids=["empty", "one behind"])
async def test_ready_is_503_json_while_the_schema_is_behind_and_200_once_migrated(
    revision: str,
) -> None:
    # SQLite only, on a database of its own: never downgrade the shared PostgreSQL database.
    async with (
        sqlite_database() as database,
        client_for(create_app(make_settings(), database)) as client,
    ):
        assert (await client.get("/ready")).status_code == 200
        await database.run_sync(
            lambda connection: chat_sessions.db.migrate.downgrade_on_connection(
                connection, revision
            )
        )
        assert_problem(await client.get("/ready"), 503)
        assert (await client.get("/health")).status_code == 200  # alive, only not ready

        await database.migrate()
        assert (await client.get("/ready")).status_code == 200


async def test_ready_is_503_json_when_the_database_does_not_answer() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    settings = make_settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nothing",
        db_connect_timeout_seconds=2,
    )
    database = Database(settings)
    await database.start()
    try:
        async with client_for(create_app(settings, database)) as client:
            assert_problem(await client.get("/ready"), 503)
            assert (await client.get("/health")).status_code == 200
    finally:
        await database.stop()


# --- OpenAPI ----------------------------------------------------------------------------


async def openapi_routes(client: httpx.AsyncClient) -> set[tuple[str, str]]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["openapi"].startswith("3.")
    return {
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in HTTP_METHODS
    }


async def test_openapi_lists_every_route_of_the_contract(client: httpx.AsyncClient) -> None:
    documented = await openapi_routes(client)
    assert API_ROUTES - documented == set()


async def test_openapi_documents_every_route_the_app_serves(
    client: httpx.AsyncClient, app: Litestar
) -> None:
    documented = await openapi_routes(client)
    served = {
        (method.lower(), route.path.replace(":str", ""))
        for route in app.routes
        if not route.path.startswith("/schema")
        for method in route.methods
        if method.lower() in HTTP_METHODS
    }
    assert served - documented == set()


# --- metrics ----------------------------------------------------------------------------


def request_counts(exposition: str) -> dict[tuple[str, str, str], float]:
    """(method, path label, status) -> count, from Prometheus text."""
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(exposition):
        if family.type != "counter" or not family.name.endswith("requests"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                key = (labels["method"], labels["path"], labels["status_code"])
                counts[key] = counts.get(key, 0) + sample.value
    return counts


async def metrics(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_count_requests_by_route_template_and_status(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    # The counters live in the process-wide registry: compare before and after.
    before = request_counts(await metrics(client))
    session_ids = []
    for _ in range(3):
        response = await client.post("/v1/sessions", json={}, headers=tenant.headers)
        session_ids.append(response.json()["id"])
    for session_id in session_ids:
        assert (await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)).is_success
    missing = "0192f6c5-0000-7000-8000-000000000000"
    assert (await client.get(f"/v1/sessions/{missing}", headers=tenant.headers)).status_code == 404
    exposition = await metrics(client)
    after = request_counts(exposition)

    def grew(key: tuple[str, str, str]) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert grew(("POST", "/v1/sessions", "201")) == 3
    assert grew(("GET", "/v1/sessions/{session_id}", "200")) == 3
    assert grew(("GET", "/v1/sessions/{session_id}", "404")) == 1
    # Labelled by template: no raw session id becomes a label (one time series per id would
    # grow without bound).
    for session_id in [*session_ids, missing]:
        assert session_id not in exposition


async def test_metrics_carry_latency_histograms_by_route(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await client.get("/v1/sessions", headers=tenant.headers)
    families = {
        family.name: family for family in text_string_to_metric_families(await metrics(client))
    }
    histograms = [family for family in families.values() if family.type == "histogram"]
    routes = {
        (sample.labels.get("method"), sample.labels.get("path"))
        for family in histograms
        for sample in family.samples
        if sample.name.endswith("_count")
    }
    assert ("GET", "/v1/sessions") in routes
