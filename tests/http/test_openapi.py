"""The OpenAPI document says what the server does: every error a route answers, as a problem
document; closed request shapes; and what the schema admits, the server takes.
(scripts/schemathesis.sh checks the whole document against the running server, in CI.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chat_sessions.bounds import MAX_SEQ
from chat_sessions.errors import PROBLEM_JSON
from support import ADMIN, Tenant, new_session

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_every_api_route_documents_its_problems(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        if not path.startswith("/v1/"):
            continue
        responses = operation["responses"]
        expected = {"400", "401", "503"}
        if "requestBody" in operation:
            expected |= {"413", "415"}
        if "{" in path or path.startswith("/v1/admin/"):
            expected.add("404")
        if not path.startswith("/v1/admin/"):
            expected.add("429")
        assert expected <= set(responses), (method, path, sorted(responses))
        # OpenAI's Conversations API answers errors in OpenAI's shape, the rest in RFC 9457's.
        media_type, shape = (
            ("application/json", "OpenAIError")
            if path.startswith("/v1/conversations")
            else (PROBLEM_JSON, "Problem")
        )
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert list(response["content"]) == [media_type], (method, path, status)
                schema = response["content"][media_type]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{shape}"}


def test_every_operation_documents_the_400_of_an_unknown_query_parameter(
    document: dict[str, Any],
) -> None:
    for method, path, operation in _operations(document):
        assert "400" in operation["responses"], (method, path)


def test_preconditions_and_conflicts_are_documented_where_they_happen(
    document: dict[str, Any],
) -> None:
    paths = document["paths"]
    assert "412" in paths["/v1/sessions/{session_id}"]["patch"]["responses"]
    assert "412" in paths["/v1/sessions/{session_id}"]["delete"]["responses"]
    assert "412" in paths["/v1/sessions/{session_id}/messages"]["post"]["responses"]
    assert "412" in paths["/v1/sessions/{session_id}/messages"]["delete"]["responses"]
    assert "412" in paths["/v1/sessions/{session_id}/messages/last"]["delete"]["responses"]
    assert (
        "409" in paths["/v1/sessions/{session_id}/tool-calls/{tool_call_pk}"]["patch"]["responses"]
    )
    assert "503" in paths["/ready"]["get"]["responses"]


def test_the_problem_schema_is_what_errors_answer(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}


def test_strict_request_shapes_are_closed(document: dict[str, Any]) -> None:
    # Litestar 2 documents every struct as open; openapi.ClosedStructSchemaPlugin (a subclass
    # of a private Litestar class) closes those that refuse unknown fields.
    schemas = document["components"]["schemas"]
    for name in ("SessionCreate", "SessionUpdate", "MessageCreate", "MessageBatch",
                 "ToolCallCreate", "ToolCallUpdate", "ImportDocument", "ImportedMessage",
                 "TenantCreate", "TenantUpdate", "SessionFork"):  # fmt: skip
        assert schemas[name]["additionalProperties"] is False, name
    assert schemas["SessionRead"].get("additionalProperties") is not False


def test_metrics_are_documented_as_text(document: dict[str, Any]) -> None:
    content = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]


async def test_a_whole_number_written_as_a_float_is_that_integer(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    # JSON (and the document's JSON Schema) do not tell 30.0 from 30.
    response = await client.post(
        "/v1/admin/tenants", json={"name": "floaty", "retention_days": 30.0}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    assert response.json()["tenant"]["retention_days"] == 30
    session_id = await new_session(client, tenant)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={"messages": [{"role": "user", "content": "hi", "token_count": 5.0}]},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    assert '"token_count":5,' in response.text


async def test_whole_floats_stay_floats_where_the_value_is_free_form(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post(
        "/v1/sessions",
        content=b'{"traits": {"score": 1.0, "nested": [2.0]}, "title": "t"}',
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert '"traits":{"score":1.0,"nested":[2.0]}' in response.text


@pytest.mark.parametrize("value", [5.5, "5", True])
async def test_what_is_no_integer_is_still_refused(
    client: httpx.AsyncClient, tenant: Tenant, value: object
) -> None:
    session_id = await new_session(client, tenant)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "hi", "token_count": value},
        headers=tenant.headers,
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize(
    "query", ["after_seq=2147483648", "after_seq=9223372036854775808", "after_seq=-1"]
)
async def test_a_truncation_point_outside_the_documented_range_is_400(
    client: httpx.AsyncClient, tenant: Tenant, query: str
) -> None:
    # schemathesis found 2**63 answered 500 on SQLite; the range is what both engines store.
    session_id = await new_session(client, tenant)
    response = await client.delete(
        f"/v1/sessions/{session_id}/messages?{query}", headers=tenant.headers
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON


def test_every_seq_in_a_query_string_is_documented_as_0_to_max_seq(
    document: dict[str, Any],
) -> None:
    # Litestar dropped the 0 of an optional parameter; schemathesis then sent -1 as valid.
    seqs = [
        (method, path, parameter["name"], parameter["schema"])
        for method, path, operation in _operations(document)
        for parameter in operation.get("parameters", ())
        if parameter["in"] == "query"
        and parameter["name"]
        in ("after_seq", "before_seq", "expected_last_seq", "leaf_seq", "parent_seq")
    ]
    assert len(seqs) >= 9, seqs  # history (4), appends (2), truncate (2), pop
    for method, path, name, schema in seqs:
        assert (schema["minimum"], schema["maximum"]) == (0, MAX_SEQ), (method, path, name)


def test_branches_and_forks_are_documented(document: dict[str, Any]) -> None:
    history = document["paths"]["/v1/sessions/{session_id}/messages"]["get"]
    parameters = {parameter["name"]: parameter for parameter in history["parameters"]}
    branch = parameters["branch"]["schema"]
    assert {"active", "all"} <= set(
        value for option in branch.get("oneOf", [branch]) for value in option.get("enum", ())
    )
    fork = document["paths"]["/v1/sessions/{session_id}/fork"]["post"]
    assert {"201", "400", "404", "409"} <= set(fork["responses"])
    schemas = document["components"]["schemas"]
    seq_fields = [
        ("MessageAppend", "parent_seq"),
        ("MessageBatch", "parent_seq"),
        ("SessionUpdate", "head_seq"),
        ("SessionFork", "at_seq"),
    ]
    for shape, field in seq_fields:
        schema = schemas[shape]["properties"][field]
        assert (schema["minimum"], schema["maximum"]) == (0, MAX_SEQ), (shape, field)
    assert "parent_seq" in schemas["MessageRead"]["required"]
    assert "head_seq" in schemas["SessionRead"]["required"]


def test_the_document_describes_the_api_not_its_own_routes(document: dict[str, Any]) -> None:
    assert not [path for path in document["paths"] if path.startswith("/schema")]
    assert "/v1/sessions" in document["paths"]
