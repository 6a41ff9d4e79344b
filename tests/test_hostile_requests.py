"""What a hostile user, a misbehaving Slack workspace or a failing network sends the OAuth
install flow, the key modal, the Home tab and the assistant pane, against the fakes: each test
asserts what Slack, CustomGPT and Redis received, and that the person on the other end is
told something clear."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as redis

from bot import key_modal, keys, log_setup, messages
from tests.driver import RunningBot, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack, OAuthApp
from tests.redis_process import RedisProcess
from tests.test_assistant import start_thread
from tests.test_commands import run
from tests.test_customgpt_keys import (
    ADMIN,
    KEY_A,
    OWN_KEYS,
    PROJECT_A,
    add_account_a,
    connect,
    open_modal,
    typed,
)
from tests.test_home import home_of
from tests.test_home_key import submit_from_slack_connect
from tests.test_oauth import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    STATE_COOKIE,
    install,
    redirect,
)
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]


@pytest.fixture
def accounts(customgpt: FakeCustomGPT) -> FakeCustomGPT:
    """A workspace's own CustomGPT account, with one knowledge base."""
    return add_account_a(customgpt)


# -- the key modal -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed_key",
    ["abc\x00def-123456", "abc\x7fdef-123456", "abc\u200bdef-123456", "ключ-ключ-ключ-1234"],
    ids=["NUL", "DEL", "zero-width space", "not ASCII"],
)
async def test_a_key_with_control_or_foreign_characters_is_refused_in_the_modal(
    start_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    typed_key: str,
) -> None:
    bot = await start_bot(**OWN_KEYS)
    view = await open_modal(bot, slack)

    status, body = await bot.submit_view(view, typed(typed_key), user=ADMIN)
    await bot.idle()

    # Told beside the field (not Slack's "trouble connecting" after a crashed listener), and
    # nothing that cannot be a CustomGPT key is sent to CustomGPT in a header.
    assert status == 200
    assert body == {
        "response_action": "errors",
        "errors": {key_modal.BLOCK_ID: messages.KEY_MALFORMED},
    }
    assert accounts.requests == []


async def test_a_key_customgpt_rejected_does_not_become_a_secret_redacted_everywhere(
    start_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
) -> None:
    bot = await start_bot(**OWN_KEYS)
    log_setup.use_secrets(["xoxb-test-token"])
    try:
        # An admin types an ordinary word; CustomGPT rejects it.
        assert await connect(bot, slack, "request") == {
            "response_action": "errors",
            "errors": {key_modal.BLOCK_ID: messages.KEY_REJECTED},
        }
        await connect(bot, slack, KEY_A)
        await run(bot, slack, f"use {PROJECT_A}", user=ADMIN)
        accounts.queue_answer([], error_status=400, error_message="bad request for this project")
        ts = await bot.mention("q")
        await bot.idle()

        # The word is still shown as it is: only a key that works is a secret.
        (reply,) = slack.thread("C1", ts)
        assert "bad request for this project" in final_text(reply)
    finally:
        log_setup.use_secrets(())


# -- the Home tab and the assistant pane while Redis is stopped ----------------------------------


@pytest.fixture
async def redis_stopped(
    start_bot: StartBot, accounts: FakeCustomGPT, own_redis: RedisProcess
) -> RunningBot:
    """A bot where workspaces bring their own keys, whose Redis is stopped once it has started."""
    bot = await start_bot(redis_url=own_redis.url, **OWN_KEYS)
    await own_redis.stop()
    return bot


async def test_the_home_tab_opened_while_redis_is_stopped_says_so_instead_of_staying_empty(
    redis_stopped: RunningBot, slack: FakeSlack, accounts: FakeCustomGPT
) -> None:
    # Workspaces bring their own keys, and this one's is in Redis, which is stopped.
    home = await home_of(redis_stopped, slack, "U1")

    assert messages.HOME_ACCOUNT_UNKNOWN in home and messages.HELP in home
    assert "none is set" not in home  # not a false "no default project"
    assert accounts.requests == []


