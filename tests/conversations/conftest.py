"""Fixtures: OpenAI's own SDKs, as a user makes them, on the test's app (openai_sdk.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from litestar import Litestar

from openai_sdk import async_openai, sync_openai
from support import Tenant


@pytest.fixture
async def sdk(app: Litestar, tenant: Tenant) -> AsyncIterator[openai.OpenAI]:
    client = sync_openai(app, tenant.key)
    yield client
    client.close()


@pytest.fixture
async def async_sdk(app: Litestar, tenant: Tenant) -> AsyncIterator[openai.AsyncOpenAI]:
    client = async_openai(app, tenant.key)
    yield client
    await client.close()
