"""How the ADK session service lays ADK's data onto chat-sessions (integrations/adk.py uses it):
the names it gives sessions and end-users, how state values are kept, and events as messages.

One tenant (the client's API key) holds any number of ADK apps:

- an ADK session is the service session whose `external_id` is
  `adk/<app_name>/<user_id>/<session_id>`, so a user's sessions, and an app's, are one index
  range (`external_id_prefix`);
- its `user:` state is the end-user traits of `adk:<app_name>:<user_id>` (the service
  session's `user_id`), so an append changes it in the same transaction
  (`user_traits_patch`), and erasing that end-user erases their ADK sessions and state;
- its `app:` state is the end-user traits of `adk:<app_name>` (a name no user gets: it has one
  part fewer);
- its session state is the session's traits, with the service's own bookkeeping under `_adk`
  (the last update time ADK sees).

In each name, `%`, `/` and `:` inside a part are written `%25`, `%2F`, `%3A`, so no two ADK
names meet. State values are stored wrapped in a one-element array (`{"k": [v]}`): a JSON
Merge Patch replaces arrays whole, so a `state_delta` replaces a value, as ADK does, where a
bare object value would be merged into the old one; and a `None` value is kept, not removed."""

from __future__ import annotations

from typing import Any

from google.adk.events.event import Event
from google.adk.sessions.state import State
from google.genai import types
from pydantic_core import to_jsonable_python

from chat_sessions_client.integrations._keyed import text_of
from chat_sessions_client.models import Message, NewMessage

BOOKKEEPING = "_adk"  # the session traits key holding what ADK's Session has beside state


def escape(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F").replace(":", "%3A")


def unescape(part: str) -> str:
    return part.replace("%3A", ":").replace("%2F", "/").replace("%25", "%")


def sessions_prefix(app_name: str, user_id: str | None = None) -> str:
    """The `external_id_prefix` of an app's sessions, or of one of its users'."""
    prefix = f"adk/{escape(app_name)}/"
    return prefix if user_id is None else f"{prefix}{escape(user_id)}/"


def external_id(app_name: str, user_id: str, session_id: str) -> str:
    return f"{sessions_prefix(app_name, user_id)}{escape(session_id)}"


def names_of(external: str) -> tuple[str, str, str]:
    """(app_name, user_id, session_id) of a session's `external_id`."""
    _, app_name, user_id, session_id = external.split("/")
    return unescape(app_name), unescape(user_id), unescape(session_id)


def end_user(app_name: str, user_id: str) -> str:
    """The service end-user holding a user's `user:` state."""
    return f"adk:{escape(app_name)}:{escape(user_id)}"


def app_end_user(app_name: str) -> str:
    """The service end-user holding an app's `app:` state."""
    return f"adk:{escape(app_name)}"


def scoped(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(app, user, session) parts of a state or delta, as stored (prefixes off, values
    wrapped, JSON-safe); `temp:` keys are never stored."""
    app: dict[str, Any] = {}
    user: dict[str, Any] = {}
    session: dict[str, Any] = {}
    for key, value in to_jsonable_python(state, fallback=repr).items():
        if key.startswith(State.APP_PREFIX):
            app[key.removeprefix(State.APP_PREFIX)] = [value]
        elif key.startswith(State.USER_PREFIX):
            user[key.removeprefix(State.USER_PREFIX)] = [value]
        elif not key.startswith(State.TEMP_PREFIX):
            session[key] = [value]
    return app, user, session


def unwrap(traits: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    return {
        prefix + key: value[0]
        for key, value in traits.items()
        if key != BOOKKEEPING and isinstance(value, list) and len(value) == 1
    }


def merged_state(
    session_traits: dict[str, Any], user_traits: dict[str, Any], app_traits: dict[str, Any]
) -> dict[str, Any]:
    return {
        **unwrap(session_traits),
        **unwrap(app_traits, State.APP_PREFIX),
        **unwrap(user_traits, State.USER_PREFIX),
    }


def last_update_time(session_traits: dict[str, Any]) -> float:
    return float(session_traits.get(BOOKKEEPING, {}).get("last_update_time", 0.0))


def bookkeeping(update_time: float) -> dict[str, Any]:
    return {BOOKKEEPING: {"last_update_time": update_time}}


def event_message(event: Event) -> NewMessage:
    """The message that stores an event: the event whole as its `item`; the text of its parts
    as content (what search and `/context` read); the user's role for the user's events."""
    item = event.model_dump(mode="json", exclude_none=True)
    parts = event.content.parts if event.content and event.content.parts else []
    text = text_of([{"text": part.text} for part in parts if part.text and not part.thought])
    return NewMessage("user" if event.author == "user" else "assistant", text, item=item)


def message_event(message: Message) -> Event:
    """A stored message as an event: its item, or, for a message written without one (through
    the plain API), a text event of its author."""
    if message.item is not None:
        return Event.model_validate(message.item)
    text = message.content if isinstance(message.content, str) else text_of(message.content)
    author = "user" if message.role == "user" else "model"
    return Event(
        id=message.id,
        author=author,
        timestamp=message.created_at.timestamp(),
        content=types.Content(role=author, parts=[types.Part(text=text)]),
    )
