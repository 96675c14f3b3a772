"""The Python client against a running service: every operation answers typed results, errors
are exceptions carrying the problem JSON, listings are walked by cursor, and the sync and async
clients behave alike."""

from __future__ import annotations

from datetime import datetime

import pytest

from chat_sessions_client import (
    UNSET,
    AsyncChatSessionsClient,
    AuthenticationError,
    BadRequestError,
    ChatSessionsClient,
    ConflictError,
    Message,
    NewMessage,
    NotFoundError,
    PreconditionFailedError,
    Session,
)
from clients.conftest import Service

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def test_sessions_messages_and_state_round_trip(service: Service) -> None:
    with ChatSessionsClient(service.base_url, service.api_key) as client:
        made = client.create_session(external_id="app/u1/c1", user_id="u1", traits={"plan": "pro"})
        again = client.create_session(external_id="app/u1/c1", title="ignored")
        assert isinstance(made, Session) and made.created and again.created is False
        assert again.id == made.id and again.title is None
        assert client.find_session("app/u1/c1").id == made.id  # type: ignore[union-attr]
        assert client.find_session("app/u1/nope") is None

        parts = [{"type": "text", "text": "What is this?"}, IMAGE]
        question = client.append_message(made.id, "user", parts, metadata={"k": 1})
        answer = client.append_message(
            made.id,
            "assistant",
            "A pixel.",
            item={"type": "message", "role": "assistant", "id": "msg_1"},
            token_count=3,
            traits_patch={"step": 2},
            user_traits_patch={"seen": True},
            expected_last_seq=1,
        )
        assert isinstance(question, Message) and question.content == parts
        assert (question.seq, answer.seq) == (1, 2)
        assert answer.item == {"type": "message", "role": "assistant", "id": "msg_1"}
        assert isinstance(answer.created_at, datetime)

        session = client.get_session(made.id)
        assert session.traits == {"plan": "pro", "step": 2} and session.message_count == 2
        assert client.get_user_traits("u1").traits == {"seen": True}
        assert [m.seq for m in client.list_messages(made.id, order="desc", limit=1).data] == [2]
        context = client.get_context(made.id, max_messages=1)
        assert [m.as_dict() for m in context] == [{"role": "assistant", "content": "A pixel."}]

        changed = client.update_session(
            made.id, title="Trip", traits={"plan": None}, if_match=session.version
        )
        assert changed.title == "Trip" and changed.traits == {"step": 2}
        assert client.update_session(made.id, title=UNSET).title == "Trip"
        assert client.replace_traits(made.id, {"a": 1}).traits == {"a": 1}


def test_history_iterates_over_every_page_in_order(service: Service) -> None:
    with ChatSessionsClient(service.base_url, service.api_key) as client:
        session = client.create_session()
        batch = [NewMessage("user", f"m{n}") for n in range(7)]
        stored = client.append_messages(session.id, batch)
        assert [m.seq for m in stored] == list(range(1, 8))
        assert [m.content for m in client.iter_messages(session.id, limit=3)] == [
            f"m{n}" for n in range(7)
        ]
        newest_first = client.iter_messages(session.id, order="desc", limit=2)
        assert [m.seq for m in newest_first] == list(range(7, 0, -1))
        for _ in range(3):
            client.create_session(user_id="pager")
        assert len(list(client.iter_sessions(user_id="pager", limit=2))) == 3


def test_pop_truncate_tool_calls_search_export_stats_and_erasure(service: Service) -> None:
    with ChatSessionsClient(service.base_url, service.api_key) as client:
        session = client.create_session(user_id="u-erase", external_id="x-1")
        client.append_messages(
            session.id,
            [{"role": "user", "content": "find hotels in alfama"}, NewMessage("assistant", "ok")],
        )
        popped = client.pop_message(session.id, expected_last_seq=2)
        assert (popped.seq, popped.content) == (2, "ok")
        with pytest.raises(PreconditionFailedError) as stale:
            client.pop_message(session.id, expected_last_seq=2)
        assert stale.value.status == 412 and stale.value.problem["status"] == 412

        call = client.create_tool_call(session.id, "call_1", "search", arguments={"q": "x"})
        done = client.update_tool_call(session.id, call.id, "completed", result={"n": 1})
        assert done.status == "completed" and done.completed_at is not None
        assert [c.id for c in client.iter_tool_calls(session.id)] == [call.id]

        hits = client.search("alfama hotels")
        assert [(hit.session_id, hit.seq) for hit in hits] == [(session.id, 1)]

        exported = client.export_session(session.id)
        assert [m.content for m in exported.messages] == ["find hotels in alfama"]
        with pytest.raises(ConflictError):  # the external_id is this tenant's already
            client.import_session(exported)
        exported.document["session"]["external_id"] = None
        copy = client.import_session(exported)
        assert copy.id != session.id and copy.message_count == 1

        assert client.get_stats().sessions == 2
        assert client.truncate_messages(copy.id, 0) == 1
        assert client.erase_user("u-erase") == 2
        with pytest.raises(NotFoundError) as gone:
            client.get_session(session.id)
        assert gone.value.problem["detail"] == "session not found"


def test_errors_carry_the_problem_document(service: Service) -> None:
    with ChatSessionsClient(service.base_url, service.api_key) as client:
        session = client.create_session()
        with pytest.raises(BadRequestError) as bad:
            client.append_message(session.id, "wizard", "hi")
        assert bad.value.status == 400 and "role" in bad.value.detail
        with pytest.raises(ValueError, match="cannot be used in a path"):
            client.get_user_traits("team/alice")
    stranger = ChatSessionsClient(service.base_url, "cs_wrong")
    with stranger, pytest.raises(AuthenticationError) as refused:
        stranger.get_stats()
    assert "cs_wrong" not in str(refused.value)


async def test_the_async_client_does_what_the_sync_one_does(service: Service) -> None:
    async with AsyncChatSessionsClient(service.base_url, service.api_key) as client:
        session = await client.create_session(external_id="async-1", user_id="ua")
        await client.append_messages(session.id, [NewMessage("user", f"m{n}") for n in range(5)])
        seqs = [message.seq async for message in client.iter_messages(session.id, limit=2)]
        assert seqs == [1, 2, 3, 4, 5]
        started = await client.append_message(session.id, "assistant", "", status="in_progress")
        ack = await client.append_delta(session.id, started.id, "Hel")
        await client.append_delta(session.id, started.id, "lo")
        closed = await client.close_message(session.id, started.id, token_count=2)
        assert (ack.length, closed.content, closed.status) == (3, "Hello", "completed")
        patched = await client.patch_user_traits("ua", {"x": 1})
        replaced = await client.replace_user_traits("ua", {"y": 2}, if_match=patched.version)
        assert replaced.traits == {"y": 2} and replaced.version == patched.version + 1
        with pytest.raises(NotFoundError):
            await client.get_message(session.id, "no-such-message")
        await client.delete_session(session.id)
        assert await client.find_session("async-1") is None
