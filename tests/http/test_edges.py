"""The edges an audit found (issue 10, items 3, 6, 7 and 11): secrets in the access log and in
error details, read timeouts, key guessing, admin routes without a token.

In-process tests run on both engines through the `client` fixture; what only a real server
shows (its access log, its sockets) runs `chat-sessions serve` as a subprocess on a SQLite file.
"""

from __future__ import annotations

import logging
import select
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from chat_sessions.app import create_app
from chat_sessions.db import Database
from chat_sessions.ratelimit import RateLimiter
from chat_sessions.server import AccessLogWithoutQuery
from chat_sessions.settings import Settings
from service_process import ServiceProcess
from support import ADMIN, Clock, Tenant, count_rows

# Generous: the server's deadline in these tests is 1 s.
CLOSE_WITHIN_SECONDS = 15.0
BAD_KEY = {"Authorization": "Bearer cs_not-a-key"}


@asynccontextmanager
async def client_from(
    app: Litestar, address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


# --- item 11: admin routes without ADMIN_TOKEN --------------------------------------------

ADMIN_PATHS = [
    "/v1/admin/tenants",
    "/v1/admin/tenants/{tenant}",
    "/v1/admin/tenants/{tenant}/keys",
    "/v1/admin/tenants/{tenant}/keys/some-key",
]


async def test_without_admin_token_every_method_on_every_admin_path_is_404(
    settings: Settings, database: Database, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    closed_app = create_app(settings.model_copy(update={"admin_token": None}), database)
    async with client_from(closed_app) as closed:
        for path in ADMIN_PATHS:
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"):
                response = await closed.request(
                    method, path.format(tenant=tenant.id), headers=ADMIN, json={"name": "x"}
                )
                assert response.status_code == 404, f"{method} {path}: {response.text}"
                assert "allow" not in response.headers
        schema = (await closed.get("/schema/openapi.json")).json()
        assert not [path for path in schema["paths"] if "/admin/" in path]
    assert await count_rows(database, "tenants") == 1


# --- item 3: nothing from a query string or body echoed -----------------------------------


async def test_a_validation_error_does_not_echo_the_query_string(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.get(
        "/v1/sessions",
        params={"status": "not-a-status", "user_id": "SECRET-USER"},
        headers=tenant.headers,
    )
    assert response.status_code == 400
    assert "SECRET-USER" not in response.text
    assert "not-a-status" not in response.text
    assert response.json()["detail"] == "Validation failed for GET /v1/sessions"
    assert response.json()["errors"][0]["key"] == "status"


@pytest.mark.parametrize("content_type", [None, "application/json"])
async def test_a_missing_body_is_a_clear_400_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, content_type: str | None
) -> None:
    headers = {**tenant.headers, **({"content-type": content_type} if content_type else {})}
    session = (await client.post("/v1/sessions", json={}, headers=tenant.headers)).json()
    for method, path in [
        ("POST", "/v1/sessions"),
        ("POST", f"/v1/sessions/{session['id']}/messages"),
        ("PATCH", f"/v1/sessions/{session['id']}"),
    ]:
        response = await client.request(method, path, headers=headers)
        assert response.status_code == 400, f"{method} {path}: {response.text}"
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "a JSON body is required"
        assert "errors" not in response.json()
    response = await client.post("/v1/admin/tenants", headers=ADMIN)
    assert response.json()["detail"] == "a JSON body is required"
    assert await count_rows(database, "sessions") == 1
    assert await count_rows(database, "messages") == 0
    assert await count_rows(database, "tenants") == 1


def test_the_access_log_filter_keeps_the_path_and_drops_the_query() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/search?q=my+diagnosis&api_key=cs_secret", "1.1", 200),
        None,
    )
    assert AccessLogWithoutQuery().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /v1/search HTTP/1.1" 200'


# --- item 7: failed authentications per client address ------------------------------------


@pytest.fixture
def clock(app: Litestar) -> Clock:
    clock = Clock(1000.0)
    app.state.auth_failures = RateLimiter(clock)
    return clock


async def test_after_30_failed_authentications_a_bad_key_is_429_and_a_valid_key_works(
    client: httpx.AsyncClient, tenant: Tenant, clock: Clock
) -> None:
    statuses = [(await client.get("/v1/sessions", headers=BAD_KEY)).status_code for _ in range(30)]
    assert statuses == [401] * 30
    for headers in (BAD_KEY, {}, {"Authorization": "Bearer "}):
        refused = await client.get("/v1/sessions", headers=headers)
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
    # The right key is not locked out, before or after.
    assert (await client.get("/v1/sessions", headers=tenant.headers)).status_code == 200
    clock.now += 30
    refused = await client.get("/v1/sessions", headers=BAD_KEY)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) == 30
    clock.now += 30
    assert (await client.get("/v1/sessions", headers=BAD_KEY)).status_code == 401


