"""The fakes speak the real protocols: what the rest of the suite relies on, checked once.

FakeSlack is driven through slack_sdk (the client the bot uses), plus raw form posts;
FakeCustomGPT through raw aiohttp, reading the SSE stream byte-for-byte, so a bug in the
bot's client cannot hide a bug in the fake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.clocks import ManualClock
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import Bucket, FakeSlack, SlackLimits

TOKEN = "xoxb-test"
AUTH = {"Authorization": "Bearer test-key"}
BUTTON = {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "b"}}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def client(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as session:
        yield AsyncWebClient(token=TOKEN, base_url=slack.api_url, session=session)


@pytest.fixture
async def cgpt() -> AsyncIterator[FakeCustomGPT]:
    async with FakeCustomGPT() as fake:
        fake.add_project(1, "Docs")
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield session


# -- FakeSlack -----------------------------------------------------------------------------


async def test_slack_auth_test_identifies_the_bot(slack: FakeSlack, client: AsyncWebClient) -> None:
    answer = await client.auth_test()

    assert answer["user_id"] == "UBOT"
    assert answer["bot_id"] == "BBOT"
    assert answer["team_id"] == "T1"
    assert slack.calls_to("auth.test")[0].token == TOKEN


async def test_slack_messages_keep_their_thread_and_edit_history(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    first = await client.chat_postMessage(channel="C1", thread_ts="1.0", text="Thinking…")
    second = await client.chat_postMessage(channel="C1", thread_ts="1.0", text="part 2")
    await client.chat_update(channel="C1", ts=first["ts"], text="Hello")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Hello* world"}}]
    await client.chat_update(channel="C1", ts=first["ts"], text="Hello world", blocks=blocks)

    assert (first["ts"], second["ts"]) == ("1700000000.000100", "1700000000.000200")
    message = slack.message("C1", first["ts"])
    assert message.text == "Hello world"
    assert message.blocks == blocks
    assert message.edits == [("Thinking…", None), ("Hello", None), ("Hello world", blocks)]
    assert [m.ts for m in slack.thread("C1", "1.0")] == [first["ts"], second["ts"]]
    assert [c.index for c in slack.calls] == [0, 1, 2, 3]


async def test_slack_update_of_unknown_message_fails(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as failure:
        await client.chat_update(channel="C1", ts="1.0", text="x")

    assert failure.value.response["error"] == "message_not_found"


@pytest.mark.parametrize(
    ("text", "blocks", "error"),
    [
        ("x" * 4001, None, "msg_too_long"),
        ("x", [{"type": "divider"}] * 51, "invalid_blocks"),
        (
            "x",
            [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}],
            "invalid_blocks",
        ),
        (
            "x",
            [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
            "invalid_blocks",
        ),
        ("x", [{"type": "context", "elements": []}], "invalid_blocks"),
        ("x", [{"type": "section"}], "invalid_blocks"),
        ("x", [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}], "invalid_blocks"),
        ("x", [{"type": "actions", "elements": [BUTTON] * 26}], "invalid_blocks"),
        (
            "x",
            [{"type": "actions", "elements": [BUTTON | {"value": "v" * 2001}]}],
            "invalid_blocks",
        ),
    ],
)
async def test_slack_enforces_message_limits(
    slack: FakeSlack,
    client: AsyncWebClient,
    text: str,
    blocks: list[dict[str, Any]] | None,
    error: str,
) -> None:
    with pytest.raises(SlackApiError) as failure:
        await client.chat_postMessage(channel="C1", text=text, blocks=blocks)

    assert failure.value.response.status_code == 200
    assert failure.value.response["error"] == error
    assert slack.messages == []


async def test_slack_limits_also_apply_to_updates(slack: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C1", text="short")

    with pytest.raises(SlackApiError, match="msg_too_long"):
        await client.chat_update(channel="C1", ts=posted["ts"], text="x" * 4001)

    assert slack.message("C1", posted["ts"]).edits == [("short", None)]


@pytest.mark.parametrize(("as_http_200", "status"), [(False, 429), (True, 200)])
async def test_slack_rate_limits_on_demand(
    slack: FakeSlack, client: AsyncWebClient, as_http_200: bool, status: int
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="a")
    slack.rate_limit("chat.update", times=2, retry_after=7, as_http_200=as_http_200)

    for _ in range(2):
        with pytest.raises(SlackApiError) as failure:
            await client.chat_update(channel="C1", ts=posted["ts"], text="b")
        assert failure.value.response.status_code == status
        assert failure.value.response.headers["Retry-After"] == "7"
        assert failure.value.response["error"] == "ratelimited"
    await client.chat_update(channel="C1", ts=posted["ts"], text="c")

    assert [c.status for c in slack.calls_to("chat.update")] == [status, status, 200]
    assert slack.message("C1", posted["ts"]).edits == [("a", None), ("c", None)]


async def test_slack_accepts_form_bodies_with_token_field(slack: FakeSlack) -> None:
    blocks = [{"type": "divider"}]
    form = {"token": TOKEN, "channel": "C9", "text": "hi", "blocks": json.dumps(blocks)}
    async with aiohttp.ClientSession() as http:
        async with http.post(slack.api_url + "chat.postMessage", data=form) as response:
            answer = await response.json()

    assert answer["ok"] is True
    call = slack.calls_to("chat.postMessage")[0]
    assert call.token == TOKEN
    assert call.params == {"channel": "C9", "text": "hi", "blocks": blocks}
    assert slack.message("C9", answer["ts"]).blocks == blocks


async def test_slack_other_methods_answer_plausibly(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.add_user("U7")
    channel = await client.conversations_info(channel="C1")
    user = await client.users_info(user="U7")
    ephemeral = await client.chat_postEphemeral(channel="C1", user="U7", text="only you")
    other = await client.api_call("bookmarks.list", json={"channel_id": "C1"})

    assert channel["channel"]["id"] == "C1"
    assert user["user"]["id"] == "U7"
    assert slack.ephemerals[0].text == "only you"
    assert ephemeral["message_ts"] == slack.ephemerals[0].message_ts
    assert other["ok"] is True


async def test_slack_response_url_wakes_wait_for(
    slack: FakeSlack, http: aiohttp.ClientSession
) -> None:
    async def respond_later() -> None:
        await http.post(slack.response_url("cmd-1"), json={"text": "done"})

    task = asyncio.create_task(respond_later())
    await slack.wait_for(lambda: len(slack.responses) == 1, timeout=5)
    await task

    assert slack.responses == [("cmd-1", {"text": "done"})]


async def test_slack_wait_for_times_out_with_the_calls_received(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    await client.auth_test()

    with pytest.raises(AssertionError, match=r"auth\.test"):
        await slack.wait_for(lambda: bool(slack.messages), timeout=0.05)


async def test_slack_accepts_blocks_at_the_limits(slack: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}]},
        {"type": "actions", "elements": [BUTTON | {"value": "v" * 2000}] * 25},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 10},
    ]

    posted = await client.chat_postMessage(channel="C1", text="x", blocks=blocks)

    assert slack.message("C1", posted["ts"]).blocks == blocks


async def test_slack_posts_and_updates_need_text_and_updates_an_exact_ts(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="a")
    assert posted["ts"] == "1700000000.000100"

    for method, params in [
        ("chat.postMessage", {"channel": "C1"}),
        ("chat.update", {"channel": "C1", "ts": posted["ts"], "text": "", "blocks": []}),
    ]:
        with pytest.raises(SlackApiError, match="no_text"):
            await client.api_call(method, json=params)
    # The ts as a float would print it: Slack knows no such message.
    with pytest.raises(SlackApiError, match="message_not_found"):
        await client.chat_update(channel="C1", ts="1700000000.0001", text="b")

    assert slack.message("C1", posted["ts"]).edits == [("a", None)]


# -- FakeSlack: rate limits ----------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def limited(clock: ManualClock) -> AsyncIterator[FakeSlack]:
    """A fake with no limits yet, on a clock that moves only when the test says."""
    async with FakeSlack(clock=clock) as fake:
        yield fake


@pytest.fixture
async def limited_client(limited: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as session:
        yield AsyncWebClient(token=TOKEN, base_url=limited.api_url, session=session)


async def refused(call: Any) -> tuple[int, str, str]:
    """(HTTP status, Retry-After, error) of a call the fake must refuse."""
    with pytest.raises(SlackApiError) as failure:
        await call
    response = failure.value.response
    return response.status_code, response.headers["Retry-After"], response["error"]


async def test_slack_limits_updates_burst_then_429_refilled_continuously(
    limited: FakeSlack, limited_client: AsyncWebClient, clock: ManualClock
) -> None:
    posted = await limited_client.chat_postMessage(channel="C1", text="v0")
    limited.limits = SlackLimits(chat_update=Bucket(burst=3, per_minute=30))
    ts = posted["ts"]

    for n in (1, 2, 3):
        await limited_client.chat_update(channel="C1", ts=ts, text=f"v{n}")
    # Empty: one token comes back every 2 s.
    assert await refused(limited_client.chat_update(channel="C1", ts=ts, text="no")) == (
        429,
        "2",
        "ratelimited",
    )
    clock.advance(1.0)  # half a token: still refused, a whole second to wait at least
    assert await refused(limited_client.chat_update(channel="C1", ts=ts, text="no")) == (
        429,
        "1",
        "ratelimited",
    )
    clock.advance(1.0)  # refilled continuously, not per minute
    await limited_client.chat_update(channel="C1", ts=ts, text="v4")
    clock.advance(600)  # never more than the burst
    for n in (5, 6, 7):
        await limited_client.chat_update(channel="C1", ts=ts, text=f"v{n}")
    await refused(limited_client.chat_update(channel="C1", ts=ts, text="no"))

    assert [text for text, _ in limited.message("C1", ts).edits] == [f"v{n}" for n in range(8)]
    assert limited.count_429("chat.update") == 3
    assert limited.count_429() == 3
    assert limited.max_calls_in_window("chat.update", 60) == 4
    assert limited.max_calls_in_window("chat.update", 60, including_refused=True) == 6
    assert [c.at for c in limited.calls_to("chat.update")][-4:] == [1602.0] * 4
    assert limited.message("C1", ts).edited_at == [1000.0, *[1000.0] * 3, 1002.0, *[1602.0] * 3]


async def test_slack_limits_updates_per_workspace(
    limited: FakeSlack, limited_client: AsyncWebClient
) -> None:
    first = await limited_client.chat_postMessage(channel="C1", text="a")
    second = await limited_client.chat_postMessage(channel="C2", text="b")
    limited.limits = SlackLimits(chat_update=Bucket(burst=2, per_minute=60))

    await limited_client.chat_update(channel="C1", ts=first["ts"], text="a1")
    await limited_client.chat_update(channel="C2", ts=second["ts"], text="b1")
    for channel, ts in (("C1", first["ts"]), ("C2", second["ts"])):
        assert await refused(limited_client.chat_update(channel=channel, ts=ts, text="x")) == (
            429,
            "1",
            "ratelimited",
        )

    assert [m.text for m in limited.messages] == ["a1", "b1"]


async def test_slack_limits_posts_per_channel_within_the_workspace(
    limited: FakeSlack, limited_client: AsyncWebClient
) -> None:
    limited.limits = SlackLimits(
        post_per_channel=Bucket(burst=2, per_minute=60),
        post_per_workspace=Bucket(burst=5, per_minute=12),
    )

    for _ in range(2):
        await limited_client.chat_postMessage(channel="C1", text="c1")
    assert await refused(limited_client.chat_postMessage(channel="C1", text="no")) == (
        429,
        "1",
        "ratelimited",
    )
    for _ in range(2):
        await limited_client.chat_postMessage(channel="C2", text="c2")
    # The refused post took no token from the workspace: one is left for C3.
    await limited_client.chat_postMessage(channel="C3", text="c3")
    # C3 has a token of its own, the workspace none (one every 5 s).
    assert await refused(limited_client.chat_postMessage(channel="C3", text="no")) == (
        429,
        "5",
        "ratelimited",
    )

    assert [m.text for m in limited.messages] == ["c1", "c1", "c2", "c2", "c3"]
    assert limited.count_429("chat.postMessage") == 2


async def test_slack_limits_as_http_200_and_changed_on_a_running_fake(
    limited: FakeSlack, limited_client: AsyncWebClient, clock: ManualClock
) -> None:
    posted = await limited_client.chat_postMessage(channel="C1", text="a")
    for n in range(5):  # no limits yet
        await limited_client.chat_update(channel="C1", ts=posted["ts"], text=f"free {n}")
    limited.limits = SlackLimits(chat_update=Bucket(burst=1, per_minute=6), as_http_200=True)

    await limited_client.chat_update(channel="C1", ts=posted["ts"], text="b")
    assert await refused(limited_client.chat_update(channel="C1", ts=posted["ts"], text="x")) == (
        200,
        "10",
        "ratelimited",
    )
    limited.limits = None
    await limited_client.chat_update(channel="C1", ts=posted["ts"], text="c")

    assert limited.message("C1", posted["ts"]).text == "c"
    assert limited.count_429() == 1


async def test_slack_published_limits_shape() -> None:
    limits = SlackLimits.slack()

    assert limits.chat_update == Bucket(20, 50)
    assert limits.post_per_channel == Bucket(5, 60)
    assert limits.reactions == Bucket(20, 50)
    assert list(limits.buckets_for("chat.postMessage", "C1")) == [
        ("chat.postMessage@C1", Bucket(5, 60)),
        ("chat.postMessage", limits.post_per_workspace),
    ]
    assert [key for key, _ in limits.buckets_for("reactions.remove", "C1")] == ["reactions.remove"]
    assert list(limits.buckets_for("users.info", None)) == [("users.info", limits.default)]


async def test_slack_limits_stream_starts_and_stops_at_tier_2_and_appends_at_tier_4(
    limited: FakeSlack, limited_client: AsyncWebClient
) -> None:
    limited.limits = SlackLimits.slack()
    assert limited.limits.stream_start_stop == Bucket(5, 20)
    assert limited.limits.stream_append == Bucket(20, 100)

    def start(n: int) -> Any:
        return limited_client.api_call(
            "chat.startStream",
            json={
                "channel": "D1",
                "thread_ts": "1700000000.000001",
                "markdown_text": f"s{n}",
                "recipient_team_id": "T1",
                "recipient_user_id": "U1",
            },
        )

    started = [str((await start(n))["ts"]) for n in range(5)]
    # Five at once, then one every 3 s for the workspace: a sixth start waits that long.
    assert await refused(start(5)) == (429, "3", "ratelimited")
    # Stops draw on a bucket of their own, appends on a larger one.
    for ts in started:
        await limited_client.api_call(
            "chat.appendStream", json={"channel": "D1", "ts": ts, "markdown_text": "+"}
        )
        await limited_client.api_call("chat.stopStream", json={"channel": "D1", "ts": ts})
    assert limited.count_429() == 1
    assert [m.text for m in limited.streams()] == [f"s{n}+" for n in range(5)]


async def test_slack_refuses_edits_of_a_message_still_streaming(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    started = await client.api_call(
        "chat.startStream",
        json={
            "channel": "D1",
            "thread_ts": "1700000000.000001",
            "markdown_text": "x" * 11_000,
            "recipient_team_id": "T1",
            "recipient_user_id": "U1",
        },
    )
    ts = str(started["ts"])
    with pytest.raises(SlackApiError) as conflict:
        await client.chat_update(channel="D1", ts=ts, text="edited")
    assert conflict.value.response["error"] == "streaming_state_conflict"
    # The last words of a stop count towards the message's size like an append's.
    with pytest.raises(SlackApiError) as too_long:
        await client.api_call(
            "chat.stopStream", json={"channel": "D1", "ts": ts, "markdown_text": "y" * 1_001}
        )
    assert too_long.value.response["error"] == "msg_too_long"
    await client.api_call("chat.stopStream", json={"channel": "D1", "ts": ts})
    with pytest.raises(SlackApiError) as ended:
        await client.api_call("chat.stopStream", json={"channel": "D1", "ts": ts})
    assert ended.value.response["error"] == "message_not_in_streaming_state"
    await client.chat_update(channel="D1", ts=ts, text="edited")
    assert slack.message("D1", ts).text == "edited"


async def test_slack_limits_reactions_per_workspace(
    limited: FakeSlack, limited_client: AsyncWebClient
) -> None:
    limited.limits = SlackLimits(reactions=Bucket(burst=1, per_minute=60))

    await limited_client.reactions_add(channel="C1", timestamp="1800000000.000001", name="eyes")
    assert await refused(
        limited_client.reactions_add(channel="C2", timestamp="1800000000.000002", name="eyes")
    ) == (429, "1", "ratelimited")

    assert limited.reactions_on("C2", "1800000000.000002") == []


# -- FakeSlack: reactions and failures -----------------------------------------------------

QUESTION_TS = "1800000000.000001"


async def test_slack_reactions_on_a_users_message(slack: FakeSlack, client: AsyncWebClient) -> None:
    await client.reactions_add(channel="C1", timestamp=QUESTION_TS, name="hourglass_flowing_sand")
    await client.reactions_add(channel="C1", timestamp=QUESTION_TS, name="eyes")
    with pytest.raises(SlackApiError, match="already_reacted"):
        await client.reactions_add(channel="C1", timestamp=QUESTION_TS, name="eyes")
    await client.reactions_remove(
        channel="C1", timestamp=QUESTION_TS, name="hourglass_flowing_sand"
    )
    with pytest.raises(SlackApiError, match="no_reaction"):
        await client.reactions_remove(
            channel="C1", timestamp=QUESTION_TS, name="hourglass_flowing_sand"
        )

    assert slack.reactions_on("C1", QUESTION_TS) == ["eyes"]
    assert slack.reaction_history("C1", QUESTION_TS) == [
        ("added", "hourglass_flowing_sand"),
        ("added", "eyes"),
        ("removed", "hourglass_flowing_sand"),
    ]
    assert slack.reactions_on("C2", QUESTION_TS) == []


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"channel": "C1", "timestamp": "1.0", "name": "eyes"}, "bad_timestamp"),
        ({"channel": "C1", "name": "eyes"}, "no_item_specified"),
        ({"timestamp": QUESTION_TS, "name": "eyes"}, "no_item_specified"),
        ({"channel": "C1", "timestamp": QUESTION_TS}, "invalid_name"),
        ({"channel": "C1", "timestamp": QUESTION_TS, "name": ":eyes:"}, "invalid_name"),
    ],
)
async def test_slack_reactions_refuse_bad_targets(
    slack: FakeSlack, client: AsyncWebClient, params: dict[str, str], error: str
) -> None:
    with pytest.raises(SlackApiError) as failure:
        await client.api_call("reactions.add", json=params)

    assert failure.value.response["error"] == error
    assert slack.reaction_log == []


async def test_slack_reactions_on_a_deleted_bot_message_fail(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="a")
    await client.reactions_add(channel="C1", timestamp=posted["ts"], name="eyes")
    await client.chat_delete(channel="C1", ts=posted["ts"])

    with pytest.raises(SlackApiError, match="message_not_found"):
        await client.reactions_remove(channel="C1", timestamp=posted["ts"], name="eyes")

    assert slack.reactions_on("C1", posted["ts"]) == ["eyes"]


@pytest.mark.parametrize("error", ["internal_error", "service_unavailable", "request_timeout"])
async def test_slack_fail_with_an_error_answer(
    slack: FakeSlack, client: AsyncWebClient, error: str
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="a")
    slack.fail("chat.update", times=2, error=error)

    for _ in range(2):
        with pytest.raises(SlackApiError) as failure:
            await client.chat_update(channel="C1", ts=posted["ts"], text="b")
        assert (failure.value.response.status_code, failure.value.response["error"]) == (
            200,
            error,
        )
    await client.chat_update(channel="C1", ts=posted["ts"], text="c")

    assert [(c.status, c.error) for c in slack.calls_to("chat.update")] == [
        (200, error),
        (200, error),
        (200, None),
    ]
    assert slack.message("C1", posted["ts"]).edits == [("a", None), ("c", None)]


@pytest.mark.parametrize(
    ("json_body", "content_type", "error"),
    [(False, "text/html", None), (True, "application/json", "service_unavailable")],
)
async def test_slack_fail_with_an_http_error(
    slack: FakeSlack, json_body: bool, content_type: str, error: str | None
) -> None:
    slack.fail("chat.postMessage", status=503, json_body=json_body)
    form = {"token": TOKEN, "channel": "C1", "text": "hi"}

    async with aiohttp.ClientSession() as http:
        async with http.post(slack.api_url + "chat.postMessage", data=form) as response:
            failed = (response.status, response.content_type, await response.text())
        async with http.post(slack.api_url + "chat.postMessage", data=form) as response:
            after = await response.json()

    assert failed[:2] == (503, content_type)
    assert ('"ok": false' in failed[2]) is json_body
    assert after["ok"] is True
    assert [(c.status, c.error) for c in slack.calls] == [(503, error), (200, None)]
    assert len(slack.messages) == 1


def test_slack_fail_needs_one_kind_of_failure() -> None:
    slack = FakeSlack()

    with pytest.raises(ValueError, match="exactly one"):
        slack.fail("chat.update")
    with pytest.raises(ValueError, match="not an HTTP error"):
        slack.fail("chat.update", status=302)


# -- FakeCustomGPT -------------------------------------------------------------------------


async def new_session(cgpt: FakeCustomGPT, http: aiohttp.ClientSession) -> str:
    async with http.post(cgpt.api_url + "/projects/1/conversations", json={"name": "t"}) as r:
        assert r.status == 201
        session_id: str = (await r.json())["data"]["session_id"]
    return session_id


def messages_url(cgpt: FakeCustomGPT, session_id: str, stream: int = 1) -> str:
    return f"{cgpt.api_url}/projects/1/conversations/{session_id}/messages?stream={stream}&lang=en"


def sse_payloads(raw: bytes) -> list[dict[str, Any]]:
    """The JSON `data:` of every frame, however the frame is laid out."""
    frames = raw.decode().replace("\r\n", "\n").split("\n\n")
    payloads = []
    for frame in frames:
        for line in frame.split("\n"):
            if line.startswith("data:"):
                payloads.append(json.loads(line.removeprefix("data:")))
    return payloads


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_cgpt_refuses_missing_or_wrong_key(
    cgpt: FakeCustomGPT, headers: dict[str, str]
) -> None:
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(cgpt.api_url + "/projects/1") as response:
            body = await response.json()

    assert response.status == 401
    assert body == {
        "status": "error",
        "data": {"code": 401, "message": "API Token is either missing or invalid"},
    }
    assert cgpt.requests[0].status == 401


async def test_cgpt_project_creation_and_scripted_indexing(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData(
        {"project_name": "Site", "sitemap_path": "https://x/sitemap.xml"},
        default_to_multipart=True,
    )
    async with http.post(cgpt.api_url + "/projects", data=form) as response:
        created = (await response.json())["data"]
    assert (created["id"], created["is_chat_active"]) == (1000, 0)
    cgpt.script_indexing(1000, [(10, 2, 0), (10, 10, 8)])

    seen = []
    for _ in range(3):
        async with http.get(cgpt.api_url + "/projects/1000/stats") as response:
            stats = (await response.json())["data"]
        async with http.get(cgpt.api_url + "/projects/1000") as response:
            active = (await response.json())["data"]["is_chat_active"]
        seen.append((stats["pages_found"], stats["pages_crawled"], stats["pages_indexed"], active))

    assert seen == [(10, 2, 0, 0), (10, 10, 8, 1), (10, 10, 8, 1)]
    assert cgpt.requests[0].body["project_name"] == "Site"


async def test_cgpt_lists_projects_twenty_per_page(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    for project_id in range(2, 26):
        cgpt.add_project(project_id, f"P{project_id}")

    async with http.get(cgpt.api_url + "/projects", params={"page": "2"}) as response:
        page = (await response.json())["data"]

    assert (page["current_page"], page["last_page"], page["total"]) == (2, 2, 25)
    assert [p["id"] for p in page["data"]] == [21, 22, 23, 24, 25]


async def test_cgpt_unknown_project_is_404(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    async with http.post(cgpt.api_url + "/projects/999/conversations", json={}) as response:
        body = await response.json()

    assert response.status == 404
    assert body["data"] == {"code": 404, "message": "Project not found"}


async def test_cgpt_streams_the_default_answer_as_sse(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    session_id = await new_session(cgpt, http)
    prompt = {"prompt": "What is X?", "response_source": "default"}

    async with http.post(messages_url(cgpt, session_id), json=prompt) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = await response.content.read()

    assert raw.startswith(b'event: start\ndata: {"status": "start", "prompt": "What is X?"}\n\n')
    assert b"event: progress\n" in raw
    assert sse_payloads(raw) == [
        {"status": "start", "prompt": "What is X?"},
        {"status": "progress", "message": "You asked: "},
        {"status": "progress", "message": "What is X?"},
        {"status": "finish", "id": 1, "session_id": session_id, "citations": []},
    ]
    assert cgpt.prompts(session_id) == ["What is X?"]
    assert cgpt.served[0].outcome == "finished"


async def test_cgpt_answers_json_without_stream(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    session_id = await new_session(cgpt, http)
    cgpt.queue_answer(["Hello ", "world"], citations=["12061.0", 7], message_id=42)

    async with http.post(messages_url(cgpt, session_id, stream=0), json={"prompt": "hi"}) as r:
        data = (await r.json())["data"]

    assert data["openai_response"] == "Hello world"
    assert (data["id"], data["citations"], data["session_id"]) == (42, ["12061.0", 7], session_id)


async def test_cgpt_scripted_http_error_comes_before_any_stream(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    session_id = await new_session(cgpt, http)
    cgpt.queue_answer([], error_status=429, error_message="Too busy", retry_after=3)

    async with http.post(messages_url(cgpt, session_id), json={"prompt": "hi"}) as response:
        body = await response.json()

    assert response.status == 429
    assert response.headers["Retry-After"] == "3"
    assert body == {"status": "error", "data": {"code": 429, "message": "Too busy"}}


async def test_cgpt_fail_next_matches_the_path(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    cgpt.fail_next(r"^/projects/1$", 503, "Maintenance", times=1)

    async with http.get(cgpt.api_url + "/projects/1/stats") as response:
        assert response.status == 200
    async with http.get(cgpt.api_url + "/projects/1") as response:
        assert response.status == 503
        assert (await response.json())["data"]["message"] == "Maintenance"
    async with http.get(cgpt.api_url + "/projects/1") as response:
        assert response.status == 200


async def test_cgpt_cut_stream_ends_early_without_finish(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    session_id = await new_session(cgpt, http)
    answer = cgpt.queue_answer(["a", "b", "c"], cut_after=2)

    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(messages_url(cgpt, session_id), json={"prompt": "hi"}) as response:
            async for line in response.content:
                received += line

    assert [p["status"] for p in sse_payloads(received)] == ["start", "progress", "progress"]
    assert answer.outcome == "cut"
    assert len(answer.sent_at) == 2


async def test_cgpt_stream_error_frame_is_data_only(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    session_id = await new_session(cgpt, http)
    cgpt.queue_answer(["a", "b"], stream_error_after=1, stream_error_message="Model overloaded")

    async with http.post(messages_url(cgpt, session_id), json={"prompt": "hi"}) as response:
        raw = await response.content.read()

    assert raw.endswith(b'\n\ndata: {"status": "error", "message": "Model overloaded"}\n\n')
    assert [p["status"] for p in sse_payloads(raw)] == ["start", "progress", "error"]


async def test_cgpt_hold_pauses_mid_stream_until_released(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    session_id = await new_session(cgpt, http)
    answer = cgpt.queue_answer(["first ", "second"], hold_after=1)

    async with http.post(messages_url(cgpt, session_id), json={"prompt": "hi"}) as response:
        await answer.reached_hold.wait()
        head = b"".join([await response.content.readline() for _ in range(6)])
        assert not answer.finished.is_set()
        answer.release.set()
        rest = await response.content.read()

    assert [p.get("message") for p in sse_payloads(head)] == [None, "first "]
    assert [p["status"] for p in sse_payloads(rest)] == ["progress", "finish"]
    assert answer.outcome == "finished"


async def test_cgpt_raw_frames_are_written_verbatim(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    session_id = await new_session(cgpt, http)
    frames = [
        ": keep-alive\r\n\r\n",
        'data: {"status":"progress","message":""}\r\n\r\n',
        'data: {"status":"mystery"}\n\n',
    ]
    cgpt.queue_answer([], raw_frames=frames)

    async with http.post(messages_url(cgpt, session_id), json={"prompt": "hi"}) as response:
        raw = await response.content.read()

    assert raw == "".join(frames).encode()


async def test_cgpt_citations_are_looked_up_by_an_integer_id_only(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    cgpt.add_citation(1, "12061.0", "Guide", "https://docs.example/guide")

    async with http.get(cgpt.api_url + "/projects/1/citations/12061") as response:
        found = (await response.json())["data"]
    async with http.get(cgpt.api_url + "/projects/1/citations/12061.0") as response:
        refused = response.status, (await response.json())["status"]
    async with http.get(cgpt.api_url + "/projects/1/citations/12062") as response:
        missing_status = response.status

    assert (found["id"], found["title"], found["url"], found["description"]) == (
        12061,
        "Guide",
        "https://docs.example/guide",
        None,
    )
    assert refused == (400, "error")
    assert missing_status == 404


async def test_cgpt_creates_projects_from_multipart_forms_only(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    fields = {"project_name": "Site", "sitemap_path": "https://x/sitemap.xml"}
    async with http.post(cgpt.api_url + "/projects", data=fields) as response:
        urlencoded = response.status, (await response.json())["data"]["message"]
    async with http.post(cgpt.api_url + "/projects", json=fields) as response:
        as_json = response.status

    assert urlencoded == (415, "The request must be multipart/form-data.")
    assert as_json == 415
    assert cgpt.projects.keys() == {1}


async def test_cgpt_refuses_a_prompt_over_8000_characters(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    session_id = await new_session(cgpt, http)
    for stream in (0, 1):
        url = messages_url(cgpt, session_id, stream=stream)
        async with http.post(url, json={"prompt": "x" * 8001}) as response:
            body = await response.json()
        assert response.status == 400
        assert body["data"]["message"] == "The prompt may not be greater than 8000 characters."
    async with http.post(messages_url(cgpt, session_id, 0), json={"prompt": "x" * 8000}) as r:
        assert r.status == 200
    assert cgpt.served[0].outcome == "json"


async def test_cgpt_raw_frames_may_be_bytes_and_message_ids_take_every_seen_form(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    session_id = await new_session(cgpt, http)
    frames: list[str | bytes] = [b"data: \xff\xfe\n\n", b"data: " + b"y" * 5_000_000 + b"\n\n"]
    cgpt.queue_answer([], raw_frames=frames)
    cgpt.queue_answer(["a"], message_id=12, message_id_form="float")
    cgpt.queue_answer(["b"], message_id=13, message_id_form="string")

    async with http.post(messages_url(cgpt, session_id), json={"prompt": "hi"}) as response:
        raw = await response.content.read()
    async with http.post(messages_url(cgpt, session_id), json={"prompt": "hi"}) as response:
        finish = sse_payloads(await response.content.read())[-1]
    async with http.post(messages_url(cgpt, session_id, 0), json={"prompt": "hi"}) as response:
        data = (await response.json())["data"]

    assert raw == b"".join(f for f in frames if isinstance(f, bytes))
    assert finish["id"] == 12.0 and isinstance(finish["id"], float)
    assert data["id"] == "13.0"


async def test_cgpt_records_feedback_and_refuses_bad_reactions(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    session_id = await new_session(cgpt, http)
    async with http.post(messages_url(cgpt, session_id, stream=0), json={"prompt": "hi"}) as r:
        message_id = (await r.json())["data"]["id"]
    url = f"{cgpt.api_url}/projects/1/conversations/{session_id}/messages/{message_id}/feedback"

    async with http.put(url, json={"reaction": "liked"}) as response:
        assert response.status == 200
    async with http.put(url, json={"reaction": "love"}) as response:
        assert response.status == 400

    assert cgpt.feedback == [(1, session_id, message_id, "liked")]


async def test_cgpt_wait_for_wakes_when_a_stream_ends(
    cgpt: FakeCustomGPT, http: aiohttp.ClientSession
) -> None:
    session_id = await new_session(cgpt, http)
    answer = cgpt.queue_answer(["x"], hold_after=0)

    async def ask() -> None:
        async with http.post(messages_url(cgpt, session_id), json={"prompt": "hi"}) as r:
            await r.read()

    task = asyncio.create_task(ask())
    await answer.reached_hold.wait()
    answer.release.set()
    await cgpt.wait_for(lambda: answer.outcome == "finished", timeout=5)
    await task

    assert cgpt.prompts() == ["hi"]
