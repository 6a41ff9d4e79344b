"""`/customgpt create` sent twice (Slack accepts a signed request for five minutes, people
double-submit): one project, and the second request is told about the first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.clocks import FastClock
from tests.driver import RunningBot
from tests.fakes.customgpt import FIRST_CREATED_PROJECT_ID, FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.test_commands import creations, run

StartBot = Callable[..., Awaitable[RunningBot]]
NEW_ID = str(FIRST_CREATED_PROJECT_ID)
SITEMAP = "https://acme.example/sitemap.xml"


async def test_a_replayed_create_makes_one_project_and_answers_with_it(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(clock=FastClock())
    customgpt.default_index_steps = [(1, 1, 1)]

    first_ack, _ = await run(bot, slack, f"create Acme Help {SITEMAP}")
    second_ack, second_later = await run(bot, slack, f"create Acme Help {SITEMAP}")

    assert len(creations(customgpt)) == 1
    assert "Creating *Acme Help*" in first_ack
    assert f"(`{NEW_ID}`)" in second_ack and "didn't create it again" in second_ack
    assert second_later == []
    status_messages = [m for m in slack.messages if m.channel == "C1" and m.thread_ts is None]
    assert len(status_messages) == 1


async def test_a_create_sent_again_while_the_first_runs_waits_for_it(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(clock=FastClock())
    customgpt.default_index_steps = [(1, 1, 1)]
    hold = customgpt.hold_next(r"^/projects$")

    status, _ = await bot.command(f"create Acme {SITEMAP}", response_url=slack.response_url("a"))
    assert status == 200
    await hold.reached.wait()
    _, body = await bot.command(f"create Acme {SITEMAP}", response_url=slack.response_url("b"))
    hold.release.set()
    await bot.idle()

    assert len(creations(customgpt)) == 1
    assert isinstance(body, dict) and "already being created" in body["text"]


async def test_a_create_that_failed_can_be_sent_again_at_once(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(clock=FastClock())
    customgpt.default_index_steps = [(1, 1, 1)]
    customgpt.fail_next(r"^/projects$", 500)

    _, first_later = await run(bot, slack, f"create Acme {SITEMAP}")
    second_ack, _ = await run(bot, slack, f"create Acme {SITEMAP}")

    assert "CustomGPT had a problem" in first_later[0]
    assert "Creating *Acme*" in second_ack
    assert len(creations(customgpt)) == 2  # the failed one, then the one that worked


async def test_another_person_or_another_sitemap_is_a_new_create(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(clock=FastClock())
    customgpt.default_index_steps = [(1, 1, 1)]

    await run(bot, slack, f"create Acme {SITEMAP}")
    await run(bot, slack, f"create Acme {SITEMAP}", user="U2")
    await run(bot, slack, f"create Acme {SITEMAP}?v=2")

    assert len(creations(customgpt)) == 3
