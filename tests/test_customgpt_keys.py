"""Each workspace brings its own CustomGPT key: an admin connects it in a modal, it is stored
encrypted, and everything the workspace does with CustomGPT carries it; another workspace's
key sees none of its knowledge bases. Proved by what the fake CustomGPT received (which key,
which project), what Slack received (the modal, the replies) and what Redis holds."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as redis
from cryptography.fernet import Fernet

from bot import key_modal, keys, log_setup, messages
from tests.clocks import FastClock
from tests.driver import RunningBot, SlackSender
from tests.fakes.customgpt import FIRST_CREATED_PROJECT_ID, FakeCustomGPT
from tests.fakes.slack import FakeSlack, SlackLimits, view_problem
from tests.redis_process import RedisProcess
from tests.test_answer_presentation import click
from tests.test_commands import run
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]
ENCRYPTION_KEY = Fernet.generate_key().decode()
# Shaped like no known credential: only the bot's knowledge of them can redact them.
KEY_A = "alpha-workspace-key-Qw8e7r6t5y"
KEY_B = "bravo-workspace-key-Zx1c2v3b4n"
ADMIN = "UADMIN"
PROJECT_A = 501
PROJECT_B = 601
OWN_KEYS: dict[str, Any] = {
    "customgpt_shared_key": False,
    "customgpt_key_encryption_keys": (ENCRYPTION_KEY,),
    "customgpt_admin_users": frozenset({ADMIN}),
}


def add_account_a(customgpt: FakeCustomGPT) -> FakeCustomGPT:
    """Gives the fake a CustomGPT account besides the operator's (KEY_A), with one knowledge
    base (PROJECT_A): the account a workspace connects in most tests of its own key."""
    customgpt.add_account(KEY_A)
    customgpt.add_project(PROJECT_A, "Alpha Docs", account=KEY_A)
    return customgpt


@pytest.fixture
def accounts(customgpt: FakeCustomGPT) -> FakeCustomGPT:
    """Two CustomGPT accounts besides the operator's, one knowledge base each."""
    add_account_a(customgpt)
    customgpt.add_account(KEY_B)
    customgpt.add_project(PROJECT_B, "Bravo Docs", account=KEY_B)
    return customgpt


@pytest.fixture
async def own_keys(start_bot: StartBot, accounts: FakeCustomGPT) -> RunningBot:
    """A bot where no key serves every workspace: each must connect its own."""
    return await start_bot(**OWN_KEYS)


@pytest.fixture
async def workspace_b(team: str, redis_client: redis.Redis) -> AsyncIterator[tuple[str, FakeSlack]]:
    """A second workspace (its own Slack) sharing the Redis; its keys are removed after."""
    other = f"{team}B"
    async with FakeSlack(team_id=other, limits=SlackLimits.slack()) as fake:
        yield other, fake
    leftovers = [k async for k in redis_client.scan_iter(match=f"cgpt:{other}:*")]
    if leftovers:
        await redis_client.delete(*leftovers)


def typed(value: str) -> dict[str, dict[str, Any]]:
    return {key_modal.BLOCK_ID: {key_modal.ACTION_ID: {"type": "plain_text_input", "value": value}}}


async def open_modal(bot: RunningBot, slack: FakeSlack, user: str = ADMIN) -> dict[str, Any]:
    """`/customgpt key`: the ack is empty and the modal Slack opened is returned."""
    opened = len(slack.views)
    ack, later = await run(bot, slack, "key", user=user)
    assert (ack, later) == ("", [])
    assert len(slack.views) == opened + 1
    return slack.views[-1].view


async def submit_key(
    sender: SlackSender, bot: RunningBot, view: dict[str, Any], user: str, key: str = KEY_A
) -> dict[str, Any]:
    """`key` submitted in the key modal `view` by `user` through `sender`'s workspace; the
    body of the bot's answer, which must be a 200 with a body (an update or the errors)."""
    status, body = await sender.submit_view(view, typed(key), user=user)
    await bot.idle()
    assert status == 200 and isinstance(body, dict)
    return body


