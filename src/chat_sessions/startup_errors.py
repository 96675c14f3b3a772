"""One line for each way the command's start-up can fail: a setting, or a database it cannot
use (no traceback, never a value or a password)."""

from __future__ import annotations

import os

import pydantic
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from chat_sessions.settings import Settings


def database_named(settings: Settings) -> str:
    """The database as an operator named it, without its password."""
    if not settings.database_url:
        return settings.database_path
    try:
        return make_url(settings.database_url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "DATABASE_URL"


def describe_database_error(settings: Settings, error: OSError | SQLAlchemyError) -> str:
    """One line: which database, and what is wrong with it."""
    if isinstance(error, FileExistsError | NotADirectoryError) and error.filename:
        # Creating the file's folders met a file where a folder must be.
        reason = f"{error.filename} is not a folder"
    elif isinstance(error, OSError):
        reason = os.strerror(error.errno) if error.errno else str(error) or type(error).__name__
        if error.filename:
            reason += f": {error.filename}"
    else:
        # The driver's own words, without SQLAlchemy's statement and background link.
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
    return f"error: database {database_named(settings)}: {reason}"


def describe_settings_error(error: pydantic.ValidationError) -> str:
    """One line naming each bad setting and the rule; never the value."""
    problems = [
        f"{'.'.join(str(part) for part in item['loc']).upper()} "
        f"{item['msg'].removeprefix('Value error, ')}"
        for item in error.errors()
    ]
    return "error: setting " + "; ".join(problems)
