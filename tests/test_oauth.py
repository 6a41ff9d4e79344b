"""The OAuth install flow (SLACK_CLIENT_ID and SLACK_CLIENT_SECRET set): a browser goes
through `/slack/install` and `/slack/oauth_redirect`, the bot exchanges the code with the fake
Slack (`oauth.v2.access`, strict about the app's credentials), stores the installation in a
Redis of the test's own, and answers each workspace with that workspace's token."""

from __future__ import annotations

import html
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import redis.asyncio as redis
import yaml
from cryptography.fernet import Fernet
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import keys, log_setup
from bot.config import ConfigError, Settings
from bot.indexing import Watch
from bot.journal import Entry
from bot.oauth_stores import RedisOAuthStateStore
from bot.store import RedisStore
from tests.clocks import ManualClock
from tests.conftest import PROJECT_ID
from tests.driver import RunningBot, SlackSender, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import BOT_SCOPES, FakeSlack, OAuthApp
from tests.polling import until
from tests.redis_process import RedisProcess
from tests.test_cli import run_cli
from tests.test_doctor import GOOD_SECRET, diagnose, status
from tests.test_manifest import MANIFEST
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]

CLIENT_ID = "1111111111.2222222222"
CLIENT_SECRET = "89abcdef0123456789abcdef01234567"
REDIRECT_URI = "https://bot.example.com/slack/oauth_redirect"
STATE_COOKIE = "slack-app-oauth-state"


@pytest.fixture
def oauth_app(slack: FakeSlack) -> OAuthApp:
    slack.oauth_app = OAuthApp(CLIENT_ID, CLIENT_SECRET)
    return slack.oauth_app


@pytest.fixture
async def start_oauth_bot(
    start_bot: StartBot, own_redis: RedisProcess, oauth_app: OAuthApp
) -> AsyncIterator[StartBot]:
    """The bot in OAuth mode, with no SLACK_BOT_TOKEN, on a Redis of the test's own (the
    list of installations is global to a Redis)."""

    async def start(**changes: Any) -> RunningBot:
        settings = {
            "slack_bot_token": "",
            "redis_url": own_redis.url,
            "slack_client_id": CLIENT_ID,
            "slack_client_secret": CLIENT_SECRET,
            "slack_scopes": ("app_mentions:read", "chat:write"),
            "slack_redirect_uri": REDIRECT_URI,
            **changes,
        }
        return await start_bot(**settings)

    yield start


async def install(
    bot: RunningBot,
    slack: FakeSlack,
    team: str | None,
    *,
    enterprise: str | None = None,
    cookie: bool = True,
) -> tuple[int, str, str]:
    """A person installs the app from the bot's install page; returns the redirect's
    (HTTP status, page, state used)."""
    async with bot.session.get(bot.url + "/slack/install") as page:
        assert page.status == 200
        body = await page.text()
        state_cookie = page.cookies[STATE_COOKIE].value
    found = re.search(r'href="(https://slack\.com/oauth/v2/authorize[^"]+)"', body)
    assert found is not None, body
    link = html.unescape(found[1])
    query = parse_qs(urlsplit(link).query)
    assert query["client_id"] == [CLIENT_ID] and query["redirect_uri"] == [REDIRECT_URI]
    state = query["state"][0]
    assert state == state_cookie
    code = slack.approve_install(team, enterprise=enterprise, redirect_uri=REDIRECT_URI)
    return (*await redirect(bot, code, state, cookie=state_cookie if cookie else None), state)


async def redirect(
    bot: RunningBot, code: str, state: str, *, cookie: str | None
) -> tuple[int, str]:
    headers = {"Cookie": f"{STATE_COOKIE}={cookie}"} if cookie else {}
    async with bot.session.get(
        bot.url + "/slack/oauth_redirect",
        params={"code": code, "state": state},
        headers=headers,
    ) as response:
        return response.status, await response.text()