async def connect(
    bot: RunningBot, slack: FakeSlack, api_key: str, user: str = ADMIN
) -> dict[str, Any] | str:
    """Open the modal and submit `api_key` in it; the submission's answer."""
    view = await open_modal(bot, slack)
    status, body = await bot.submit_view(view, typed(api_key), user=user)
    await bot.idle()
    assert status == 200
    return body


async def reply_to(bot: RunningBot, slack: FakeSlack, question: str) -> str:
    """`question` asked by a mention in C1; the final text of the bot's one reply, once idle."""
    ts = await bot.mention(question)
    await bot.idle()
    (reply,) = slack.thread("C1", ts)
    return final_text(reply)


def keys_used(customgpt: FakeCustomGPT, since: int = 0) -> set[str | None]:
    return {r.key for r in customgpt.requests[since:]}


def everything_slack_received(slack: FakeSlack) -> str:
    calls = [json.dumps(call.params) for call in slack.calls]
    responses = [json.dumps(payload) for _, payload in slack.responses]
    return "\n".join(calls + responses)


# -- no key ----------------------------------------------------------------------------------


async def test_without_a_key_a_mention_and_a_dm_are_told_to_connect_one_and_customgpt_is_not_asked(
    own_keys: RunningBot, slack: FakeSlack, accounts: FakeCustomGPT
) -> None:
    ts = await own_keys.mention("what is the refund policy?")
    await own_keys.message("hello?", channel="D1", channel_type="im")
    await own_keys.idle()

    (reply,) = slack.thread("C1", ts)
    assert final_text(reply) == messages.NO_KEY
    assert "/customgpt key" in reply.text
    (dm_reply,) = [m for m in slack.messages if m.channel == "D1"]
    assert dm_reply.text == messages.NO_KEY and dm_reply.thread_ts is None
    assert accounts.requests == []


@pytest.mark.parametrize("command", ["list", "use 501", "status", f"create X {'https://a.b/s'}"])
async def test_without_a_key_commands_say_so_and_customgpt_is_not_asked(
    own_keys: RunningBot, slack: FakeSlack, accounts: FakeCustomGPT, command: str
) -> None:
    ack, later = await run(own_keys, slack, command, user=ADMIN)

    assert ack == messages.NO_KEY_FOR_COMMAND and later == []
    assert accounts.requests == []


# -- the modal ---------------------------------------------------------------------------------


async def test_an_admin_connects_a_key_in_a_modal_and_the_workspace_then_asks_with_it(
    own_keys: RunningBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
) -> None:
    view = await open_modal(own_keys, slack)
    (call,) = slack.calls_to("views.open")
    assert call.ok and str(call.params["trigger_id"]).startswith("trigger-")
    assert view_problem(view) is None and view["callback_id"] == key_modal.CALLBACK_ID
    assert "No key is connected" in json.dumps(view)

    status, body = await own_keys.submit_view(view, typed(f"  {KEY_A} "), user=ADMIN)
    await own_keys.idle()

    # The modal turns into a confirmation that shows nothing of the key.
    assert status == 200 and isinstance(body, dict) and body["response_action"] == "update"
    assert view_problem(body["view"]) is None
    assert "Connected" in json.dumps(body) and KEY_A not in json.dumps(body)
    # Checked with CustomGPT before it was kept: one listing, with the typed key.
    assert [(r.method, r.path, r.key) for r in accounts.requests] == [("GET", "/projects", KEY_A)]
    # Stored encrypted: Redis holds no plaintext, and the encryption key opens it.
    stored = await redis_client.get(keys.customgpt_key(team))
    assert stored is not None and KEY_A not in stored and "alpha" not in stored
    assert json.loads(Fernet(ENCRYPTION_KEY).decrypt(stored.encode()))["api_key"] == KEY_A

    await run(own_keys, slack, f"use {PROJECT_A}", user=ADMIN)
    answer = await reply_to(own_keys, slack, "what is alpha?")

    assert answer == "You asked: what is alpha?"
    assert keys_used(accounts) == {KEY_A}
    assert KEY_A not in everything_slack_received(slack)


