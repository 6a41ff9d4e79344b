"""Citation ids → titles and links, cached in the store.

A look-up that fails or takes too long is dropped: sources decorate an answer, they never
hold it back.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

from bot import keys
from bot.customgpt import CustomGPTClient, CustomGPTError
from bot.slack_format import Source
from bot.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT = 5.0
MAX_LOOKUPS = 20


class CitationResolver:
    def __init__(self, store: Store, ttl: int) -> None:
        self._store = store
        self._ttl = ttl

    async def resolve(
        self, customgpt: CustomGPTClient, team: str, project_id: str, ids: Sequence[str]
    ) -> list[Source]:
        """Sources in citation order, looked up with the workspace's client; unknown or
        failed ones are left out."""
        unique = list(dict.fromkeys(ids))[:MAX_LOOKUPS]
        if not unique:
            return []
        tasks = [asyncio.create_task(self._one(customgpt, team, project_id, cid)) for cid in unique]
        done, pending = await asyncio.wait(tasks, timeout=LOOKUP_TIMEOUT)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning("%d citation look-ups timed out", len(pending))
        return [s for t in tasks if t in done and (s := t.result()) is not None]

    async def _one(
        self, customgpt: CustomGPTClient, team: str, project_id: str, citation_id: str
    ) -> Source | None:
        key = keys.citation(team, project_id, citation_id)
        try:
            cached = await self._store.get(key)
        except StoreUnavailable:
            cached = None  # the cache is an optimisation; CustomGPT still knows
        if cached is not None:
            data = json.loads(cached)
            return Source(title=data.get("title"), url=data.get("url"))
        try:
            citation = await customgpt.citation(project_id, citation_id)
        except CustomGPTError as error:
            log.info("citation %s not resolved: %s", citation_id, error.status)
            return None
        try:
            await self._store.set(
                key, json.dumps({"title": citation.title, "url": citation.url}), ttl=self._ttl
            )
        except StoreUnavailable:
            log.info("citation %s not cached: store unreachable", citation_id)
        return Source(title=citation.title, url=citation.url)
