"""The Home tab says whose CustomGPT account answers and, for admins, offers a button that
opens the key modal; a click from anyone else opens only a refusal. The key modal's
submission is stored for the workspace the request is served as, also when Slack names
another team as the submitter's (a modal opened in a Slack Connect channel)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as redis
from cryptography.fernet import Fernet

from bot import home, key_modal, keys, messages
from tests.clocks import FastClock
from tests.driver import RunningBot, SlackSender, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack, view_problem
from tests.redis_process import RedisProcess
from tests.test_customgpt_keys import (
    ADMIN,
    ENCRYPTION_KEY,
    KEY_A,
    OWN_KEYS,
    add_account_a,
    open_modal,
    submit_key,
)
from tests.test_home import home_of

StartBot = Callable[..., Awaitable[RunningBot]]


@pytest.fixture
def accounts(customgpt: FakeCustomGPT) -> FakeCustomGPT:
    """A CustomGPT account besides the operator's, with one knowledge base."""
    return add_account_a(customgpt)


def key_buttons(slack: FakeSlack, user: str) -> list[dict[str, Any]]:
    """The key buttons on the Home tab `user` sees now."""
    return [
        element
        for block in slack.home_views[user]["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("action_id") == home.KEY_BUTTON
    ]


def home_click(team: str, user: str) -> dict[str, Any]:
    """A click on the Home tab's key button, as Slack sends it (`block_actions` from a view)."""
    return {
        "type": "block_actions",
        "user": {"id": user, "team_id": team},
        "container": {"type": "view", "view_id": "VHOME"},
        "view": {"id": "VHOME", "type": "home", "team_id": team, "blocks": []},
        "actions": [
            {
                "type": "button",
                "action_id": home.KEY_BUTTON,
                "block_id": "key",
                "action_ts": next_ts(),
            }
        ],
        "trigger_id": f"trigger-home-{next_ts()}",
    }


async def click_key_button(bot: RunningBot, team: str, user: str) -> dict[str, Any]:
    """`user` clicks the Home tab's key button (answered with a 200); the click, once the bot
    is idle."""
    click = home_click(team, user)
    assert await bot.action(click) == 200
    await bot.idle()
    return click


async def no_key_yet(start_bot: StartBot, slack: FakeSlack, user: str) -> RunningBot:
    """A bot where workspaces bring their own keys, none connected yet: `user`'s Home tab,
    published, must say so."""
    bot = await start_bot(**OWN_KEYS)
    assert messages.NO_KEY in await home_of(bot, slack, user)
    return bot


async def submit_from_slack_connect(bot: RunningBot, slack: FakeSlack, team: str) -> str:
    """The key modal opened in `team` and KEY_A submitted by ADMIN as Slack does from a channel
    shared with another organisation: the submitter's own team (returned) as `team`, the
    installation's as the view's `app_installed_team_id`. The modal must turn into an update."""
    other = f"{team}X"
    view = await open_modal(bot, slack)
    submitter = SlackSender(bot.url, bot.secret, other, bot.session)
    body = await submit_key(submitter, bot, {**view, "app_installed_team_id": team}, ADMIN)
    assert body["response_action"] == "update"
    return other


async def test_an_admin_connects_the_key_from_the_home_tab_and_the_tab_then_says_so(
    start_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
) -> None:
    bot = await no_key_yet(start_bot, slack, ADMIN)
    (button,) = key_buttons(slack, ADMIN)
    assert button["text"]["text"] == "Connect CustomGPT key"

    click = await click_key_button(bot, team, ADMIN)

    (opened,) = slack.calls_to("views.open")
    assert opened.ok and opened.params["trigger_id"] == click["trigger_id"]
    view = slack.views[-1].view
    assert view["callback_id"] == key_modal.CALLBACK_ID and view_problem(view) is None
    published = len(slack.calls_to("views.publish"))
    body = await submit_key(bot, bot, view, ADMIN)

    assert body["response_action"] == "update"
    stored = await redis_client.get(keys.customgpt_key(team))
    assert stored is not None
    assert json.loads(Fernet(ENCRYPTION_KEY).decrypt(stored.encode()))["api_key"] == KEY_A
    # The tab is shown again, saying a key of the workspace's own is connected, none of it.
    assert len(slack.calls_to("views.publish")) == published + 1
    tab = json.dumps(slack.home_views[ADMIN])
    assert messages.home_key(own=True) in tab and messages.NO_KEY not in tab
    assert KEY_A not in tab and KEY_A[:6] not in tab
    (button,) = key_buttons(slack, ADMIN)
    assert button["text"]["text"] == "Replace CustomGPT key"


async def test_others_see_no_button_and_a_forged_click_opens_only_a_refusal(
    start_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
) -> None:
    bot = await no_key_yet(start_bot, slack, "U1")
    assert key_buttons(slack, "U1") == []

    await click_key_button(bot, team, "U1")

    (refusal,) = [v.view for v in slack.views]
    assert view_problem(refusal) is None
    assert "callback_id" not in refusal and "submit" not in refusal
    assert messages.KEY_NOT_ADMIN_SHORT in json.dumps(refusal)
    assert accounts.requests == []
    assert await redis_client.get(keys.customgpt_key(team)) is None


async def test_with_the_shared_key_the_tab_says_the_bots_account_answers(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(
        customgpt_key_encryption_keys=(ENCRYPTION_KEY,), customgpt_admin_users=frozenset({ADMIN})
    )
    shown = await home_of(bot, slack, ADMIN)

    assert messages.home_key(own=False) in shown
    (button,) = key_buttons(slack, ADMIN)
    assert button["text"]["text"] == "Connect CustomGPT key"


async def test_without_an_encryption_key_the_tab_offers_no_button(
    bot: RunningBot, slack: FakeSlack
) -> None:
    shown = await home_of(bot, slack, "U1")  # everyone is an admin: no allow-list is set

    assert messages.home_key(own=False) in shown
    assert key_buttons(slack, "U1") == []


# -- the workspace a request is served as -------------------------------------------------------


async def test_a_key_submitted_from_a_slack_connect_channel_is_the_installed_workspaces(
    start_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
) -> None:
    """The modal was opened in a channel shared with another organisation: Slack submits it
    with the submitter's own team as `team`, and the installation's team as the view's
    `app_installed_team_id`. The key is this workspace's; the other team gets nothing."""
    bot = await start_bot(**OWN_KEYS)

    other = await submit_from_slack_connect(bot, slack, team)

    assert await redis_client.get(keys.customgpt_key(team)) is not None
    assert await redis_client.get(keys.customgpt_key(other)) is None


async def test_with_the_store_unreachable_the_tab_says_so_and_offers_no_button(
    start_bot: StartBot, slack: FakeSlack, accounts: FakeCustomGPT, own_redis: RedisProcess
) -> None:
    """Whether this workspace has a key cannot be read: the tab still opens, saying why."""
    bot = await start_bot(clock=FastClock(), redis_url=own_redis.url, **OWN_KEYS)
    await own_redis.stop()

    shown = await home_of(bot, slack, ADMIN)

    assert messages.HOME_STORE_DOWN in shown
    assert messages.NO_KEY not in shown and messages.home_key(own=False) not in shown
    assert key_buttons(slack, ADMIN) == []
    assert accounts.requests == []
