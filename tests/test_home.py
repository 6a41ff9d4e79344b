"""The App Home tab: opened in Slack (`app_home_opened`), published with `views.publish` to the
fake Slack, which refuses what Slack refuses. What the tab shows is checked as a person reads
it; the bound-channel index is checked in Redis as bindings come and go."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as redis
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.home import DefaultProject, HomeFacts, home_view
from tests.clocks import FastClock
from tests.driver import RunningBot, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.test_commands import SITEMAP, run

StartBot = Callable[..., Awaitable[RunningBot]]
ADMIN = "UADMIN"


async def open_home(bot: RunningBot, slack: FakeSlack, user: str, tab: str = "home") -> None:
    ts = next_ts()
    event = {"type": "app_home_opened", "user": user, "channel": "D9", "tab": tab, "event_ts": ts}
    status, _ = await bot.event(event)
    assert status == 200


async def home_of(bot: RunningBot, slack: FakeSlack, user: str) -> str:
    """Open the Home tab as `user` and read it: every text block, in order."""
    before = len(slack.calls_to("views.publish"))
    await open_home(bot, slack, user)
    await slack.wait_for(lambda: len(slack.calls_to("views.publish")) > before)
    call = slack.calls_to("views.publish")[-1]
    assert call.ok and call.params["user_id"] == user
    view = slack.home_views[user]
    return "\n".join(_texts(view["blocks"]))


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [str(b["text"]["text"]) for b in blocks if isinstance(b.get("text"), dict)]


@pytest.fixture
async def workspace(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> tuple[RunningBot, FastClock]:
    """A workspace with admins, one channel bound by hand and one project still indexing
    (its watch parked at its first wait)."""
    clock = FastClock()
    bot = await start_bot(clock=clock, customgpt_admin_users=frozenset({ADMIN}))
    customgpt.add_project(43, "Billing FAQ")
    _, later = await run(bot, slack, "use 43", channel="C7", user=ADMIN)
    assert "now asks" in later[0]
    clock.hold()
    customgpt.default_index_steps = [(3, 1, 0), (10, 10, 10)]
    await bot.command(
        f"create Docs Site {SITEMAP}",
        response_url=slack.response_url("c"),
        channel="C8",
        user=ADMIN,
    )
    await slack.wait_for(lambda: any("3 pages found" in m.text for m in slack.messages))
    return bot, clock


async def test_an_admin_sees_the_default_project_bound_channels_indexing_help_and_how_to_bind(
    workspace: tuple[RunningBot, FastClock], slack: FakeSlack
) -> None:
    bot, _ = workspace
    home = await home_of(bot, slack, ADMIN)

    assert "*Acme Docs* (`42`)" in home and "answering questions" in home  # the default
    assert "• <#C7> → *Billing FAQ* (`43`)" in home  # a link Slack renders, private or not
    assert "*Docs Site* (`1000`) from <@UADMIN>, then <#C8> asks it" in home  # indexing
    assert messages.HELP in home
    assert "*For admins*" in home and "/customgpt use <project-id>" in home


async def test_anyone_else_sees_the_same_without_the_admin_note(
    workspace: tuple[RunningBot, FastClock], slack: FakeSlack
) -> None:
    bot, _ = workspace
    home = await home_of(bot, slack, "U2")
    assert "<#C7>" in home and "Docs Site" in home and messages.HELP in home
    assert "For admins" not in home
    assert set(slack.home_views) == {"U2"}  # published for the one who opened it


async def test_the_channel_index_follows_bind_and_unbind(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    bot = await start_bot(clock=FastClock())
    customgpt.add_project(43, "Billing FAQ")
    for channel in ("C7", "C9"):
        await run(bot, slack, "use 43", channel=channel)
    index = f"cgpt:{bot.team}:bound-channels"
    assert await redis_client.smembers(index) == {"C7", "C9"}

    await run(bot, slack, "use default", channel="C7")
    assert await redis_client.smembers(index) == {"C9"}
    home = await home_of(bot, slack, "U1")
    assert "<#C9>" in home and "<#C7>" not in home

    # A project that finishes indexing binds its channel: the index has it too.
    customgpt.default_index_steps = [(10, 10, 10)]
    await run(bot, slack, f"create Docs {SITEMAP}", channel="C5")
    assert await redis_client.smembers(index) == {"C5", "C9"}
    home = await home_of(bot, slack, "U1")
    assert "• <#C5> → *Docs* (`1000`)" in home and "*Projects still indexing*\n_None._" in home


async def test_customgpt_failing_shows_a_line_in_the_tab_not_an_empty_one(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.fail_next(r"^/projects/42$", 401)
    home = await home_of(bot, slack, "U1")
    assert "*Default project* `42`" in home
    assert "CustomGPT rejected the API key" in home
    assert "*Channels bound to a project*" in home and messages.HELP in home

    customgpt.fail_next(r"^/projects/42", 503, times=5)
    home = await home_of(bot, slack, "U1")
    assert "error 503" in home


async def test_no_default_project_says_so(start_bot: StartBot, slack: FakeSlack) -> None:
    bot = await start_bot(customgpt_project_id=None)
    home = await home_of(bot, slack, "U1")
    assert "*Default project*: none is set" in home


async def test_only_the_home_tab_is_published(bot: RunningBot, slack: FakeSlack) -> None:
    await open_home(bot, slack, "U1", tab="messages")
    await bot.idle()
    assert not slack.calls_to("views.publish")


async def test_a_long_list_of_channels_stays_within_slacks_limits(slack: FakeSlack) -> None:
    bound: list[tuple[str, str, str | None]] = [
        (f"C{i:08d}", str(i), "A rather long project name " * 3) for i in range(400)
    ]
    facts = HomeFacts(DefaultProject("42", failure="x"), bound, [], False, is_admin=True)
    view = home_view(facts)
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    await client.views_publish(user_id="U1", view=view)  # the fake refuses what Slack would
    text = "\n".join(_texts(view["blocks"]))
    assert "<#C00000000>" in text and "more_" in text


async def test_the_fake_refuses_views_slack_would_refuse(slack: FakeSlack) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
    refused = [
        {"type": "modal", "blocks": [section]},
        {"type": "home", "blocks": [section] * 101},
        {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}]},
        {"type": "home", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]},
    ]
    for view in refused:
        with pytest.raises(SlackApiError):
            await client.views_publish(user_id="U1", view=view)
    assert slack.home_views == {}