def token_of(slack: FakeSlack, team: str | None, enterprise: str | None = None) -> str:
    (installed,) = [
        i for i in slack.installed.values() if (i.team_id, i.enterprise_id) == (team, enterprise)
    ]
    return installed.token


async def answered(slack: FakeSlack, channel: str, ts: str, text: str) -> None:
    """The reply to `ts` ends up showing `text` (the fake lists every call if it never does)."""
    await slack.wait_for(lambda: [final_text(m) for m in slack.thread(channel, ts)] == [text])


def tokens_used(slack: FakeSlack, channel: str) -> set[str | None]:
    return {c.token for c in slack.calls if c.params.get("channel") == channel}


# -- the install flow -------------------------------------------------------------------------


async def test_an_install_is_exchanged_with_the_apps_credentials_and_stored(
    start_oauth_bot: StartBot, slack: FakeSlack, own_client: redis.Redis, team: str
) -> None:
    bot = await start_oauth_bot()
    status, page, _ = await install(bot, slack, team)

    assert status == 200, page
    (exchange,) = slack.calls_to("oauth.v2.access")
    assert exchange.ok and exchange.params["redirect_uri"] == REDIRECT_URI
    stored = json.loads(await own_client.get(keys.installation(team)) or "{}")
    assert stored["team_id"] == team and stored["bot_token"] == token_of(slack, team)
    assert stored["is_enterprise_install"] is False and stored["user_token"] is None
    assert await own_client.smembers(keys.installations()) == {f"team:{team}"}


async def test_a_wrong_client_secret_installs_nothing(
    start_oauth_bot: StartBot, slack: FakeSlack, own_client: redis.Redis, team: str
) -> None:
    bot = await start_oauth_bot(slack_client_secret="f" * 32)
    status, _, _ = await install(bot, slack, team)

    assert status == 401
    (exchange,) = slack.calls_to("oauth.v2.access")
    assert exchange.error == "bad_client_secret"
    assert await own_client.get(keys.installation(team)) is None
    assert not slack.installed


async def test_a_state_is_taken_once_and_only_by_the_browser_it_was_issued_to(
    start_oauth_bot: StartBot, slack: FakeSlack, team: str
) -> None:
    bot = await start_oauth_bot()
    status, _, _ = await install(bot, slack, team, cookie=False)
    assert status == 400  # another browser than the one sent to Slack
    assert not slack.calls_to("oauth.v2.access")

    status, _, state = await install(bot, slack, team)
    assert status == 200
    replayed = slack.approve_install(team, redirect_uri=REDIRECT_URI)
    status, _ = await redirect(bot, replayed, state, cookie=state)
    assert status == 401  # the state was used
    assert len(slack.calls_to("oauth.v2.access")) == 1


async def test_a_state_expires_and_is_single_use(own_redis: RedisProcess) -> None:
    clock = ManualClock()
    shared = RedisStore.from_url(own_redis.url)
    states = RedisOAuthStateStore(shared, clock)
    try:
        state = await states.async_issue()
        lifetime = await shared.client.ttl(keys.oauth_state(state))
        assert 0 < lifetime <= keys.OAUTH_STATE_TTL
        assert await states.async_consume(state) is True
        assert await states.async_consume(state) is False  # taken once

        late = await states.async_issue()
        clock.advance(keys.OAUTH_STATE_TTL + 1)
        assert await states.async_consume(late) is False  # expired
        assert await states.async_consume("never-issued-state-0123456789") is False
    finally:
        await shared.close()


# -- answering each workspace with its own token ---------------------------------------------


async def test_two_installed_workspaces_are_each_answered_with_their_own_token(
    start_oauth_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, team: str
) -> None:
    other = f"{team}B"
    slack.add_channel("CB1", other)
    bot = await start_oauth_bot()
    assert (await install(bot, slack, team))[0] == 200
    assert (await install(bot, slack, other))[0] == 200
    customgpt.queue_answer(["Answer for A"])
    customgpt.queue_answer(["Answer for B"])

    asked_a = await bot.mention("question A", channel="C1")
    await answered(slack, "C1", asked_a, "Answer for A")
    sender_b = SlackSender(bot.url, bot.secret, other, bot.session)
    asked_b = await sender_b.mention("question B", channel="CB1")
    await answered(slack, "CB1", asked_b, "Answer for B")
    await bot.idle()

    assert tokens_used(slack, "C1") == {token_of(slack, team)}
    assert tokens_used(slack, "CB1") == {token_of(slack, other)}
    assert all(c.ok for c in slack.calls if c.method.startswith("chat."))


