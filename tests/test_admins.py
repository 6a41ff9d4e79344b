"""Who may connect a workspace's CustomGPT key and create or bind projects (bot/admins.py).

With OAuth installs the operator's list cannot name the people of workspaces installing later:
each workspace's own admins and owners may, as Slack says with that workspace's token
(`users.info` on the fake Slack, strict about the scope and the workspace). A plain member is
refused, an owner elsewhere is nobody here, and when Slack cannot be asked the person is told
so and nothing changes. The operator's list, when set, still decides; one bot token without a
list still lets everyone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import count
from typing import Any

import pytest
import redis.asyncio as redis
from cryptography.fernet import Fernet

from bot import admins, home, keys, messages
from bot.key_modal import key_view
from tests import test_oauth
from tests.clocks import ManualClock
from tests.driver import RunningBot, SlackSender
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.redis_process import RedisProcess
from tests.test_commands import run
from tests.test_customgpt_keys import (
    ENCRYPTION_KEY,
    KEY_A,
    PROJECT_A,
    add_account_a,
    open_modal,
    submit_key,
)
from tests.test_home import home_of
from tests.test_home_key import click_key_button, key_buttons
from tests.test_oauth import install, token_of

StartBot = Callable[..., Awaitable[RunningBot]]

# The OAuth bot of tests/test_oauth.py (fixtures are found by name in this module).
oauth_app = test_oauth.oauth_app
start_oauth_bot = test_oauth.start_oauth_bot

#: Each workspace brings its own key; no operator list of admins.
OWN_KEYS: dict[str, Any] = {
    "customgpt_shared_key": False,
    "customgpt_key_encryption_keys": (ENCRYPTION_KEY,),
}
WS_ADMIN = "UWSADMIN"
MEMBER = "UMEMBER"
_names = count()


@pytest.fixture
def accounts(customgpt: FakeCustomGPT) -> FakeCustomGPT:
    """A CustomGPT account besides the operator's, with one knowledge base."""
    return add_account_a(customgpt)


@pytest.fixture
async def stored(own_redis: RedisProcess) -> AsyncIterator[redis.Redis]:
    """The OAuth bot's Redis, read as it is."""
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    yield client
    await client.aclose()


async def stored_key(client: redis.Redis, team: str) -> str | None:
    """The CustomGPT key Redis holds for `team`, decrypted (None: none)."""
    sealed = await client.get(keys.customgpt_key(team))
    if sealed is None:
        return None
    return str(json.loads(Fernet(ENCRYPTION_KEY).decrypt(sealed.encode()))["api_key"])


async def command_in(
    sender: SlackSender, slack: FakeSlack, bot: RunningBot, text: str, user: str
) -> tuple[str, list[str]]:
    """`/customgpt text` sent by `user` through `sender`'s workspace; (ack, later replies)."""
    name = f"admins-{next(_names)}"
    status, body = await sender.command(text, response_url=slack.response_url(name), user=user)
    assert status == 200
    await bot.idle()
    ack = str(body.get("text") or "") if isinstance(body, dict) else ""
    return ack, [str(p["text"]) for n, p in slack.responses if n == name]


def users_info_calls(slack: FakeSlack, user: str) -> list[Any]:
    return [c for c in slack.calls_to("users.info") if c.params.get("user") == user]


async def installed_with_admin(
    start_oauth_bot: StartBot, slack: FakeSlack, team: str
) -> RunningBot:
    """The OAuth bot installed in `team`, where Slack knows WS_ADMIN as a workspace admin."""
    bot = await start_oauth_bot(**OWN_KEYS)
    await install(bot, slack, team)
    slack.add_user(WS_ADMIN, team, admin=True)
    return bot


async def two_workspaces(
    start_oauth_bot: StartBot, slack: FakeSlack, team: str
) -> tuple[RunningBot, str, SlackSender]:
    """The OAuth bot installed in `team` and in a second workspace: (the bot, the second
    workspace's team id, a sender of requests from it)."""
    other = f"{team}B"
    bot = await start_oauth_bot(**OWN_KEYS)
    await install(bot, slack, team)
    await install(bot, slack, other)
    return bot, other, SlackSender(bot.url, bot.secret, other, bot.session)