async def test_a_wrong_key_gets_an_error_in_the_modal_and_nothing_is_stored(
    own_keys: RunningBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
) -> None:
    body = await connect(own_keys, slack, "not-a-real-key-12345")

    assert body == {
        "response_action": "errors",
        "errors": {key_modal.BLOCK_ID: messages.KEY_REJECTED},
    }
    assert [(r.path, r.status) for r in accounts.requests] == [("/projects", 401)]
    assert await redis_client.get(keys.customgpt_key(team)) is None


async def test_a_key_with_spaces_inside_is_refused_without_asking_customgpt(
    own_keys: RunningBot, slack: FakeSlack, accounts: FakeCustomGPT
) -> None:
    body = await connect(own_keys, slack, "two words")

    assert body == {
        "response_action": "errors",
        "errors": {key_modal.BLOCK_ID: messages.KEY_MALFORMED},
    }
    assert accounts.requests == []


async def test_a_key_typed_after_the_command_is_not_used_nor_repeated(
    own_keys: RunningBot, slack: FakeSlack, accounts: FakeCustomGPT
) -> None:
    ack, later = await run(own_keys, slack, f"key {KEY_A}", user=ADMIN)

    assert ack == messages.KEY_USAGE and later == []
    assert KEY_A not in ack
    assert slack.calls_to("views.open") == [] and accounts.requests == []


async def test_non_admins_can_neither_open_submit_nor_remove(
    own_keys: RunningBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
) -> None:
    ack, later = await run(own_keys, slack, "key", user="U1")
    assert ack == messages.KEY_NOT_ADMIN and later == []
    assert slack.calls_to("views.open") == []

    view = await open_modal(own_keys, slack)  # an admin's modal, submitted by someone else
    _, body = await own_keys.submit_view(view, typed(KEY_A), user="U1")
    assert body == {
        "response_action": "errors",
        "errors": {key_modal.BLOCK_ID: messages.KEY_NOT_ADMIN_SHORT},
    }
    assert accounts.requests == []
    assert await redis_client.get(keys.customgpt_key(team)) is None

    await connect(own_keys, slack, KEY_A)
    ack, _ = await run(own_keys, slack, "key remove", user="U1")
    assert ack == messages.KEY_NOT_ADMIN
    assert await redis_client.get(keys.customgpt_key(team)) is not None


async def test_removing_the_key_stops_the_workspace_asking_customgpt(
    own_keys: RunningBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    redis_client: redis.Redis,
    team: str,
) -> None:
    await connect(own_keys, slack, KEY_A)
    assert "A key is connected" in json.dumps(await open_modal(own_keys, slack))

    ack, _ = await run(own_keys, slack, "key remove", user=ADMIN)
    assert ack == messages.key_removed(True, shared=False)
    assert await redis_client.get(keys.customgpt_key(team)) is None
    ack, _ = await run(own_keys, slack, "key remove", user=ADMIN)
    assert ack == messages.key_removed(False, shared=False)

    asked = len(accounts.requests)
    assert await reply_to(own_keys, slack, "still there?") == messages.NO_KEY
    assert len(accounts.requests) == asked


# -- two workspaces --------------------------------------------------------------------------


