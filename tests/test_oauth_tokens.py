"""OAuth installs, continued: each workspace's bot token kept in the process for its writes
(dropped at an uninstall here, or when Slack refuses it), the install pages on paths of the
operator's choosing, the installations index cleaned of workspaces no longer installed, and
requests served as the installed workspace when Slack names another team."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import redis.asyncio as redis

from bot import keys
from bot.slack_calls import NOT_INSTALLED, Content, SlackUnavailable
from tests import test_oauth
from tests.clocks import ManualClock
from tests.conftest import PROJECT_ID
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.redis_process import RedisProcess
from tests.test_customgpt_keys import ADMIN, OWN_KEYS, add_account_a
from tests.test_home_key import submit_from_slack_connect
from tests.test_oauth import STATE_COOKIE, answered, install, redirect, tokens_used

StartBot = Callable[..., Awaitable[RunningBot]]

# The OAuth bot of tests/test_oauth.py (fixtures are found by name in this module).
oauth_app = test_oauth.oauth_app
start_oauth_bot = test_oauth.start_oauth_bot


def tokens_of(slack: FakeSlack, team: str) -> list[str]:
    """Every bot token issued to `team`'s installs, oldest first."""
    return [token for token, i in slack.installed.items() if i.team_id == team]


async def installation_reads(url: str, owner: str, during: Callable[[], Awaitable[None]]) -> int:
    """How many times Redis was asked for `owner`'s installation while `during` ran, as
    Redis's own MONITOR saw the commands."""
    watcher = redis.Redis.from_url(url, decode_responses=True)
    other = redis.Redis.from_url(url, decode_responses=True)
    marker = f"end-of-count-{uuid.uuid4().hex}"
    reads = 0
    try:
        async with watcher.monitor() as monitor:
            await during()
            await other.echo(marker)
            while True:
                command = str((await monitor.next_command())["command"])
                if marker in command:
                    return reads
                if command.split() == ["GET", keys.installation(owner)]:
                    reads += 1
    finally:
        await other.aclose()
        await watcher.aclose()


# -- the bot token kept for writes -----------------------------------------------------------


async def test_writes_read_a_workspaces_installation_once_not_once_per_call(
    start_oauth_bot: StartBot, slack: FakeSlack, own_redis: RedisProcess, team: str
) -> None:
    bot = await start_oauth_bot(clock=ManualClock())
    await install(bot, slack, team)
    calls = bot.runtime.slack_writes.for_team(team)

    async def five_posts() -> None:
        for n in range(5):  # one channel each: within Slack's posting rate, time standing still
            await calls.post(f"C{n}", None, Content(f"post {n}"))

    assert await installation_reads(own_redis.url, team, five_posts) == 1
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 5 and all(c.ok for c in posts)


async def test_a_reinstalled_workspaces_new_token_is_used_after_the_old_one_is_refused(
    start_oauth_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, team: str
) -> None:
    first = await start_oauth_bot(clock=ManualClock())  # its kept tokens never grow old
    await install(first, slack, team)
    customgpt.queue_answer(["Before"])
    asked = await first.mention("first")
    await answered(slack, "C1", asked, "Before")
    await first.idle()
    (old,) = tokens_of(slack, team)

    # Installed again through another replica: Slack revokes the token it replaces.
    second = await start_oauth_bot()
    assert (await install(second, slack, team))[0] == 200
    old, new = tokens_of(slack, team)
    slack.revoke(old)
    since = len(slack.calls)
    customgpt.queue_answer(["After"])
    asked = await first.mention("second")

    await answered(slack, "C1", asked, "After")
    await first.idle()
    later = [c for c in slack.calls[since:] if c.method != "auth.test"]
    refused = [c for c in later if not c.ok]
    assert refused and {(c.token, c.error) for c in refused} == {(old, "invalid_auth")}
    assert {c.token for c in later if c.ok} == {new}


