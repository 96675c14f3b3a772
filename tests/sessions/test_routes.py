"""Sessions over HTTP: create, list, get, patch, put traits, delete."""

from __future__ import annotations

from support import Tenant


async def test_create_session_returns_it_with_location_and_etag(client, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/sessions",
        json={"user_id": "u-42", "title": "Trip", "traits": {"plan": "pro"}},
        headers=tenant.headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["user_id"] == "u-42"
    assert body["traits"] == {"plan": "pro"}
    assert body["status"] == "active"
    assert body["message_count"] == 0
    assert body["version"] == 1
    assert response.headers["location"] == f"/v1/sessions/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert body["created_at"].endswith(("Z", "+00:00"))
