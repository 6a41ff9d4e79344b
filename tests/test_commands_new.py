"""`/customgpt new`: in a DM it starts the DM's next conversation at once (and keeps the old
one when CustomGPT cannot start one); in a channel, where every mention already starts a
conversation, it changes nothing, so it can never reset somebody else's thread."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import redis.asyncio as redis

from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.test_commands import run

StartBot = Callable[..., Awaitable[RunningBot]]


async def session_of(redis_client: redis.Redis, team: str, channel: str, thread: str) -> str:
    stored = await redis_client.get(f"cgpt:{team}:conv:{channel}:{thread}")
    assert stored is not None
    return str(json.loads(stored)["session_id"])


async def test_new_in_a_channel_changes_nobodys_thread(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    mine = await bot.mention("first question", user="U1")
    theirs = await bot.mention("another question", user="U2")
    await bot.idle()
    before = {t: await session_of(redis_client, bot.team, "C1", t) for t in (mine, theirs)}

    ack, later = await run(bot, slack, "new", user="U1")
    # Whoever asks next, in either thread, goes on with their own conversation.
    await bot.mention("a follow-up", user="U2", thread_ts=theirs)
    await bot.mention("my follow-up", user="U1", thread_ts=mine)
    await bot.idle()

    assert "every new mention" in ack and later == []
    assert len(customgpt.conversations) == 2
    for thread, session in before.items():
        assert await session_of(redis_client, bot.team, "C1", thread) == session
    assert customgpt.prompts(before[theirs]) == ["another question", "a follow-up"]
    assert customgpt.prompts(before[mine]) == ["first question", "my follow-up"]


async def test_new_in_a_dm_starts_the_next_conversation_itself(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    await bot.message("first question", channel="D1", channel_type="im")
    await bot.idle()
    old = await session_of(redis_client, bot.team, "D1", "dm")

    ack, later = await run(bot, slack, "new", channel="D1")
    new = await session_of(redis_client, bot.team, "D1", "dm")
    await bot.message("second question", channel="D1", channel_type="im")
    await bot.idle()

    assert ack == "" and len(later) == 1
    assert "next question here starts a fresh conversation" in later[0]
    assert new != old and set(customgpt.conversations) == {old, new}
    assert customgpt.prompts(new) == ["second question"]
    assert await redis_client.ttl(f"cgpt:{bot.team}:conv:D1:dm") > 29 * 86400


async def test_new_in_a_dm_keeps_the_conversation_when_customgpt_fails(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    await bot.message("first question", channel="D1", channel_type="im")
    await bot.idle()
    old = await session_of(redis_client, bot.team, "D1", "dm")
    customgpt.fail_next(r"^/projects/\d+/conversations$", 500)

    _, later = await run(bot, slack, "new", channel="D1")
    await bot.message("second question", channel="D1", channel_type="im")
    await bot.idle()

    assert len(later) == 1 and "CustomGPT had a problem" in later[0]
    assert "fresh conversation" not in later[0]
    assert await session_of(redis_client, bot.team, "D1", "dm") == old
    assert customgpt.prompts(old) == ["first question", "second question"]


async def test_new_in_a_dm_without_any_project_says_how_to_bind_one(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(customgpt_project_id=None)
    ack, later = await run(bot, slack, "new", channel="D1")
    assert "No knowledge base answers here yet" in ack and later == []
    assert customgpt.conversations == {}
