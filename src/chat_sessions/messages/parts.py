"""Content parts: the array form of a message's content, as the current LLM APIs send it.

A part is a JSON object with a string `type`. The types below are checked for the fields their
API requires; any other type is stored as it is (forward compatible: a provider's new part
type needs no release of ours). The parts are kept exactly as sent; the text of the text parts,
joined by newlines, is what the `content` column holds, so search, previews and /context read
text without knowing about parts.
"""

from __future__ import annotations

from typing import Any

from chat_sessions.errors import BadRequest

TEXT_TYPES = frozenset({"text", "input_text", "output_text"})


def _string(field: str) -> Any:
    def check(part: dict[str, Any]) -> str | None:
        return None if isinstance(part.get(field), str) else f"a string {field!r}"

    return check


def _image_url(part: dict[str, Any]) -> str | None:
    image_url = part.get("image_url")
    if isinstance(image_url, dict) and isinstance(image_url.get("url"), str):
        return None
    return "an object 'image_url' with a string 'url'"


def _input_image(part: dict[str, Any]) -> str | None:
    if isinstance(part.get("image_url"), str) or isinstance(part.get("file_id"), str):
        return None
    return "a string 'image_url' or 'file_id'"


def _input_audio(part: dict[str, Any]) -> str | None:
    audio = part.get("input_audio")
    if isinstance(audio, dict) and isinstance(audio.get("data"), str) and "format" in audio:
        return None
    return "an object 'input_audio' with 'data' and 'format'"


def _file(part: dict[str, Any]) -> str | None:
    # Chat Completions nests the file (`{"file": {"file_id" | "file_data", ...}}`); the
    # Responses API puts `file_id`, `file_data` or `file_url` on the part itself.
    if isinstance(part.get("file"), dict) or any(
        isinstance(part.get(field), str) for field in ("file_id", "file_data", "file_url")
    ):
        return None
    return "an object 'file' or a string 'file_id'"


# What each known type needs; the function answers what is missing, or None.
_REQUIRED = {
    "text": _string("text"),
    "input_text": _string("text"),
    "output_text": _string("text"),
    "refusal": _string("refusal"),
    "image_url": _image_url,
    "input_image": _input_image,
    "input_audio": _input_audio,
    "file": _file,
    "input_file": _file,
}


def check_parts(parts: list[dict[str, Any]]) -> None:
    """400 naming the first part without a string `type`, or without what its type needs."""
    for index, part in enumerate(parts):  # objects: the body's type says so (schemas.py)
        kind = part.get("type")
        if not isinstance(kind, str):
            raise BadRequest(f"content[{index}] needs a string 'type'")
        required = _REQUIRED.get(kind)
        missing = required(part) if required is not None else None
        if missing is not None:
            raise BadRequest(f"content[{index}] of type {kind!r} needs {missing}")


def text_of(parts: list[dict[str, Any]]) -> str:
    """The text the parts carry: their text parts, joined by newlines."""
    return "\n".join(part["text"] for part in parts if part["type"] in TEXT_TYPES)
