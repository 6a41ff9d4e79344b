"""`/customgpt` end to end: signed slash commands in; what the user saw (the immediate ack,
response-URL messages, the channel's status message), what CustomGPT received and what
Redis holds out. Index watches run on a FastClock, so 30 minutes of polling take no time."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as redis

from tests.clocks import FastClock
from tests.conftest import PROJECT_ID
from tests.driver import RunningBot
from tests.fakes.customgpt import FIRST_CREATED_PROJECT_ID, FakeCustomGPT
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.views import final_text, shown

StartBot = Callable[..., Awaitable[RunningBot]]
NEW_ID = str(FIRST_CREATED_PROJECT_ID)
SITEMAP = "https://acme.example/sitemap.xml"
PROGRESS = [(3, 1, 0), (10, 6, 4), (10, 10, 10)]
_names = itertools.count(1)


async def run(bot: RunningBot, slack: FakeSlack, text: str, **where: str) -> tuple[str, list[str]]:
    """Send `/customgpt text`, wait until the bot is idle; (the ack's text, later replies)."""
    name = f"command-{next(_names)}"
    status, body = await bot.command(text, response_url=slack.response_url(name), **where)
    assert status == 200
    await bot.idle()
    ack = ""
    if isinstance(body, dict):
        assert body.get("response_type", "ephemeral") == "ephemeral"
        ack = str(body.get("text") or "")
    later = [str(p["text"]) for n, p in slack.responses if n == name]
    assert all(p.get("response_type") == "ephemeral" for n, p in slack.responses if n == name)
    return ack, later


def status_message(slack: FakeSlack, channel: str = "C1") -> FakeMessage:
    (message,) = [m for m in slack.messages if m.channel == channel and m.thread_ts is None]
    return message


def creations(customgpt: FakeCustomGPT) -> list[dict[str, Any]]:
    return [r.body for r in customgpt.requests if (r.method, r.path) == ("POST", "/projects")]


async def pending(redis_client: redis.Redis, team: str) -> set[str]:
    return {str(m) for m in await redis_client.smembers(f"cgpt:{team}:pending")}


# -- create ----------------------------------------------------------------------------------


async def test_create_shows_progress_then_binds_and_the_next_mention_asks_the_new_project(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    clock = FastClock()
    bot = await start_bot(clock=clock)
    customgpt.default_index_steps = PROGRESS

    status, body = await bot.command(
        f"create Acme Help {SITEMAP}", response_url=slack.response_url("create")
    )
    # Slack's 3-second rule: the command is answered by the ack itself, before any work.
    assert status == 200 and isinstance(body, dict)
    assert body["response_type"] == "ephemeral"
    assert "Creating *Acme Help*" in body["text"]
    await bot.idle()

    assert creations(customgpt) == [{"project_name": "Acme Help", "sitemap_path": SITEMAP}]
    message = status_message(slack)
    versions = shown(message)
    assert "waiting for CustomGPT to start crawling" in versions[0]
    assert "<@U1>" in versions[0] and f"(`{NEW_ID}`)" in versions[0]
    # Progress edits wait for the workspace's edit budget and a newer one replaces a pending
    # one, so which counts were shown depends on timing; that some were shown does not.
    assert any(" pages found, " in v for v in versions[1:-1])
    assert "is ready (10 pages indexed)" in final_text(message)
    assert "This channel now asks it" in final_text(message)
    assert slack.responses == []  # nothing went wrong, nothing more to say privately

    assert await redis_client.get(f"cgpt:{bot.team}:bind:C1") == NEW_ID
    assert await pending(redis_client, bot.team) == set()
    assert await redis_client.get(f"cgpt:{bot.team}:pending:{NEW_ID}") is None
    # Polled with back-off: never sooner than 10 s apart, never more than 60 s.
    assert clock.slept and all(10 <= s <= 60 for s in clock.slept)

    await bot.mention("What is Acme?")
    await bot.idle()
    asked = [r.path for r in customgpt.requests if r.path.endswith("/messages")]
    assert len(asked) == 1 and asked[0].startswith(f"/projects/{NEW_ID}/")


async def test_a_restart_during_indexing_resumes_the_watch(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    clock = FastClock()
    clock.hold()  # the watch stops at its first sleep
    first = await start_bot(clock=clock)
    customgpt.default_index_steps = PROGRESS
    await first.command(f"create Acme {SITEMAP}", response_url=slack.response_url("create"))
    await slack.wait_for(
        lambda: any("3 pages found" in v for m in slack.messages for v in shown(m))
    )
    stored = json.loads(await redis_client.get(f"cgpt:{first.team}:pending:{NEW_ID}") or "{}")
    assert stored["channel"] == "C1" and stored["bind"] is True and stored["user"] == "U1"
    assert stored["status_ts"] == status_message(slack).ts
    await first.close()  # a restart mid-watch: the watch stays pending
    assert await pending(redis_client, first.team) == {NEW_ID}
    assert await redis_client.get(f"cgpt:{first.team}:bind:C1") is None

    clock.release()
    second = await start_bot(clock=clock)
    await second.idle()

    message = status_message(slack)  # the same status message, finished, not a new one
    assert "is ready" in final_text(message)
    assert any("10 pages found, 4 indexed" in v for v in shown(message))
    assert await redis_client.get(f"cgpt:{second.team}:bind:C1") == NEW_ID
    assert await pending(redis_client, second.team) == set()
    assert len(creations(customgpt)) == 1


async def test_a_project_that_never_becomes_ready_ends_with_a_clear_message(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    clock = FastClock()
    bot = await start_bot(clock=clock, customgpt_index_timeout=600.0)
    customgpt.default_index_steps = []  # created inactive, and it never finishes

    await run(bot, slack, f"create Stuck {SITEMAP}")

    final = final_text(status_message(slack))
    assert "still isn't ready after 10 minutes (0 pages found, 0 indexed)" in final
    assert "This channel was not bound" in final and f"/customgpt use {NEW_ID}" in final
    assert await redis_client.get(f"cgpt:{bot.team}:bind:C1") is None
    assert await pending(redis_client, bot.team) == set()
    polls = [r for r in customgpt.requests if r.path == f"/projects/{NEW_ID}/stats"]
    assert 2 <= len(polls) <= 600 / 10 + 1
    # Nothing changes between polls, so the interval doubles from 10 s up to 60 s.
    assert clock.slept[:5] == [10, 20, 40, 60, 60]
    assert all(10 <= s <= 60 for s in clock.slept)


async def test_create_with_no_bind_a_slack_link_and_a_hostile_name(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    bot = await start_bot(clock=FastClock())
    customgpt.default_index_steps = [(1, 1, 1)]
    await redis_client.set(f"cgpt:{bot.team}:bind:C1", str(PROJECT_ID))

    await run(bot, slack, f"create <!channel> Docs --no-bind <{SITEMAP}|acme.example>")

    assert creations(customgpt) == [{"project_name": "<!channel> Docs", "sitemap_path": SITEMAP}]
    message = status_message(slack)
    assert all("<!channel>" not in v for v in shown(message))
    assert "&lt;!channel&gt; Docs" in final_text(message)
    assert f"Bind a channel to it with `/customgpt use {NEW_ID}`" in final_text(message)
    assert await redis_client.get(f"cgpt:{bot.team}:bind:C1") == str(PROJECT_ID)


async def test_create_where_the_bot_cannot_post_says_so_and_still_finishes(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    bot = await start_bot(clock=FastClock())
    customgpt.default_index_steps = PROGRESS
    slack.refuse_channel("C9")

    ack, later = await run(bot, slack, f"create Acme {SITEMAP}", channel="C9")

    assert "Creating" in ack
    assert len(later) == 2, later
    assert "can't post its progress here" in later[0] and "/invite @CustomGPT" in later[0]
    assert "is ready" in later[1] and "This channel now asks it" in later[1]
    assert [m for m in slack.messages if m.channel == "C9"] == []
    assert await redis_client.get(f"cgpt:{bot.team}:bind:C9") == NEW_ID


async def test_a_busy_customgpt_slows_the_watch_down_but_does_not_end_it(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    clock = FastClock()
    bot = await start_bot(clock=clock)
    customgpt.default_index_steps = PROGRESS
    customgpt.fail_next(r"^/projects/\d+/stats$", 429, retry_after=45, times=2)

    await run(bot, slack, f"create Acme {SITEMAP}")

    assert "is ready" in final_text(status_message(slack))
    assert await redis_client.get(f"cgpt:{bot.team}:bind:C1") == NEW_ID
    assert clock.slept[:2] == [45, 45]  # CustomGPT's Retry-After, honoured


async def test_a_project_deleted_while_indexing_ends_the_watch_with_a_message(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    bot = await start_bot(clock=FastClock())
    customgpt.default_index_steps = PROGRESS
    customgpt.fail_next(r"^/projects/\d+/stats$", 404, "Project not found")

    await run(bot, slack, f"create Acme {SITEMAP}")

    final = final_text(status_message(slack))
    assert "I stopped watching *Acme*" in final and "no longer has this project" in final
    assert await redis_client.get(f"cgpt:{bot.team}:bind:C1") is None
    assert await pending(redis_client, bot.team) == set()


async def test_a_binding_made_by_hand_during_indexing_is_not_taken_over(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    clock = FastClock()
    clock.hold()
    bot = await start_bot(clock=clock)
    customgpt.default_index_steps = PROGRESS
    await bot.command(f"create Acme {SITEMAP}", response_url=slack.response_url("create"))
    await slack.wait_for(
        lambda: any("3 pages found" in v for m in slack.messages for v in shown(m))
    )

    status, _ = await bot.command("use 42", response_url=slack.response_url("use"))
    assert status == 200
    await slack.wait_for(lambda: any(n == "use" for n, _ in slack.responses))
    (use_reply,) = [p["text"] for n, p in slack.responses if n == "use"]
    assert "now asks *Acme Docs*" in use_reply
    assert f"*Acme* (`{NEW_ID}`), still indexing, will not take over" in use_reply

    clock.release()
    await bot.idle()
    assert await redis_client.get(f"cgpt:{bot.team}:bind:C1") == str(PROJECT_ID)
    final = final_text(status_message(slack))
    assert "is ready" in final and f"/customgpt use {NEW_ID}" in final


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("create", "Usage: `/customgpt create <name> <sitemap-url>"),
        (f"create {SITEMAP}", "Usage: `/customgpt create"),
        (f"create Acme {SITEMAP} --bind", "Usage: `/customgpt create"),
        ("create Acme ftp://acme.example/sitemap.xml", "must start with `http://` or `https://`"),
        ("create Acme acme.example/sitemap.xml", "must start with `http://`"),
        ("create Acme https:///sitemap.xml", "it has no host name"),
        ("create Acme https://acme.example/" + "a" * 2030, "longer than 2,048 characters"),
        ("create " + "n" * 101 + f" {SITEMAP}", "must be 1 to 100 characters"),
        (f'create "" {SITEMAP}', "must be 1 to 100 characters"),
    ],
)
async def test_bad_create_input_is_refused_at_once_with_what_to_do(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, text: str, expected: str
) -> None:
    ack, later = await run(bot, slack, text)
    assert expected in ack
    assert "/customgpt create Acme Docs https://acme.com/sitemap.xml" in ack  # an example
    assert later == [] and creations(customgpt) == [] and slack.messages == []


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ((429, 30), "run out of query credits"),
        ((401, None), "CustomGPT rejected the API key"),
        ((500, None), "CustomGPT had a problem (error 500)"),
    ],
)
async def test_create_refused_by_customgpt_says_so_and_leaves_nothing_behind(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    failure: tuple[int, int | None],
    expected: str,
) -> None:
    status, retry_after = failure
    customgpt.fail_next("^/projects$", status, retry_after=retry_after)

    ack, later = await run(bot, slack, f"create Acme {SITEMAP}")

    assert "Creating" in ack
    assert len(later) == 1 and expected in later[0]
    assert "test-key" not in later[0]
    assert slack.messages == [] and customgpt.projects.keys() == {PROJECT_ID}
    assert await pending(redis_client, bot.team) == set()


# -- use, status, list, new, help ------------------------------------------------------------


async def test_use_binds_a_ready_project_and_use_default_removes_the_binding(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    customgpt.add_project(7, "Support <b>")
    ack, later = await run(bot, slack, "use 7", channel="D5")
    assert ack == ""
    assert later == [
        ":white_check_mark: This channel now asks *Support &lt;b&gt;* (`7`). "
        "Mention me with a question (in a DM, just write it)."
    ]
    assert await redis_client.get(f"cgpt:{bot.team}:bind:D5") == "7"
    assert await redis_client.ttl(f"cgpt:{bot.team}:bind:D5") == -1  # kept until changed

    await bot.message("hello", channel="D5", channel_type="im")
    await bot.idle()
    (asked,) = [r.path for r in customgpt.requests if r.path.endswith("/messages")]
    assert asked.startswith("/projects/7/")

    ack, _ = await run(bot, slack, "use default", channel="D5")
    assert f"now asks the default project (`{PROJECT_ID}`)" in ack
    assert await redis_client.get(f"cgpt:{bot.team}:bind:D5") is None


@pytest.mark.parametrize(
    ("text", "now", "later"),
    [
        ("use 999", "", "There is no project `999`"),
        ("use 8", "", "is still indexing and can't answer yet"),
        ("use abc", "`abc` is not a project id", None),
        ("use", "Usage: `/customgpt use <project-id>`", None),
    ],
)
async def test_use_refuses_what_cannot_answer(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    redis_client: redis.Redis,
    text: str,
    now: str,
    later: str | None,
) -> None:
    customgpt.add_project(8, "Half done", active=False)
    ack, replies = await run(bot, slack, text)
    assert now in ack
    assert replies == [] if later is None else (len(replies) == 1 and later in replies[0])
    assert await redis_client.get(f"cgpt:{bot.team}:bind:C1") is None


async def test_use_with_a_rejected_key_says_who_can_fix_it(
    start_bot: StartBot, slack: FakeSlack
) -> None:
    bot = await start_bot(customgpt_api_key="revoked-key")
    _, later = await run(bot, slack, "use 42")
    assert len(later) == 1 and "connect a working one with `/customgpt key`" in later[0]
    assert "revoked-key" not in later[0]


async def test_status_shows_the_channels_project_and_its_pages(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    customgpt.set_stats(PROJECT_ID, 120, 120, 118)
    _, later = await run(bot, slack, "status")
    assert later == [
        f"This channel asks *Acme Docs* (`{PROJECT_ID}`): the default project (nothing is "
        "bound here).\n• Answers questions: yes\n• Pages: 120 found, 118 indexed"
    ]

    customgpt.add_project(8, "Half done", active=False)
    await redis_client.set(f"cgpt:{bot.team}:bind:C1", "8")
    _, later = await run(bot, slack, "status")
    assert "*Half done* (`8`): bound to this channel" in later[0]
    assert "not yet, it is still indexing" in later[0]

    _, later = await run(bot, slack, "status 999")
    assert "There is no project `999`" in later[0]


async def test_status_and_mentions_without_any_project_say_how_to_bind_one(
    start_bot: StartBot, slack: FakeSlack
) -> None:
    bot = await start_bot(customgpt_project_id=None)
    ack, later = await run(bot, slack, "status")
    assert "Bind one with `/customgpt use <project-id>`" in ack and later == []
    ts = await bot.mention("anyone there?")
    await bot.idle()
    (reply,) = slack.thread("C1", ts)
    assert "/customgpt use <project-id>" in final_text(reply)


async def test_list_pages_through_the_account_and_marks_this_channels_project(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    for number in range(1, 26):
        customgpt.add_project(100 + number, f"Project {number}", active=number % 2 == 0)

    _, (first,) = await run(bot, slack, "list")
    lines = first.splitlines()
    assert lines[0] == "*Projects* (page 1 of 2)"
    assert sum(line.startswith("• ") for line in lines) == 20
    assert f"• *Acme Docs* (`{PROJECT_ID}`): ready ← this channel" in lines
    assert "• *Project 1* (`101`): indexing" in lines
    assert "Next page: `/customgpt list 2`" in lines

    _, (second,) = await run(bot, slack, "list 2")
    assert second.splitlines()[0] == "*Projects* (page 2 of 2)"
    assert sum(line.startswith("• ") for line in second.splitlines()) == 6
    assert "Next page" not in second

    _, (beyond,) = await run(bot, slack, "list 9")
    assert "There is no page 9" in beyond
    ack, later = await run(bot, slack, "list next")
    assert "Usage: `/customgpt list [page]`" in ack and later == []


async def test_list_when_the_query_credits_are_exhausted(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.fail_next("^/projects$", 429, "Resource <Exhausted>", retry_after=120)
    _, later = await run(bot, slack, "list")
    assert later == [
        ":no_entry: The CustomGPT account has run out of query credits (CustomGPT said: "
        "“Resource &lt;Exhausted&gt;”). Please tell whoever manages the CustomGPT plan; "
        "asking again won't help until they add credits."
    ]


@pytest.mark.parametrize("text", ["", "help", "HELP", "frobnicate now"])
async def test_help_and_unknown_verbs_list_every_verb_with_an_example(
    bot: RunningBot, slack: FakeSlack, text: str
) -> None:
    ack, later = await run(bot, slack, text)
    for example in (
        "/customgpt create Acme Docs https://acme.com/sitemap.xml",
        "/customgpt use 12345",
        "/customgpt status",
        "/customgpt list 2",
        "/customgpt new",
    ):
        assert example in ack
    assert ("I don't know `frobnicate`" in ack) == text.startswith("frob")
    assert later == []


# -- who may ---------------------------------------------------------------------------------


async def test_only_admins_create_and_bind_when_the_allow_list_is_set(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT, redis_client: redis.Redis
) -> None:
    bot = await start_bot(clock=FastClock(), customgpt_admin_users=frozenset({"UADMIN"}))
    customgpt.default_index_steps = [(1, 1, 1)]

    for text in (f"create Acme {SITEMAP}", "use 42", "use default"):
        ack, later = await run(bot, slack, text, user="U2")
        assert "Only the bot's admins" in ack and later == [], text
    assert creations(customgpt) == [] and slack.messages == []
    assert await redis_client.get(f"cgpt:{bot.team}:bind:C1") is None

    _, later = await run(bot, slack, "status", user="U2")  # reading stays open
    assert "Acme Docs" in later[0]
    ts = await bot.mention("questions stay open too", user="U2")
    await bot.idle()
    assert "You asked" in final_text(slack.thread("C1", ts)[0])

    _, later = await run(bot, slack, "use 42", user="UADMIN")
    assert "now asks *Acme Docs*" in later[0]
    await run(bot, slack, f"create Acme {SITEMAP}", user="UADMIN")
    assert len(creations(customgpt)) == 1
    assert re.search(r"is ready", final_text(status_message(slack)))


async def test_create_is_acknowledged_before_customgpt_is_even_asked(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    held = customgpt.hold_next(r"^/projects$")  # CustomGPT takes its time to create it
    status, body = await bot.command(
        f"create Slow {SITEMAP}", response_url=slack.response_url("slow")
    )
    # The ack came back while the creation was still waiting on CustomGPT.
    assert status == 200 and isinstance(body, dict) and "Creating *Slow*" in body["text"]
    await held.reached.wait()
    assert creations(customgpt) == [{"project_name": "Slow", "sitemap_path": SITEMAP}]
    assert slack.calls_to("chat.postMessage") == []  # nothing posted before CustomGPT answered
    held.release.set()
    await slack.wait_for(lambda: len(slack.calls_to("chat.postMessage")) == 1)