async def test_the_home_tab_while_redis_is_stopped_does_not_claim_no_channel_is_bound(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, own_redis: RedisProcess
) -> None:
    # The shared key serves every workspace: the tab is published from this process's memory.
    bot = await start_bot(redis_url=own_redis.url)
    customgpt.add_project(43, "Billing FAQ")
    _, later = await run(bot, slack, "use 43", channel="C7")
    assert "now asks" in later[0]
    await own_redis.stop()

    home = await home_of(bot, slack, "U1")

    assert "every channel asks the default project" not in home
    assert messages.HOME_STORE_DOWN in home


async def test_an_assistant_thread_opened_while_redis_is_stopped_is_told_so(
    redis_stopped: RunningBot, slack: FakeSlack, accounts: FakeCustomGPT
) -> None:
    thread = await start_thread(redis_stopped)
    await redis_stopped.idle()

    (greeting,) = slack.thread("D1", thread)
    assert greeting.text == messages.STORE_DOWN
    assert accounts.requests == []


async def test_an_assistant_thread_delivered_again_is_greeted_once(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    thread = next_ts()
    event = {
        "type": "assistant_thread_started",
        "assistant_thread": {"user_id": "U1", "channel_id": "D1", "thread_ts": thread},
        "event_ts": thread,
    }
    _, event_id = await bot.event(event)
    await bot.event(event, event_id=event_id, retry_num=1)  # Slack's retry
    await bot.event(event)  # the same thread under another event id
    await bot.idle()

    assert len(slack.thread("D1", thread)) == 1
    assert len(slack.calls_to("assistant.threads.setSuggestedPrompts")) == 1
    assert len([r for r in customgpt.requests if r.path.endswith("/settings")]) == 1


@pytest.mark.parametrize(
    "event",
    [
        {"type": "assistant_thread_started"},
        {"type": "assistant_thread_started", "assistant_thread": {"user_id": "U1"}},
        {"type": "app_home_opened", "tab": "home"},
    ],
    ids=["no assistant_thread", "no channel nor thread", "no user"],
)
async def test_an_event_missing_what_it_is_about_costs_no_customgpt_or_slack_call(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, event: dict[str, object]
) -> None:
    status, _ = await bot.event({**event, "event_ts": next_ts()})
    await bot.idle()

    assert status == 200
    assert [c.method for c in slack.calls if c.method != "auth.test"] == []
    assert customgpt.requests == []


# -- the OAuth install flow when Redis or Slack fail ---------------------------------------------


async def start_oauth(
    start_bot: StartBot, own_redis: RedisProcess, slack: FakeSlack, **changes: Any
) -> RunningBot:
    """The bot in OAuth mode (no bot token of its own) on a Redis of the test's own."""
    slack.oauth_app = OAuthApp(CLIENT_ID, CLIENT_SECRET)
    return await start_bot(
        slack_bot_token="",
        redis_url=own_redis.url,
        slack_client_id=CLIENT_ID,
        slack_client_secret=CLIENT_SECRET,
        slack_scopes=("app_mentions:read", "chat:write"),
        slack_redirect_uri=REDIRECT_URI,
        **changes,
    )


@pytest.fixture
async def oauth_bot(start_bot: StartBot, own_redis: RedisProcess, slack: FakeSlack) -> RunningBot:
    return await start_oauth(start_bot, own_redis, slack)


async def page(bot: RunningBot, path: str) -> tuple[int, str]:
    async with bot.session.get(bot.url + path) as response:
        return response.status, await response.text()


async def test_the_install_page_while_redis_is_stopped_is_a_clear_page(
    oauth_bot: RunningBot, own_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    await own_redis.stop()

    status, text = await page(oauth_bot, "/slack/install")

    # The install link's state cannot be kept: a page saying to try later, not a bare 500.
    assert status == 503
    assert "try again in a minute" in text and 'href="/slack/install"' in text
    assert "slack.com/oauth" not in text  # no link whose state would be refused
    assert not [r for r in caplog.records if r.exc_info]  # a line, no traceback


async def test_slack_unreachable_at_the_redirect_is_a_clear_page_and_nothing_is_installed(
    oauth_bot: RunningBot,
    slack: FakeSlack,
    own_client: redis.Redis,
    team: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack.disconnect("oauth.v2.access")

    status, text, _ = await install(oauth_bot, slack, team)

    assert status == 503
    assert "try again in a minute" in text and 'href="/slack/install"' in text
    assert len(slack.calls_to("oauth.v2.access")) == 1
    assert await own_client.get(keys.installation(team)) is None
    assert not [r for r in caplog.records if r.exc_info]
    assert CLIENT_SECRET not in caplog.text


async def test_redis_stopped_before_the_redirect_says_to_try_again_not_that_the_link_expired(
    oauth_bot: RunningBot, slack: FakeSlack, own_redis: RedisProcess, team: str
) -> None:
    async with oauth_bot.session.get(oauth_bot.url + "/slack/install") as response:
        assert response.status == 200
        state = response.cookies[STATE_COOKIE].value
    code = slack.approve_install(team, redirect_uri=REDIRECT_URI)
    await own_redis.stop()

    status, text = await redirect(oauth_bot, code, state, cookie=state)

    assert status == 503
    assert "try again in a minute" in text and "invalid_state" not in text
    assert slack.calls_to("oauth.v2.access") == []


async def test_no_secret_is_kept_in_redis_in_plaintext_but_the_bot_token_in_its_installation(
    start_bot: StartBot,
    own_redis: RedisProcess,
    own_client: redis.Redis,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    team: str,
) -> None:
    bot = await start_oauth(start_bot, own_redis, slack, **OWN_KEYS)
    await install(bot, slack, team)
    await connect(bot, slack, KEY_A)
    await run(bot, slack, f"use {PROJECT_A}", user=ADMIN)
    await bot.mention("what is alpha?")
    await bot.idle()

    (token,) = slack.installed
    secrets = [KEY_A, CLIENT_SECRET, *OWN_KEYS["customgpt_key_encryption_keys"], token]
    stored: dict[str, str] = {}
    async for key in own_client.scan_iter():
        kind = await own_client.type(key)
        if kind == "string":
            stored[key] = str(await own_client.get(key))
        elif kind == "set":
            stored[key] = " ".join(await own_client.smembers(key))
        elif kind == "hash":
            stored[key] = json.dumps(await own_client.hgetall(key))
        elif kind == "zset":
            stored[key] = " ".join(await own_client.zrange(key, 0, -1))
    holders = {secret: [k for k, v in stored.items() if secret in v] for secret in secrets}
    # Slack's own installation stores keep the bot token as it is; nothing else is kept.
    assert holders == {
        KEY_A: [],
        CLIENT_SECRET: [],
        OWN_KEYS["customgpt_key_encryption_keys"][0]: [],
        token: [keys.installation(team)],
    }
    sent_to_slack = json.dumps([c.params for c in slack.calls]) + json.dumps(slack.responses)
    assert not [
        s
        for s in (KEY_A, CLIENT_SECRET, *OWN_KEYS["customgpt_key_encryption_keys"])
        if s in sent_to_slack
    ]


# -- whose key a modal submission connects -------------------------------------------------------


async def test_a_key_submitted_from_a_slack_connect_partner_goes_to_the_installed_workspace(
    start_bot: StartBot,
    own_redis: RedisProcess,
    own_client: redis.Redis,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    team: str,
) -> None:
    """Slack names the submitter's own workspace as the payload's `team` when the modal was
    opened through a shared channel; the installation serving it is `app_installed_team_id`
    (what Bolt authorizes with). The key is this workspace's, not the partner's."""
    bot = await start_oauth(start_bot, own_redis, slack, **OWN_KEYS)
    await install(bot, slack, team)
    partner = await submit_from_slack_connect(bot, slack, team)

    assert await own_client.get(keys.customgpt_key(team)) is not None
    assert await own_client.get(keys.customgpt_key(partner)) is None
    ack, _ = await run(bot, slack, "list", user=ADMIN)
    assert ack != messages.NO_KEY_FOR_COMMAND


async def test_with_one_token_a_key_submitted_from_a_partner_is_connected_not_dropped(
    start_bot: StartBot,
    redis_client: redis.Redis,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    team: str,
) -> None:
    bot = await start_bot(**OWN_KEYS)

    # Not ignored as another workspace's request (Slack would close the modal as if done):
    # the submission's answer is an update of the modal (checked by the helper).
    await submit_from_slack_connect(bot, slack, team)

    assert await redis_client.get(keys.customgpt_key(team)) is not None
