"""A session's snapshot: the session, its newest messages and the traits of the end-users the
caller names, in one read. What an agent framework loads to resume a session (the ADK
adapter's `get_session`: session state, `user:` and `app:` state, recent events) otherwise
takes a request each."""

from __future__ import annotations

from chat_sessions.db import Transaction
from chat_sessions.messages import history
from chat_sessions.messages.schemas import MessagePage
from chat_sessions.sessions.schemas import SessionSnapshot
from chat_sessions.sessions.service import get_session
from chat_sessions.users.service import get_user_traits


async def read_snapshot(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    newest_messages: int,
    user_ids: list[str],
) -> SessionSnapshot:
    """The session (404 when the tenant has none such), the `newest_messages` last messages of
    its active branch, newest first, with the cursor that reads further back (`order=desc`),
    and each named end-user's traits, in the order named."""
    session = await get_session(tx, tenant_id=tenant_id, session_id=session_id)
    page = MessagePage(data=[], next_cursor=None)
    if newest_messages > 0:
        found, next_cursor = await history.list_messages(
            tx,
            tenant_id=tenant_id,
            session_id=session_id,
            order="desc",
            after_seq=None,
            before_seq=None,
            role=None,
            limit=newest_messages,
            cursor=None,
        )
        page = MessagePage(data=found, next_cursor=next_cursor)
    traits = [
        await get_user_traits(tx, tenant_id=tenant_id, user_id=user_id)
        for user_id in dict.fromkeys(user_ids)
    ]
    return SessionSnapshot(session=session, messages=page, user_traits=traits)
