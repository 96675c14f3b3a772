"""The range of every integer the API reads, in one place.

Each bound is what both engines store: the counters are `integer` columns, 32-bit signed on
PostgreSQL (SQLite's hold 64 bits), so a seq or a duration above 2**31 - 1 could be stored by
one engine and not the other. The bounds sit on the wire types (msgspec `Meta`) and on the
query parameters (Litestar `QueryParameter`), so the OpenAPI document shows them and a value
outside them is a 400 before any statement runs.
"""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter
from msgspec import Meta

# The largest value of PostgreSQL's `integer`, the type of every counter column.
MAX_INT32 = 2**31 - 1
# A message's seq, and every seq a query or cursor names: the last seq a session hands out.
MAX_SEQ = MAX_INT32
# A tool call's duration: about 24.8 days.
MAX_DURATION_MS = MAX_INT32
# `max_messages`, `max_tokens` and other counts a query carries.
MAX_COUNT = MAX_INT32
# Page sizes: every listing, and the message history.
MAX_PAGE = 100
MAX_HISTORY_PAGE = 1000
# A message's token_count (far above any model's context), and a tenant's limits.
MAX_TOKEN_COUNT = 100_000_000
MAX_TENANT_LIMIT = 1_000_000_000

DurationMs = Annotated[int, Meta(ge=0, le=MAX_DURATION_MS)]
TokenCount = Annotated[int, Meta(ge=0, le=MAX_TOKEN_COUNT)]
TenantLimit = Annotated[int, Meta(ge=1, le=MAX_TENANT_LIMIT)]
PageLimit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)]