async def a_post_is_refused_as_not_installed(bot: RunningBot, slack: FakeSlack, team: str) -> None:
    """A post to C1 for `team` now is refused by the bot as not installed, and Slack receives
    nothing: what an uninstall must leave behind."""
    since = len(slack.calls)
    with pytest.raises(SlackUnavailable) as refused:
        await bot.runtime.slack_writes.for_team(team).post("C1", None, Content("after"))
    assert refused.value.code == NOT_INSTALLED
    assert slack.calls[since:] == []


async def test_an_uninstall_here_drops_the_kept_token_at_once(
    start_oauth_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, team: str
) -> None:
    bot = await start_oauth_bot(clock=ManualClock())
    await install(bot, slack, team)
    customgpt.queue_answer(["Kept"])
    asked = await bot.mention("q")
    await answered(slack, "C1", asked, "Kept")
    await bot.idle()

    status, _ = await bot.event({"type": "app_uninstalled"})
    assert status == 200
    await bot.idle()

    # The fake still accepts the old token: only the bot's own forgetting stops the post.
    await a_post_is_refused_as_not_installed(bot, slack, team)


async def test_an_org_wide_uninstall_here_drops_its_workspaces_kept_tokens(
    start_oauth_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, team: str
) -> None:
    enterprise = f"E{team[1:]}"
    slack.team_enterprise[team] = enterprise
    bot = await start_oauth_bot(clock=ManualClock())
    await install(bot, slack, None, enterprise=enterprise)
    customgpt.queue_answer(["Org answer"])
    mention = {
        "type": "app_mention",
        "user": "U1",
        "text": "<@UBOT> hi",
        "ts": "1.1",
        "channel": "C1",
    }
    event = test_oauth.org_event(bot, enterprise, mention)
    assert (await bot.post("/slack/events", event, "application/json")).status == 200
    await answered(slack, "C1", "1.1", "Org answer")
    await bot.idle()

    uninstalled = test_oauth.org_event(bot, enterprise, {"type": "app_uninstalled"})
    await bot.post("/slack/events", uninstalled, "application/json")
    await bot.idle()

    await a_post_is_refused_as_not_installed(bot, slack, team)


# -- install pages on the operator's paths ---------------------------------------------------


async def test_the_install_flow_serves_on_the_paths_set_in_the_environment(
    start_oauth_bot: StartBot, slack: FakeSlack, own_client: redis.Redis, team: str
) -> None:
    install_path, redirect_path = "/apps/customgpt/install", "/apps/customgpt/oauth/done"
    redirect_uri = f"https://bot.example.com{redirect_path}"
    bot = await start_oauth_bot(
        slack_install_path=install_path,
        slack_redirect_uri_path=redirect_path,
        slack_redirect_uri=redirect_uri,
    )
    for default in ("/slack/install", "/slack/oauth_redirect"):
        async with bot.session.get(bot.url + default) as response:
            assert response.status == 404

    async with bot.session.get(bot.url + install_path) as page:
        assert page.status == 200
        body = await page.text()
        cookie = page.cookies[STATE_COOKIE].value
    found = re.search(r'href="(https://slack\.com/oauth/v2/authorize[^"]+)"', body)
    assert found is not None, body
    query = parse_qs(urlsplit(html.unescape(found[1])).query)
    assert query["redirect_uri"] == [redirect_uri] and query["state"] == [cookie]
    code = slack.approve_install(team, redirect_uri=redirect_uri)
    headers = {"Cookie": f"{STATE_COOKIE}={cookie}"}
    async with bot.session.get(
        bot.url + redirect_path, params={"code": code, "state": cookie}, headers=headers
    ) as done:
        assert done.status == 200, await done.text()

    (exchange,) = slack.calls_to("oauth.v2.access")
    assert exchange.ok and exchange.params["redirect_uri"] == redirect_uri
    stored = json.loads(await own_client.get(keys.installation(team)) or "{}")
    assert stored["bot_token"] in slack.installed
    # The default redirect path is not served: a code sent there is not exchanged.
    status, _ = await redirect(bot, slack.approve_install(team), cookie, cookie=cookie)
    assert status == 404 and len(slack.calls_to("oauth.v2.access")) == 1


