"""Which project a channel (or DM) asks: every binding is written here.

A binding is one store key per channel (`keys.binding`); beside it the workspace keeps an
index of the channels that have one (`keys.bound_channels`), so the App Home can list them
without scanning every key. Both change together here, and the listing trusts the bindings
over the index: an index entry whose binding is gone is dropped when listed.
"""

from __future__ import annotations

from bot import keys
from bot.store import Store


async def bind(store: Store, team: str, channel: str, project_id: str) -> None:
    """`channel` asks `project_id` from now on (no TTL: a binding lasts until changed)."""
    await store.set(keys.binding(team, channel), project_id)
    await store.add_member(keys.bound_channels(team), channel)


async def unbind(store: Store, team: str, channel: str) -> None:
    """`channel` asks the default project again."""
    await store.delete(keys.binding(team, channel))
    await store.remove_member(keys.bound_channels(team), channel)


async def bound_channels(store: Store, team: str) -> list[tuple[str, str]]:
    """(channel, project id) of every bound channel in the workspace, by channel id."""
    bound = []
    for channel in sorted(await store.members(keys.bound_channels(team))):
        project_id = await store.get(keys.binding(team, channel))
        if project_id is None:
            await store.remove_member(keys.bound_channels(team), channel)
        else:
            bound.append((channel, project_id))
    return bound