async def test_workspace_b_cannot_list_bind_or_ask_workspace_as_knowledge_base(
    own_keys: RunningBot,
    start_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    workspace_b: tuple[str, FakeSlack],
    redis_client: redis.Redis,
    team: str,
) -> None:
    team_b, slack_b = workspace_b
    bot_b = await start_bot(slack_api_url=slack_b.api_url, **OWN_KEYS)
    bot_b.team = team_b
    await connect(own_keys, slack, KEY_A)
    await connect(bot_b, slack_b, KEY_B)
    await run(own_keys, slack, f"use {PROJECT_A}", user=ADMIN)
    asked = len(accounts.requests)

    _, listed = await run(bot_b, slack_b, "list")
    _, refused = await run(bot_b, slack_b, f"use {PROJECT_A}", user=ADMIN)
    # Even bound by hand (a stale binding), B's questions go out with B's key and find nothing.
    await redis_client.set(keys.binding(team_b, "C1"), str(PROJECT_A))
    answer = await reply_to(bot_b, slack_b, "what is in alpha?")

    (listing,) = listed
    assert "Bravo Docs" in listing and str(PROJECT_B) in listing
    assert "Alpha Docs" not in listing and str(PROJECT_A) not in listing
    assert refused == [messages.unknown_project(str(PROJECT_A))]
    assert keys_used(accounts, asked) == {KEY_B}
    touched_a = [r for r in accounts.requests[asked:] if f"/projects/{PROJECT_A}" in r.path]
    assert touched_a and {r.status for r in touched_a} == {404}
    assert accounts.prompts() == []  # A's knowledge base was never asked, nor spent
    assert "was not found" in answer

    # A, meanwhile, asks its own with its own key.
    before = len(accounts.requests)
    await own_keys.mention("what is in alpha?")
    await own_keys.idle()
    assert keys_used(accounts, before) == {KEY_A}
    assert accounts.prompts() == ["what is in alpha?"]


# -- every use carries the workspace's key ---------------------------------------------------