async def test_the_fake_refuses_one_workspaces_token_in_another_workspace(
    start_oauth_bot: StartBot, slack: FakeSlack, team: str
) -> None:
    other = f"{team}B"
    slack.add_channel("CB1", other)
    bot = await start_oauth_bot()
    await install(bot, slack, team)
    await install(bot, slack, other)
    client = bot.runtime.slack

    with pytest.raises(Exception, match="channel_not_found"):
        await client.chat_postMessage(token=token_of(slack, team), channel="CB1", text="x")
    answer = await client.chat_postMessage(token=token_of(slack, other), channel="CB1", text="x")
    assert answer["ok"]


async def test_a_workspace_without_an_installation_is_not_answered(
    start_oauth_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, team: str
) -> None:
    bot = await start_oauth_bot()
    await bot.mention("anyone there?")
    await bot.idle()

    assert not slack.calls_to("chat.postMessage")
    assert not [r for r in customgpt.requests if r.path.endswith("/messages")]


# -- Enterprise Grid: an org-wide install -----------------------------------------------------


def org_event(sender: SlackSender, enterprise: str, event: dict[str, Any]) -> str:
    return json.dumps(
        {
            "token": "verification-token",
            "team_id": sender.team,
            "enterprise_id": enterprise,
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": f"Ev{time.time_ns()}",
            "event_time": int(time.time()),
            "event": event,
            "authorizations": [
                {
                    "enterprise_id": enterprise,
                    "team_id": None,
                    "user_id": "UBOT",
                    "is_bot": True,
                    "is_enterprise_install": True,
                }
            ],
        }
    )


async def test_an_org_wide_install_answers_its_workspaces_and_its_uninstall_removes_them(
    start_oauth_bot: StartBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    own_client: redis.Redis,
    team: str,
) -> None:
    enterprise = f"E{team[1:]}"
    slack.team_enterprise[team] = enterprise
    bot = await start_oauth_bot()
    status, page, _ = await install(bot, slack, None, enterprise=enterprise)
    assert status == 200, page
    stored = json.loads(await own_client.get(keys.installation(enterprise)) or "{}")
    assert stored["is_enterprise_install"] is True and stored["team_id"] is None

    customgpt.queue_answer(["Org answer"])
    ts = next_ts()
    mention = {"type": "app_mention", "user": "U1", "text": "<@UBOT> hi", "ts": ts, "channel": "C1"}
    response = await bot.post(
        "/slack/events", org_event(bot, enterprise, mention), "application/json"
    )
    assert response.status == 200
    await answered(slack, "C1", ts, "Org answer")
    await bot.idle()
    assert tokens_used(slack, "C1") == {token_of(slack, None, enterprise)}
    assert await own_client.smembers(keys.enterprise_teams(enterprise)) == {team}
    assert await own_client.keys(f"cgpt:{team}:conv:*")

    uninstalled = {"type": "app_uninstalled"}
    await bot.post("/slack/events", org_event(bot, enterprise, uninstalled), "application/json")
    await bot.idle()

    assert await own_client.keys(f"cgpt:{team}:*") == []
    assert await own_client.keys(f"cgpt:{enterprise}:*") == []
    assert await own_client.smembers(keys.installations()) == set()


