"""The storage types' own fast conversions agree with what SQLAlchemy stores and reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime, create_engine

from chat_sessions.models import UTCDateTime

VALUES = [
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: still six digits stored
    datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 6, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))),  # another day in UTC
]


@pytest.mark.parametrize("value", VALUES, ids=str)
def test_sqlite_timestamps_are_stored_as_text_sqlalchemy_would_store_and_read_back(
    value: datetime,
) -> None:
    dialect = create_engine("sqlite://").dialect
    ours = UTCDateTime().dialect_impl(dialect)
    stock = DateTime().dialect_impl(dialect)
    stored = ours.bind_processor(dialect)(value)

    assert stored == stock.bind_processor(dialect)(value.astimezone(UTC).replace(tzinfo=None))
    read = ours.result_processor(dialect, None)(stored)
    assert read == value
    assert read.tzinfo is not None and read.utcoffset() == timedelta(0)
