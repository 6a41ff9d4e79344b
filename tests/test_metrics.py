"""`/metrics`: what an operator graphs, read back through Prometheus' own text parser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.clocks import FastClock
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack

StartBot = Callable[..., Awaitable[RunningBot]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(bot: RunningBot) -> Samples:
    async with bot.session.get(bot.url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_an_answer_shows_in_the_counters_and_timings(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, team: str
) -> None:
    customgpt.queue_answer(["Counted ", "and timed."])
    await bot.mention("Are you measured?", channel="C1")
    await bot.idle()

    samples = await scrape(bot)
    assert value(samples, "questions_received_total") == 1
    assert value(samples, "questions_answered_total") == 1
    assert value(samples, "answers_in_flight") == 0
    assert value(samples, "answer_first_text_seconds_count") == 1
    assert value(samples, "answer_final_text_seconds_count") == 1
    assert value(samples, "customgpt_first_chunk_seconds_count") == 1
    assert value(samples, "customgpt_answer_seconds_count") == 1
    posts = len(slack.calls_to("chat.postMessage"))
    updates = len(slack.calls_to("chat.update"))
    assert posts >= 1 and updates >= 1
    assert value(samples, "slack_calls_total", method="chat.postMessage", outcome="ok") == posts
    assert value(samples, "slack_calls_total", method="chat.update", outcome="ok") == updates
    assert value(samples, "slack_queue_wait_seconds_count", lane="post") == posts
    assert value(samples, "slack_queue_wait_seconds_count", lane="update") == updates
    for lane in ("update", "post", "reactions"):
        assert ("slack_queue_depth", frozenset({("lane", lane)})) in samples
        assert value(samples, "slack_queue_depth", lane=lane) == 0
    assert value(samples, "indexing_watches_active") == 0
    # No channel, user or team id ever becomes a label.
    label_values = {v for _, labels in samples for _, v in labels}
    assert not label_values & {"C1", "U1", team}


async def test_failures_are_counted_by_reason(bot: RunningBot, customgpt: FakeCustomGPT) -> None:
    customgpt.api_key = "rotated-key"  # the bot's key is refused: 401
    await bot.mention("Anyone?")
    await bot.idle()

    samples = await scrape(bot)
    assert value(samples, "questions_received_total") == 1
    assert value(samples, "questions_answered_total") == 0
    assert value(samples, "questions_failed_total", reason="customgpt_auth_error") == 1


async def test_slack_429s_are_counted_with_the_pauses_they_cause(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(clock=FastClock())
    customgpt.queue_answer(["Slowly."])
    slack.rate_limit("chat.postMessage", times=1, retry_after=3)
    slack.rate_limit("chat.update", times=1, retry_after=3, as_http_200=True)
    await bot.mention("Wait for it")
    await bot.idle()

    samples = await scrape(bot)
    assert value(samples, "slack_calls_total", method="chat.postMessage", outcome="429") == 1
    assert value(samples, "slack_calls_total", method="chat.update", outcome="429") == 1
    assert value(samples, "slack_rate_limit_pauses_total", lane="post") == 1
    assert value(samples, "slack_rate_limit_pauses_total", lane="update") == 1
    assert value(samples, "questions_answered_total") == 1


async def test_two_bots_in_one_process_count_apart(
    start_bot: StartBot, customgpt: FakeCustomGPT
) -> None:
    first = await start_bot()
    second = await start_bot()
    await first.mention("Only the first is asked")
    await first.idle()

    assert value(await scrape(first), "questions_received_total") == 1
    assert value(await scrape(second), "questions_received_total") == 0


async def test_store_errors_are_counted(start_bot: StartBot) -> None:
    bot = await start_bot(redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    await bot.mention("Is the store there?")
    await bot.idle()

    samples = await scrape(bot)
    # The store falls back to the process's memory (and says so in the metrics); the
    # question is answered all the same.
    assert value(samples, "store_errors_total", operation="fallback") >= 1
    assert value(samples, "questions_answered_total") == 1
