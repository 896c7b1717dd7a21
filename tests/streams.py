"""Reading the portal's chat stream (an async iterator of text deltas) from a test's sync code."""
from __future__ import annotations

from collections.abc import AsyncIterator

from asgiref.sync import async_to_sync


def stream_read(stream: AsyncIterator[str], into: list[str] | None = None) -> list[str]:
    """Every delta of `stream`; `into` gets each as it comes (what arrived before an error stays there)."""
    into = [] if into is None else into

    async def read() -> None:
        async for delta in stream:
            into.append(delta)

    async_to_sync(read)()
    return into