@pytest.mark.parametrize(
    "event",
    [
        {"type": "app_uninstalled"},
        {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}},
    ],
    ids=["uninstalled", "bot token revoked"],
)
async def test_a_workspace_uninstall_deletes_its_installation(
    start_oauth_bot: StartBot,
    slack: FakeSlack,
    own_client: redis.Redis,
    team: str,
    event: dict[str, Any],
) -> None:
    other = f"{team}B"
    bot = await start_oauth_bot()
    await install(bot, slack, team)
    await install(bot, slack, other)

    status, _ = await bot.event(event)
    assert status == 200
    await bot.idle()

    assert await own_client.get(keys.installation(team)) is None
    assert await own_client.get(keys.installation(other)) is not None
    assert await own_client.smembers(keys.installations()) == {f"team:{other}"}
    assert await bot.runtime.installations.bot_token(team) is None  # type: ignore[union-attr]


# -- a Redis outage ---------------------------------------------------------------------------


async def test_known_installations_keep_answering_while_redis_is_stopped(
    start_oauth_bot: StartBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    own_redis: RedisProcess,
    team: str,
) -> None:
    bot = await start_oauth_bot()
    await install(bot, slack, team)
    customgpt.queue_answer(["Before"])
    before = await bot.mention("first")
    await answered(slack, "C1", before, "Before")
    await bot.idle()

    await own_redis.stop()
    customgpt.queue_answer(["During the outage"])
    during = await bot.mention("second")

    await answered(slack, "C1", during, "During the outage")
    assert tokens_used(slack, "C1") == {token_of(slack, team)}


# -- settings ---------------------------------------------------------------------------------

OAUTH_ENV = {
    "SLACK_SIGNING_SECRET": "s",
    "CUSTOMGPT_API_KEY": "k",
    "SLACK_CLIENT_ID": CLIENT_ID,
    "SLACK_CLIENT_SECRET": CLIENT_SECRET,
    "SLACK_SCOPES": "app_mentions:read,chat:write",
    # Distributed: each workspace connects its own CustomGPT key, sealed with this one.
    "CUSTOMGPT_KEY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
}