# -- the installations index -----------------------------------------------------------------


async def test_index_members_whose_installation_is_gone_are_removed_when_found(
    start_oauth_bot: StartBot, slack: FakeSlack, own_client: redis.Redis, team: str
) -> None:
    bot = await start_oauth_bot()
    await install(bot, slack, team)
    # An uninstall cut short between its two deletes left these members behind.
    gone_team, gone_org = f"{team}GONE", f"E{team[1:]}GONE"
    await own_client.sadd(keys.installations(), f"team:{gone_team}", f"org:{gone_org}")
    await own_client.sadd(keys.enterprise_teams(gone_org), f"{team}ORG")

    assert await bot.runtime.served_teams() == {team}
    assert await own_client.smembers(keys.installations()) == {f"team:{team}"}

    # Gone behind this process's back: found by the next write, then dropped from the index.
    await own_client.delete(keys.installation(team))
    with pytest.raises(SlackUnavailable) as refused:
        await bot.runtime.slack_writes.for_team(team).post("C1", None, Content("anyone?"))
    assert refused.value.code == NOT_INSTALLED
    assert await bot.runtime.served_teams() == set()
    assert await own_client.smembers(keys.installations()) == set()


# -- served as the installed workspace --------------------------------------------------------


async def test_a_key_submitted_through_a_slack_connect_modal_is_the_installations(
    start_oauth_bot: StartBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    own_client: redis.Redis,
    team: str,
) -> None:
    """Bolt finds the installation through the view's `app_installed_team_id`; the key is
    stored for that workspace, not for the submitter's own team named as `team`."""
    add_account_a(customgpt)
    bot = await start_oauth_bot(**OWN_KEYS)
    await install(bot, slack, team)

    other = await submit_from_slack_connect(bot, slack, team)

    assert await own_client.get(keys.customgpt_key(team)) is not None
    assert await own_client.get(keys.customgpt_key(other)) is None
    assert tokens_used(slack, "C1") <= set(tokens_of(slack, team))


def org_command(enterprise: str, team: str, text: str, response_url: str) -> dict[str, Any]:
    """A slash command in a workspace of an Enterprise Grid org served by an org-wide
    installation."""
    return {
        "token": "verification-token",
        "team_id": team,
        "team_domain": "fake",
        "enterprise_id": enterprise,
        "enterprise_name": "Org",
        "is_enterprise_install": "true",
        "channel_id": "C1",
        "channel_name": "general",
        "user_id": ADMIN,
        "user_name": "someone",
        "command": "/customgpt",
        "text": text,
        "api_app_id": "A1",
        "response_url": response_url,
        "trigger_id": f"trigger-{uuid.uuid4().hex[:8]}",
    }


async def test_a_command_under_an_org_wide_install_writes_the_workspaces_data(
    start_oauth_bot: StartBot, slack: FakeSlack, own_client: redis.Redis, team: str
) -> None:
    enterprise = f"E{team[1:]}"
    slack.team_enterprise[team] = enterprise
    slack.add_user(ADMIN, team, admin=True)  # the org-wide token finds the workspace's admin
    bot = await start_oauth_bot()
    await install(bot, slack, None, enterprise=enterprise)

    form = org_command(enterprise, team, f"use {PROJECT_ID}", slack.response_url("org"))
    response = await bot.post("/slack/events", urlencode(form), "application/x-www-form-urlencoded")
    assert response.status == 200
    await bot.idle()

    (reply,) = [p["text"] for name, p in slack.responses if name == "org"]
    assert "now asks" in reply
    assert await own_client.get(keys.binding(team, "C1")) == str(PROJECT_ID)
    assert await own_client.keys(f"cgpt:{enterprise}:bind:*") == []
