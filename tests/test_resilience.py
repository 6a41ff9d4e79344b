"""The bot stays up and says what happened when its dependencies fail or it is stopped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot import messages
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.views import final_text, shown

StartBot = Callable[..., Awaitable[RunningBot]]

NOTHING_LISTENS = "redis://127.0.0.1:1/0"


async def test_with_redis_unreachable_the_bot_answers_and_the_health_check_says_so(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(redis_url=NOTHING_LISTENS)
    ts = await bot.mention("Are you there?")
    await bot.idle()

    (reply,) = slack.thread("C1", ts)
    assert final_text(reply) == "You asked: Are you there?"
    assert customgpt.prompts() == ["Are you there?"]
    # Alive, and still in the load balancer: Redis is shared by every replica, so its outage
    # degrades them all rather than taking them all out at once.
    async with bot.session.get(bot.url + "/healthz") as response:
        assert (response.status, await response.json()) == (200, {"ok": True})
    async with bot.session.get(bot.url + "/readyz") as response:
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["store"]["ok"] is False
    assert "unreachable" in body["checks"]["store"]["detail"]
    assert body["checks"]["slack"]["ok"] is True
    assert body["checks"]["event_loop"]["ok"] is True


async def test_the_health_checks_are_green_when_everything_answers(bot: RunningBot) -> None:
    async with bot.session.get(bot.url + "/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"ok": True}
    async with bot.session.get(bot.url + "/readyz") as response:
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "slack": True,
        "store": True,
        "event_loop": True,
    }


async def test_a_token_slack_refuses_makes_the_process_unready(
    start_bot: StartBot, slack: FakeSlack
) -> None:
    slack.token = "xoxb-another-token"  # the bot's token is refused: invalid_auth
    bot = await start_bot()
    async with bot.session.get(bot.url + "/healthz") as response:
        assert response.status == 200  # alive: restarting would not fix a revoked token
    async with bot.session.get(bot.url + "/readyz") as response:
        assert response.status == 503
        body = await response.json()
    assert body["status"] == "unready"
    assert body["checks"]["slack"] == {"ok": False, "detail": "auth.test failed: invalid_auth"}
    assert body["checks"]["store"]["ok"] is True


async def test_without_redis_the_in_process_store_answers_and_dedupes(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(redis_url=None)
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": "<@UBOT> hi",
        "ts": "1.5",
        "channel": "C1",
    }
    _, event_id = await bot.event(event)
    await bot.event(event, event_id=event_id, retry_num=1)
    await bot.idle()
    await bot.mention("again", thread_ts="1.5")
    await bot.idle()

    assert customgpt.prompts() == ["hi", "again"]
    assert len(customgpt.conversations) == 1


async def test_stopping_mid_answer_keeps_the_text_and_says_the_bot_restarted(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    held = customgpt.queue_answer(["Half of ", "the answer", " and the rest"], hold_after=2)
    ts = await bot.mention("q")
    await held.reached_hold.wait()
    await slack.wait_for(
        lambda: any("Half of the answer" in t for t in shown(slack.thread("C1", ts)[0]))
    )
    await bot.close()

    (reply,) = slack.thread("C1", ts)
    assert final_text(reply).startswith("Half of the answer")
    assert "restarted while answering" in reply.text


async def test_commands_work_while_the_store_is_unreachable(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(redis_url=NOTHING_LISTENS)
    await bot.command("new", response_url=slack.response_url("new"), channel="D1")
    await bot.command("use 42", response_url=slack.response_url("use"))
    await bot.idle()

    replies = [text["text"] for _, text in slack.responses]
    assert replies and messages.STORE_DOWN not in replies
    assert any("Acme Docs" in text for text in replies)
    assert len(customgpt.conversations) == 1  # `new` started the DM's next conversation


async def test_stopping_while_a_queued_answer_streams_keeps_its_text(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    ts = await bot.mention("First")
    await bot.idle()
    busy = customgpt.queue_answer(["Busy."], hold_after=0)
    queued = customgpt.queue_answer(["Queued ", "answer", " rest"], hold_after=2)
    await bot.mention("Second", thread_ts=ts)
    await busy.reached_hold.wait()
    await bot.mention("Third", thread_ts=ts)
    await slack.wait_for(lambda: len(slack.thread("C1", ts)) == 3)
    busy.release.set()
    await queued.reached_hold.wait()
    third = slack.thread("C1", ts)[2]
    await slack.wait_for(lambda: any("Queued answer" in t for t in shown(third)))
    await bot.close()

    assert final_text(third).startswith("Queued answer")
    assert "restarted while answering" in third.text


async def test_stopping_while_waiting_in_line_says_so_in_the_waiting_reply(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    ts = await bot.mention("First")
    await bot.idle()
    busy = customgpt.queue_answer(["Busy ", "answer."], hold_after=1)
    await bot.mention("Second", thread_ts=ts)
    await busy.reached_hold.wait()
    await bot.mention("Third", thread_ts=ts)
    await slack.wait_for(lambda: len(slack.thread("C1", ts)) == 3)
    await bot.close()

    waiting = slack.thread("C1", ts)[2]
    assert waiting.text == messages.SHUTTING_DOWN
    assert customgpt.prompts() == ["First", "Second"]