async def test_failed_authentications_count_per_client_address(
    app: Litestar, tenant: Tenant, clock: Clock
) -> None:
    async with client_from(app, "10.0.0.1") as guesser, client_from(app, "10.0.0.2") as other:
        for _ in range(30):
            await guesser.get("/v1/sessions", headers=BAD_KEY)
        assert (await guesser.get("/v1/sessions", headers=BAD_KEY)).status_code == 429
        assert (await other.get("/v1/sessions", headers=BAD_KEY)).status_code == 401
        assert (await guesser.get("/v1/sessions", headers=tenant.headers)).status_code == 200


async def test_admin_token_guesses_count_too(client: httpx.AsyncClient, clock: Clock) -> None:
    wrong = {"Authorization": "Bearer wrong-admin-token"}
    for _ in range(30):
        assert (await client.get("/v1/admin/tenants", headers=wrong)).status_code == 401
    assert (await client.get("/v1/admin/tenants", headers=wrong)).status_code == 429
    assert (await client.get("/v1/admin/tenants", headers=ADMIN)).status_code == 200


async def test_auth_failures_per_minute_0_counts_nothing(
    settings: Settings, database: Database, clock: Clock
) -> None:
    app = create_app(settings.model_copy(update={"auth_failures_per_minute": 0}), database)
    async with client_from(app) as client:
        statuses = {
            (await client.get("/v1/sessions", headers=BAD_KEY)).status_code for _ in range(40)
        }
    assert statuses == {401}


def test_the_failure_table_forgets_the_oldest_window_past_its_bound() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(clock, max_keys=3)
    for address in ("a", "b", "c", "d", "e"):
        limiter.hit(address, 1)
        clock.now += 1
    assert len(limiter) == 3
    limiter.hit("a", 1)  # forgotten, so it starts afresh
    with pytest.raises(Exception, match="rate limit of 1 requests"):
        limiter.hit("e", 1)
    assert len(limiter) == 3


# --- a real server ------------------------------------------------------------------------


