"""Branches and fork through the Python client against a running service: editing a question
and regenerating an answer start branches, history reads follow the head (or the branch, the
alternatives, or everything asked for), switching the head flips back, a fork copies one
branch."""

from __future__ import annotations

import pytest

from chat_sessions_client import (
    AsyncChatSessionsClient,
    BadRequestError,
    ChatSessionsClient,
    NewMessage,
)
from clients.conftest import Service


def _texts(messages: object) -> list[str]:
    return [m.content for m in messages]  # type: ignore[attr-defined]


def test_edit_regenerate_flip_and_fork(service: Service) -> None:
    with ChatSessionsClient(service.base_url, service.api_key) as client:
        session = client.create_session(title="trip", traits={"plan": "pro"})
        assert session.head_seq == 0
        first = client.append_messages(
            session.id, [NewMessage("user", "Paris?"), NewMessage("assistant", "Lovely.")]
        )
        assert [(m.seq, m.parent_seq) for m in first] == [(1, 0), (2, 1)]

        # Regenerate the answer: a sibling of seq 2, which becomes the head.
        regenerated = client.append_message(session.id, "assistant", "Rainy.", parent_seq=1)
        assert (regenerated.seq, regenerated.parent_seq) == (3, 1)
        assert client.get_session(session.id).head_seq == 3
        assert _texts(client.iter_messages(session.id)) == ["Paris?", "Rainy."]
        alternatives = client.list_messages(session.id, parent_seq=1).data
        assert [m.seq for m in alternatives] == [2, 3]

        # Edit the question: a new first message, and an answer that follows it.
        edited = client.append_message(session.id, "user", "Rome?", parent_seq=0)
        client.append_message(session.id, "assistant", "Sunny.")
        assert edited.parent_seq == 0
        assert _texts(client.iter_messages(session.id)) == ["Rome?", "Sunny."]
        assert _texts(client.iter_messages(session.id, branch="all", limit=2)) == [
            "Paris?",
            "Lovely.",
            "Rainy.",
            "Rome?",
            "Sunny.",
        ]
        assert _texts(client.iter_messages(session.id, leaf_seq=2)) == ["Paris?", "Lovely."]
        assert client.get_session(session.id).message_count == 5

        # Flip back to the first question: the head moves to its newest descendant.
        flipped = client.update_session(session.id, head_seq=1)
        assert flipped.head_seq == 3
        assert _texts(client.iter_messages(session.id)) == ["Paris?", "Rainy."]
        assert [m.content for m in client.get_context(session.id)] == ["Paris?", "Rainy."]

        # Fork the first answer's branch: a new session, renumbered, the source untouched.
        forked = client.fork(session.id, at_seq=2, title="trip, take 2")
        assert forked.id != session.id and forked.created
        assert (forked.title, forked.traits, forked.head_seq) == (
            "trip, take 2",
            {"plan": "pro"},
            2,
        )
        copied = list(client.iter_messages(forked.id))
        assert [(m.seq, m.parent_seq, m.content) for m in copied] == [
            (1, 0, "Paris?"),
            (2, 1, "Lovely."),
        ]
        assert client.fork(session.id).message_count == 2  # the head's branch: Paris?, Rainy.
        assert client.get_session(session.id).message_count == 5

        with pytest.raises(BadRequestError):
            client.append_message(session.id, "user", "lost", parent_seq=99)
        with pytest.raises(BadRequestError):
            client.fork(session.id, at_seq=99)


async def test_the_async_client_reads_and_switches_branches(service: Service) -> None:
    async with AsyncChatSessionsClient(service.base_url, service.api_key) as client:
        session = await client.create_session()
        await client.append_message(session.id, "user", "Hi")
        await client.append_message(session.id, "assistant", "Hello.")
        await client.append_message(session.id, "assistant", "Hey.", parent_seq=1)
        assert [m.content async for m in client.iter_messages(session.id)] == ["Hi", "Hey."]
        assert (await client.update_session(session.id, head_seq=2)).head_seq == 2
        page = await client.list_messages(session.id, order="desc", limit=1)
        assert [m.content for m in page.data] == ["Hello."]
        snapshot = await client.get_snapshot(session.id, messages=1, user_traits=["nobody"])
        assert [m.content for m in snapshot.messages.data] == ["Hello."]  # the active branch
        assert snapshot.session.head_seq == 2 and snapshot.messages.next_cursor is not None
        assert [(u.user_id, u.version) for u in snapshot.user_traits] == [("nobody", 0)]
        forked = await client.fork(session.id, title=None)
        assert forked.title is None and forked.message_count == 2