async def test_indexing_watches_citations_and_feedback_use_the_workspaces_key(
    start_bot: StartBot, slack: FakeSlack, accounts: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    bot = await start_bot(clock=FastClock(), **OWN_KEYS)
    await connect(bot, slack, KEY_A)
    accounts.default_index_steps = [(3, 1, 0), (3, 3, 3)]
    asked = len(accounts.requests)

    await run(bot, slack, "create Alpha Two https://alpha.example/sitemap.xml", user=ADMIN)
    await bot.idle()
    new_id = FIRST_CREATED_PROJECT_ID
    assert accounts.projects[new_id].account == KEY_A
    accounts.add_citation(new_id, 9, "Refunds", "https://alpha.example/refunds")
    accounts.queue_answer(["Thirty days."], citations=[9], message_id=70)
    ts = await bot.mention("refunds?", user="UASKER")
    await bot.idle()
    (reply,) = slack.thread("C1", ts)
    await bot.action(click(reply, "feedback_liked", slack.response_url("fb"), user="UASKER"))
    await bot.idle()

    paths = {(r.method, r.path.replace(str(new_id), "NEW")) for r in accounts.requests[asked:]}
    assert {
        ("POST", "/projects"),
        ("GET", "/projects/NEW/stats"),
        ("GET", "/projects/NEW/citations/9"),
    } <= paths
    assert any(method == "PUT" for method, _ in paths)
    assert accounts.feedback and accounts.feedback[0][3] == "liked"
    assert keys_used(accounts, asked) == {KEY_A}
    assert "Refunds" in json.dumps(slack.message("C1", reply.ts).blocks)


async def test_an_index_watch_stops_when_the_workspaces_key_is_removed(
    start_bot: StartBot, slack: FakeSlack, accounts: FakeCustomGPT
) -> None:
    bot = await start_bot(clock=FastClock(), **OWN_KEYS)
    await connect(bot, slack, KEY_A)
    accounts.default_index_steps = [(3, 1, 0), (5, 2, 1), (9, 9, 9)]
    first_poll = accounts.hold_next("/stats$")

    status, _ = await bot.command(
        "create Alpha Two https://alpha.example/sitemap.xml",
        response_url=slack.response_url("create"),
        user=ADMIN,
    )
    assert status == 200
    await first_poll.reached.wait()
    status, body = await bot.command(
        "key remove", response_url=slack.response_url("remove"), user=ADMIN
    )
    assert isinstance(body, dict) and body["text"] == messages.key_removed(True, shared=False)
    first_poll.release.set()
    await bot.idle()

    polls = [r for r in accounts.requests if r.path.endswith("/stats")]
    assert len(polls) == 1 and polls[0].key == KEY_A  # none after the key was removed
    (status_message,) = [m for m in slack.messages if m.thread_ts is None]
    assert final_text(status_message) == messages.watch_without_key(
        "Alpha Two", str(FIRST_CREATED_PROJECT_ID)
    )


# -- shared key ------------------------------------------------------------------------------


async def test_with_the_shared_key_every_workspace_asks_with_it_until_one_connects_its_own(
    start_bot: StartBot, slack: FakeSlack, accounts: FakeCustomGPT
) -> None:
    bot = await start_bot(
        customgpt_key_encryption_keys=(ENCRYPTION_KEY,), customgpt_admin_users=frozenset({ADMIN})
    )
    await bot.mention("default project?")
    await bot.idle()
    assert keys_used(accounts) == {"test-key"}  # the environment's key, default project
    assert accounts.prompts() == ["default project?"]

    await connect(bot, slack, KEY_A)
    asked = len(accounts.requests)
    answer = await reply_to(bot, slack, "now?")
    # Its own key wins; the operator's default project is not its account's to ask.
    assert "No knowledge base is connected here" in answer
    assert len(accounts.requests) == asked

    ack, _ = await run(bot, slack, "key remove", user=ADMIN)
    assert ack == messages.key_removed(True, shared=True)
    await bot.mention("and now?")
    await bot.idle()
    assert keys_used(accounts, asked) == {"test-key"}


async def test_without_an_encryption_key_the_command_says_the_operator_must_set_one(
    start_bot: StartBot, slack: FakeSlack, accounts: FakeCustomGPT
) -> None:
    bot = await start_bot(customgpt_admin_users=frozenset({ADMIN}))

    ack, _ = await run(bot, slack, "key", user=ADMIN)

    assert ack == messages.KEY_CANNOT_BE_STORED
    assert slack.calls_to("views.open") == []


# -- at rest and in logs -----------------------------------------------------------------------


async def test_a_stored_key_survives_a_restart_and_a_rotation_of_the_encryption_key(
    own_keys: RunningBot,
    start_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await connect(own_keys, slack, KEY_A)
    await run(own_keys, slack, f"use {PROJECT_A}", user=ADMIN)
    await own_keys.close()

    rotated = await start_bot(
        **(
            OWN_KEYS
            | {"customgpt_key_encryption_keys": (Fernet.generate_key().decode(), ENCRYPTION_KEY)}
        )
    )
    before = len(accounts.requests)
    await rotated.mention("after the restart?")
    await rotated.idle()
    assert keys_used(accounts, before) == {KEY_A}
    assert accounts.prompts() == ["after the restart?"]
    await rotated.close()

    caplog.set_level(logging.ERROR)
    lost = await start_bot(
        **(OWN_KEYS | {"customgpt_key_encryption_keys": (Fernet.generate_key().decode(),)})
    )
    before = len(accounts.requests)
    assert await reply_to(lost, slack, "and with a new encryption key?") == messages.NO_KEY
    assert len(accounts.requests) == before
    assert "cannot be decrypted" in caplog.text


async def test_a_connected_key_is_redacted_from_logs_and_slack_texts(
    own_keys: RunningBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What start-up puts on the log handler: it knows the environment's secrets only.
    handler_filter = log_setup.use_secrets(["xoxb-test-token"])
    try:
        caplog.set_level(logging.DEBUG)
        await connect(own_keys, slack, KEY_A)
        await run(own_keys, slack, f"use {PROJECT_A}", user=ADMIN)
        # CustomGPT echoes the key in an error: neither the log nor the reply repeats it.
        accounts.queue_answer([], error_status=400, error_message=f"bad request for key {KEY_A}")
        answer = await reply_to(own_keys, slack, "q")

        assert "bad request for key [redacted]" in answer
        assert KEY_A not in everything_slack_received(slack)
        assert not any(KEY_A in r.getMessage() for r in caplog.records)
        # A library logging it (a request's headers at DEBUG) is redacted by the handler.
        record = logging.LogRecord(
            "aiohttp", logging.DEBUG, __file__, 1, "sent key=%s", (KEY_A,), None
        )
        assert handler_filter.filter(record)
        assert record.getMessage() == f"sent key={log_setup.REDACTED}"
    finally:
        log_setup.use_secrets(())


async def test_uninstalling_deletes_the_workspaces_key(
    own_keys: RunningBot, slack: FakeSlack, redis_client: redis.Redis, team: str
) -> None:
    await connect(own_keys, slack, KEY_A)
    assert await redis_client.get(keys.customgpt_key(team)) is not None

    status, _ = await own_keys.event({"type": "app_uninstalled"})
    await own_keys.idle()

    assert status == 200
    assert await redis_client.get(keys.customgpt_key(team)) is None
    assert await reply_to(own_keys, slack, "still answering?") == messages.NO_KEY


# -- the fakes are as strict as the real APIs --------------------------------------------------


async def test_the_fake_customgpt_scopes_projects_by_key(accounts: FakeCustomGPT) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:

        async def get(path: str, key: str) -> tuple[int, Any]:
            headers = {"Authorization": f"Bearer {key}"}
            async with session.get(accounts.api_url + path, headers=headers) as response:
                return response.status, await response.json()

        status, listing = await get("/projects", KEY_B)
        assert status == 200
        assert [p["id"] for p in listing["data"]["data"]] == [PROJECT_B]
        assert (await get(f"/projects/{PROJECT_A}", KEY_B))[0] == 404
        assert (await get(f"/projects/{PROJECT_A}", KEY_A))[0] == 200
        assert (await get("/projects", "unknown-key"))[0] == 401


async def test_the_fake_slack_opens_a_valid_modal_once_per_trigger(slack: FakeSlack) -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token="xoxb-1", base_url=slack.api_url)
    view = key_modal.key_view(connected=False, shared=False)
    await client.views_open(trigger_id="t-1", view=view)
    for trigger, bad_view, error in [
        ("t-1", view, "exchanged_trigger_id"),
        ("", view, "invalid_arguments"),
        ("t-2", {**view, "title": {"type": "plain_text", "text": "x" * 25}}, "invalid_arguments"),
        ("t-3", {k: v for k, v in view.items() if k != "submit"}, "invalid_arguments"),
    ]:
        with pytest.raises(SlackApiError) as refused:
            await client.views_open(trigger_id=trigger, view=bad_view)
        assert refused.value.response["error"] == error
    assert [v.trigger_id for v in slack.views] == ["t-1"]


# -- while Redis is down -----------------------------------------------------------------------


async def test_a_workspace_seen_before_keeps_its_key_while_redis_is_down(
    start_bot: StartBot,
    slack: FakeSlack,
    accounts: FakeCustomGPT,
    own_redis: RedisProcess,
    own_client: redis.Redis,
    team: str,
) -> None:
    bot = await start_bot(clock=FastClock(), redis_url=own_redis.url, **OWN_KEYS)
    await connect(bot, slack, KEY_A)
    await run(bot, slack, f"use {PROJECT_A}", user=ADMIN)
    await bot.mention("before the outage", channel="C1")
    await bot.idle()
    assert await own_client.get(keys.customgpt_key(team)) is not None

    await own_redis.stop()
    before = len(accounts.requests)
    ts = await bot.mention("during the outage", channel="C1")
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    assert final_text(reply) == "You asked: during the outage"
    assert keys_used(accounts, before) == {KEY_A}