class Server(ServiceProcess):
    """`chat-sessions serve --migrate` on a SQLite file, with a read timeout of 1 s."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.db_file = tmp_path / "sessions.db"
        settings = {"LOG_LEVEL": "info", "REQUEST_READ_TIMEOUT_SECONDS": "1", **env}
        super().__init__(tmp_path, "--migrate", DATABASE_PATH=str(self.db_file), **settings)

    def tenant_key(self) -> dict[str, str]:
        response = httpx.post(
            f"{self.base_url}/v1/admin/tenants", json={"name": "acme"}, headers=ADMIN
        )
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['api_key']}"}

    def count(self, table: str) -> int:
        with sqlite3.connect(self.db_file) as connection:
            return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.settimeout(CLOSE_WITHIN_SECONDS)
        return sock


@contextmanager
def server(tmp_path: Path, **env: str) -> Iterator[Server]:
    running = Server(tmp_path, **env)
    try:
        yield running
    finally:
        running.stop()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or CLOSE_WITHIN_SECONDS
    pass: then the test fails on the socket timeout)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def request_head(method: str, path: str, headers: dict[str, str], length: int) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_the_access_log_carries_no_query_string(tmp_path: Path) -> None:
    with server(tmp_path, ACCESS_LOG="true") as running:
        key = running.tenant_key()
        token = key["Authorization"].removeprefix("Bearer ")
        httpx.get(f"{running.base_url}/v1/sessions", params={"api_key": token}, headers=key)
        httpx.get(f"{running.base_url}/v1/search", params={"q": "mydiagnosis"}, headers=key)
        httpx.get(f"{running.base_url}/v1/sessions", params={"limit": "x", "user_id": "SECRETUSER"})
        log = running.stop()
    # `api_key` is no query parameter of the route: a 400 (strict query strings), logged alike.
    assert '"GET /v1/sessions HTTP/1.1" 400' in log
    assert '"GET /v1/search HTTP/1.1" 200' in log
    for secret in (token, "mydiagnosis", "SECRETUSER", "?"):
        assert secret not in log


def test_read_timeouts_answer_408_and_close_and_store_nothing(tmp_path: Path) -> None:
    with server(tmp_path) as running:
        key = running.tenant_key()
        body = b'{"user_id": "u-1", "title": "never stored"}'

        # A body that stops halfway.
        with running.connect() as sock:
            sock.sendall(request_head("POST", "/v1/sessions", key, len(body)) + body[:10])
            answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"application/problem+json" in answer

        # A body trickled a byte at a time: the deadline counts from the start, not per byte.
        # A byte that crosses the server's close on the wire makes its kernel reset the
        # connection, which can discard the 408 before it is read: closed is an answer too.
        with running.connect() as sock:
            sock.sendall(request_head("POST", "/v1/sessions", key, len(body)))
            trickled: bytes | None
            try:
                for byte in body:
                    if select.select([sock], [], [], 0.2)[0]:  # the server has answered
                        break
                    sock.sendall(bytes([byte]))
                trickled = read_until_closed(sock)
            except (ConnectionResetError, BrokenPipeError):
                trickled = None
        assert trickled is None or trickled.startswith(b"HTTP/1.1 408 "), trickled

        # Headers that never end (slow loris), and a connection that sends nothing.
        for sent in (b"POST /v1/sessions HTTP/1.1\r\nHost: test\r\n", b""):
            with running.connect() as sock:
                sock.sendall(sent)
                assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")

        # A second request on a kept-alive connection gets its own deadline.
        with running.connect() as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            first = b""
            while not first.endswith(b'{"status":"ok"}'):
                first += sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ")
            sock.sendall(request_head("POST", "/v1/sessions", key, len(body)) + body[:5])
            assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")

        assert running.count("sessions") == 0
        # A whole request on time is served as before.
        created = httpx.post(
            f"{running.base_url}/v1/sessions",
            content=body,
            headers={**key, "Content-Type": "application/json"},
        )
        assert created.status_code == 201
        log = running.stop()
    assert "Traceback" not in log
    assert "ERROR" not in log
    timed_out = [line for line in log.splitlines() if "answered 408, connection closed" in line]
    assert len(timed_out) == 5
    assert all(line.startswith("INFO") for line in timed_out), timed_out


def test_a_client_gone_mid_body_is_one_info_line(tmp_path: Path) -> None:
    with server(tmp_path, REQUEST_READ_TIMEOUT_SECONDS="30") as running:
        key = running.tenant_key()
        session = httpx.post(f"{running.base_url}/v1/sessions", json={}, headers=key).json()
        path = f"/v1/sessions/{session['id']}/messages"
        for _ in range(3):
            with running.connect() as sock:
                sock.sendall(request_head("POST", path, key, 1000) + b'{"role": "user", "con')
                time.sleep(0.2)  # let the server start reading the body
        # The server is still well, and stored nothing of the abandoned uploads.
        ok = httpx.post(
            f"{running.base_url}{path}", json={"role": "user", "content": "hi"}, headers=key
        )
        assert ok.status_code == 201
        assert running.count("messages") == 1
        log = running.stop()
    assert "Traceback" not in log
    assert "ERROR" not in log
    gone = [line for line in log.splitlines() if "went away" in line]
    assert len(gone) == 3
    assert all(line.startswith("INFO") for line in gone), gone


@pytest.mark.parametrize(("trusted", "expected"), [("", 429), ("127.0.0.1", 401)])
def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(
    tmp_path: Path, trusted: str, expected: int
) -> None:
    with server(tmp_path, AUTH_FAILURES_PER_MINUTE="2", TRUSTED_PROXIES=trusted) as running:
        url = f"{running.base_url}/v1/sessions"
        for _ in range(2):
            response = httpx.get(url, headers={**BAD_KEY, "X-Forwarded-For": "203.0.113.7"})
            assert response.status_code == 401
        # Another forwarded address: a new client behind a trusted proxy, the same peer else.
        response = httpx.get(url, headers={**BAD_KEY, "X-Forwarded-For": "203.0.113.8"})
        assert response.status_code == expected
        # A client cannot spoof its way out by prepending an address of its own.
        spoofed = {**BAD_KEY, "X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
        assert httpx.get(url, headers=spoofed).status_code == 429