def test_oauth_settings_need_no_bot_token() -> None:
    settings = Settings.from_env({**OAUTH_ENV, "REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert settings.uses_oauth and settings.slack_bot_token == ""
    assert CLIENT_SECRET in settings.secrets  # what the log redaction replaces
    assert settings.slack_scopes == ("app_mentions:read", "chat:write")
    assert settings.slack_install_path == "/slack/install"
    assert not Settings.from_env(
        {**OAUTH_ENV, "SLACK_BOT_TOKEN": "xoxb-1"}
        | {"SLACK_CLIENT_ID": "", "SLACK_CLIENT_SECRET": ""}
    ).uses_oauth


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({}, "REDIS_URL"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/0", "SLACK_APP_TOKEN": "xapp-1"}, "SLACK_APP_TOKEN"),
        (
            {"REDIS_URL": "redis://127.0.0.1:6379/0", "SLACK_CLIENT_SECRET": ""},
            "SLACK_CLIENT_SECRET",
        ),
    ],
)
def test_oauth_refuses_to_start_without_redis_or_in_socket_mode(
    extra: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named) as refused:
        Settings.from_env({**OAUTH_ENV, **extra})
    assert "\n" not in str(refused.value)


# -- no secret in a log line ------------------------------------------------------------------


async def test_no_client_secret_token_or_code_reaches_a_log_line(
    start_oauth_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, team: str
) -> None:
    """Nor an OAuth code or state: the redirect's access line carries both in its query, and
    Bolt's warning for a refused exchange names the code."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)  # before the app is built: Bolt's logger takes it then
    bot = await start_oauth_bot()
    handler.addFilter(log_setup.use_secrets(bot.runtime.settings.secrets))
    root.addHandler(handler)
    try:
        await install(bot, slack, team)
        slack.oauth_app = OAuthApp(CLIENT_ID, "e" * 32)  # the next exchange is refused
        status, _, _ = await install(bot, slack, team)
        assert status == 401
        customgpt.queue_answer(["Logged answer"])
        ts = await bot.mention("q")
        await answered(slack, "C1", ts, "Logged answer")
        await bot.idle()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        log_setup.use_secrets(())
    logged = lines.getvalue()
    assert "oauth.v2.access" in logged  # DEBUG lines of the exchange were written
    assert "oauth_redirect" in logged  # the redirect's access line was written
    assert "Failed to fetch oauth.v2.access" in logged  # and Bolt's warning of the refusal
    assert "Handling an OAuth callback" in logged  # and Bolt's debug line of the redirect
    states = re.findall(r"state=([^&\s\"]+)", logged)
    assert states and set(states) == {"[redacted]"}
    for secret in (CLIENT_SECRET, *slack.installed, *slack.codes):
        assert secret not in logged


# -- doctor and the manifest ------------------------------------------------------------------


async def test_doctor_checks_the_client_id_and_secret_with_slack(
    settings: Settings, slack: FakeSlack, oauth_app: OAuthApp
) -> None:
    oauth = replace(
        settings,
        slack_bot_token="",
        slack_signing_secret=GOOD_SECRET,
        slack_client_id=CLIENT_ID,
        slack_client_secret=CLIENT_SECRET,
        slack_scopes=BOT_SCOPES,
        slack_redirect_uri=REDIRECT_URI,
    )
    code, lines = await diagnose(oauth)
    assert code == 0, lines
    assert status(lines["Slack bot token"]) == "skipped"
    assert status(lines["Slack token scopes"]) == "ok"
    assert "accepts" in lines["Slack OAuth credentials"]
    assert status(lines["OAuth install flow"]) == "ok"

    code, lines = await diagnose(
        replace(oauth, slack_client_secret="9" * 32, slack_scopes=BOT_SCOPES[:-1])
    )
    assert code == 1
    assert "bad_client_secret" in lines["Slack OAuth credentials"]
    assert f"SLACK_SCOPES misses {BOT_SCOPES[-1]}" in lines["Slack token scopes"]
    assert not slack.installed
    assert not [line for line in lines.values() if CLIENT_SECRET in line or "9" * 32 in line]


def test_the_manifest_and_env_example_ask_for_what_oauth_needs() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    (redirect,) = manifest["oauth_config"]["redirect_urls"]
    assert urlsplit(redirect).path == "/slack/oauth_redirect"
    assert manifest["settings"]["org_deploy_enabled"] is True
    example = dict(
        line.split("=", 1)
        for line in (MANIFEST.parent / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert set(example["SLACK_SCOPES"].split(",")) == set(manifest["oauth_config"]["scopes"]["bot"])


async def test_a_workspace_unknown_here_while_redis_is_stopped_is_left_for_slack_to_retry(
    start_oauth_bot: StartBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    own_redis: RedisProcess,
    team: str,
) -> None:
    installer = await start_oauth_bot()
    await install(installer, slack, team)
    fresh = await start_oauth_bot()  # a replica that has not served the workspace yet

    await own_redis.stop()
    status, _ = await fresh.event(
        {"type": "app_mention", "user": "U1", "text": "<@UBOT> q", "ts": next_ts(), "channel": "C1"}
    )

    assert status == 500  # not acknowledged: Slack delivers the question again
    assert not slack.calls_to("chat.postMessage")
    assert not [r for r in customgpt.requests if r.path.endswith("/messages")]


async def test_work_left_behind_is_finished_in_each_workspace_with_its_own_token(
    start_oauth_bot: StartBot, slack: FakeSlack, own_client: redis.Redis, team: str
) -> None:
    other = f"{team}B"
    slack.add_channel("CB1", other)
    installer = await start_oauth_bot()
    await install(installer, slack, team)
    await install(installer, slack, other)
    await installer.close()
    # A process that died left, in the second workspace, an answer in flight and a watch of
    # a project still indexing.
    question = "1700000000.000300"
    left = Entry(other, "CB1", question, question, owner="killed", markdown="Half an answer")
    await own_client.set(keys.inflight(other, "CB1", question), json.dumps(left.__dict__))
    await own_client.sadd(keys.inflight_index(other), left.member)
    watch = Watch(
        team=other,
        project_id=str(PROJECT_ID),
        name="Acme Docs",
        sitemap_url="https://acme.example/sitemap.xml",
        channel="CB1",
        user="U1",
        bind=True,
        deadline=time.time() + 600,
        status_ts=None,
        response_url=None,
    )
    await own_client.set(keys.pending_project(other, watch.project_id), watch.to_json())
    await own_client.sadd(keys.pending_projects(other), watch.project_id)

    await start_oauth_bot()

    async def finished() -> bool:
        return not await own_client.exists(
            keys.inflight(other, "CB1", question), keys.pending_project(other, watch.project_id)
        )

    await until(finished)
    (reply,) = slack.thread("CB1", question)
    assert final_text(reply).startswith("Half an answer") and "restarted" in reply.text
    assert await own_client.get(keys.binding(other, "CB1")) == watch.project_id
    assert any("is ready" in final_text(m) for m in slack.messages if m.channel == "CB1")
    assert tokens_used(slack, "CB1") == {token_of(slack, other)}


async def test_readiness_checks_slack_without_a_token_of_its_own(
    start_oauth_bot: StartBot, slack: FakeSlack
) -> None:
    bot = await start_oauth_bot()
    async with bot.session.get(bot.url + "/readyz") as response:
        body = await response.json()

    assert response.status == 200, body
    assert body["checks"]["slack"] == {
        "ok": True,
        "detail": "Slack reachable (OAuth: 0 workspace(s) installed)",
    }
    assert not slack.calls_to("auth.test")  # there is no one token to test
    assert [c.token for c in slack.calls_to("api.test")] == [None]


async def test_starting_oauth_in_socket_mode_prints_one_line(tmp_path: Path) -> None:
    env = {**OAUTH_ENV, "REDIS_URL": "redis://127.0.0.1:6379/0", "SLACK_APP_TOKEN": "xapp-1"}
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    code, out, err = await run_cli(None, tmp_path)

    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "Configuration error: SLACK_CLIENT_ID is set (OAuth) but so is SLACK_APP_TOKEN: "
        "OAuth serves over HTTP, unset SLACK_APP_TOKEN"
    ]
    assert CLIENT_SECRET not in err


async def test_the_fake_exchanges_a_code_once_with_the_exact_credentials_and_redirect(
    slack: FakeSlack, oauth_app: OAuthApp
) -> None:
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(base_url=slack.api_url, session=session, retry_handlers=[])

        async def exchange(**changes: str | None) -> dict[str, Any]:
            params: dict[str, Any] = {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "code": code,
                "redirect_uri": REDIRECT_URI,
            } | changes
            try:
                return dict((await client.oauth_v2_access(**params)).data)
            except SlackApiError as error:
                return dict(error.response.data)

        code = slack.approve_install(None, enterprise="E1", redirect_uri=REDIRECT_URI)
        assert (await exchange(client_id="9.9"))["error"] == "invalid_client_id"
        assert (await exchange(client_secret="x" * 32))["error"] == "bad_client_secret"
        assert (await exchange(redirect_uri="https://elsewhere/"))["error"] == "bad_redirect_uri"
        assert (await exchange(code="made-up"))["error"] == "invalid_code"
        org = await exchange()
        assert org["ok"] and org["is_enterprise_install"] is True and org["team"] is None
        assert org["enterprise"]["id"] == "E1" and org["token_type"] == "bot"
        assert org["access_token"].startswith("xoxb-") and org["authed_user"]["id"]
        assert (await exchange())["error"] == "invalid_code"  # a code is good once

        code = slack.approve_install("T9", enterprise="E1")
        workspace = await exchange(redirect_uri=None)
        assert workspace["team"]["id"] == "T9" and workspace["enterprise"]["id"] == "E1"
        assert workspace["is_enterprise_install"] is False
        who = await client.auth_test(token=workspace["access_token"])
        assert (who["team_id"], who["user_id"]) == ("T9", workspace["bot_user_id"])