async def test_a_workspace_admin_connects_the_key_and_a_plain_member_is_refused(
    start_oauth_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    stored: redis.Redis,
    team: str,
) -> None:
    bot = await installed_with_admin(start_oauth_bot, slack, team)
    slack.add_user(MEMBER, team)

    # The member: refused at the command, and a forged submission changes nothing.
    ack, later = await run(bot, slack, "key", user=MEMBER)
    assert (ack, later) == (messages.KEY_NOT_ADMIN, [])
    ack, _ = await run(bot, slack, "key remove", user=MEMBER)
    assert ack == messages.KEY_NOT_ADMIN
    body = await submit_key(bot, bot, key_view(connected=False, shared=False), MEMBER)
    assert body["errors"] == {"api_key": messages.KEY_NOT_ADMIN_SHORT}
    assert slack.views == []
    assert accounts.requests == []
    assert await stored_key(stored, team) is None

    # The workspace's admin: the modal opens and the key is checked, then kept.
    view = await open_modal(bot, slack, user=WS_ADMIN)
    body = await submit_key(bot, bot, view, WS_ADMIN)
    assert body["response_action"] == "update"
    assert [(r.method, r.path, r.key) for r in accounts.requests] == [("GET", "/projects", KEY_A)]
    assert await stored_key(stored, team) == KEY_A

    # Slack was asked with the workspace's own token, once per person: the answer is kept.
    asked = slack.calls_to("users.info")
    assert {c.token for c in asked} == {token_of(slack, team)} and all(c.ok for c in asked)
    assert len(users_info_calls(slack, WS_ADMIN)) == 1
    assert len(users_info_calls(slack, MEMBER)) == 1


async def test_an_owner_of_one_workspace_is_no_admin_in_another(
    start_oauth_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    stored: redis.Redis,
    team: str,
) -> None:
    bot, other, in_b = await two_workspaces(start_oauth_bot, slack, team)
    owner = "UOWNERA"
    slack.add_user(owner, team, primary_owner=True)

    ack, later = await command_in(in_b, slack, bot, "key", owner)

    assert (ack, later) == (messages.KEY_NOT_ADMIN, [])
    (asked,) = users_info_calls(slack, owner)
    assert asked.token == token_of(slack, other) and asked.error == "user_not_found"
    assert slack.views == []
    body = await submit_key(in_b, bot, key_view(connected=False, shared=False), owner)
    assert body["errors"] == {"api_key": messages.KEY_NOT_ADMIN_SHORT}
    assert accounts.requests == []
    assert await stored_key(stored, other) is None
    # At home the same person is an admin: the modal opens there.
    await open_modal(bot, slack, user=owner)


async def test_an_owner_met_through_a_shared_channel_is_no_admin_here(
    start_oauth_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    stored: redis.Redis,
    team: str,
) -> None:
    """Slack Connect: workspace B's token finds A's owner, with A's flags; they count in A."""
    bot, other, in_b = await two_workspaces(start_oauth_bot, slack, team)
    owner = slack.add_user("UOWNERA", team, owner=True)
    owner.seen_from.add(other)

    ack, _ = await command_in(in_b, slack, bot, "key", owner.id)

    assert ack == messages.KEY_NOT_ADMIN
    (asked,) = users_info_calls(slack, owner.id)
    assert asked.ok and asked.token == token_of(slack, other)
    assert slack.views == [] and accounts.requests == []
    assert await stored_key(stored, other) is None


async def test_slack_failing_the_check_says_so_and_changes_nothing(
    start_oauth_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    stored: redis.Redis,
    team: str,
) -> None:
    bot = await installed_with_admin(start_oauth_bot, slack, team)
    await bot.runtime.customgpt_keys.connect(team, KEY_A, "UEARLIER")

    # Slack refuses users.info (an install from before the app asked for users:read).
    installed = slack.installed[token_of(slack, team)]
    installed.scopes = [s for s in installed.scopes if s != "users:read"]
    ack, later = await run(bot, slack, "key remove", user=WS_ADMIN)
    assert (ack, later) == (messages.admin_not_checked(missing_scope=True), [])
    assert messages.KEY_NOT_ADMIN not in ack
    ack, _ = await run(bot, slack, f"use {PROJECT_A}", user=WS_ADMIN)
    assert ack == messages.admin_not_checked(missing_scope=True)
    body = await submit_key(
        bot, bot, key_view(connected=True, shared=False), WS_ADMIN, key="another-key-Abc123"
    )
    assert body["errors"] == {"api_key": messages.admin_not_checked_short(missing_scope=True)}
    shown = await home_of(bot, slack, WS_ADMIN)
    assert messages.HOME_ADMIN_NOT_CHECKED in shown and home.ADMIN_NOTE not in shown
    assert key_buttons(slack, WS_ADMIN) == []
    await click_key_button(bot, team, WS_ADMIN)
    (notice,) = [v.view for v in slack.views]
    assert messages.admin_not_checked(missing_scope=True) in json.dumps(notice)
    assert "submit" not in notice

    # Slack answers nothing usable in time (every users.info fails in passing).
    installed.scopes.append("users:read")
    slack.fail("users.info", times=1000, status=503)
    ack, later = await run(bot, slack, "key remove", user=WS_ADMIN)
    assert (ack, later) == (messages.admin_not_checked(), [])

    # Nothing was changed, CustomGPT never asked; a failure is not remembered.
    assert await stored_key(stored, team) == KEY_A
    assert await stored.get(keys.binding(team, "C1")) is None
    assert accounts.requests == []
    slack.heal("users.info")
    ack, _ = await run(bot, slack, "key remove", user=WS_ADMIN)
    assert ack == messages.key_removed(True, shared=False)
    assert await stored_key(stored, team) is None


async def test_slacks_answer_is_kept_for_its_lifetime_then_asked_again(
    start_oauth_bot: StartBot, slack: FakeSlack, accounts: FakeCustomGPT, team: str
) -> None:
    """An admin demoted in Slack keeps the rights here at most `ANSWER_TTL` seconds."""
    clock = ManualClock()
    bot = await start_oauth_bot(clock=clock, **OWN_KEYS)
    await install(bot, slack, team)
    admin = slack.add_user(WS_ADMIN, team, admin=True)
    await open_modal(bot, slack, user=WS_ADMIN)

    admin.is_admin = False
    clock.advance(admins.ANSWER_TTL - 1)
    await open_modal(bot, slack, user=WS_ADMIN)  # Slack's answer of before still holds
    assert len(users_info_calls(slack, WS_ADMIN)) == 1
    clock.advance(1)
    ack, _ = await run(bot, slack, "key", user=WS_ADMIN)

    assert ack == messages.KEY_NOT_ADMIN
    assert len(users_info_calls(slack, WS_ADMIN)) == 2
    assert len(slack.views) == 2


async def test_the_operators_list_still_decides_with_oauth(
    start_oauth_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    stored: redis.Redis,
    team: str,
) -> None:
    listed = "ULISTED"
    bot = await start_oauth_bot(**OWN_KEYS, customgpt_admin_users=frozenset({listed}))
    await install(bot, slack, team)
    slack.add_user(WS_ADMIN, team, owner=True)

    ack, _ = await run(bot, slack, "key", user=WS_ADMIN)
    assert ack == messages.KEY_NOT_ADMIN
    view = await open_modal(bot, slack, user=listed)
    body = await submit_key(bot, bot, view, listed)

    assert body["response_action"] == "update"
    assert await stored_key(stored, team) == KEY_A
    assert slack.calls_to("users.info") == []


async def test_the_home_tab_shows_admin_controls_to_the_workspaces_admins_only(
    start_oauth_bot: StartBot, slack: FakeSlack, accounts: FakeCustomGPT, team: str
) -> None:
    bot = await installed_with_admin(start_oauth_bot, slack, team)
    slack.add_user(MEMBER, team)

    as_admin = await home_of(bot, slack, WS_ADMIN)
    as_member = await home_of(bot, slack, MEMBER)

    assert home.ADMIN_NOTE in as_admin and len(key_buttons(slack, WS_ADMIN)) == 1
    assert home.ADMIN_NOTE not in as_member and key_buttons(slack, MEMBER) == []
    assert messages.HOME_ADMIN_NOT_CHECKED not in as_member
    # A forged click from the member opens only the refusal.
    await click_key_button(bot, team, MEMBER)
    (refusal,) = [v.view for v in slack.views]
    assert messages.KEY_NOT_ADMIN_SHORT in json.dumps(refusal) and "submit" not in refusal


async def test_one_bot_token_without_a_list_still_lets_everyone(
    start_bot: StartBot, slack: FakeSlack, accounts: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    bot = await start_bot(**OWN_KEYS)

    view = await open_modal(bot, slack, user="U1")
    body = await submit_key(bot, bot, view, "U1")

    assert body["response_action"] == "update"
    assert await redis_client.get(keys.customgpt_key(bot.team)) is not None
    assert slack.calls_to("users.info") == []
