"""Many answers in one process, and stopping it: admission in order, separate pools, a restart
notice wherever shutdown finds a question, and a shutdown that ends within its bound."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot import messages
from bot.slack_format import TYPING_MARKER
from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.views import final_text, shown

StartBot = Callable[..., Awaitable[RunningBot]]


async def test_answers_beyond_the_admitted_number_wait_visibly_and_all_complete_in_order(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(max_concurrent_answers=2)
    first = customgpt.queue_answer(["One ", "done."], hold_after=1)
    second = customgpt.queue_answer(["Two ", "done."], hold_after=1)
    customgpt.queue_answer(["Three done."])
    customgpt.queue_answer(["Four done."])
    asked = [await bot.mention(f"question {n}", channel=f"C{n}") for n in range(1, 3)]
    await first.reached_hold.wait()
    await second.reached_hold.wait()
    for n in range(3, 5):  # one after the other reaches the line
        asked.append(await bot.mention(f"question {n}", channel=f"C{n}"))
        await slack.wait_for(lambda n=n: len(slack.thread(f"C{n}", asked[n - 1])) == 1)
    # Both CustomGPT streams are held open: Slack is still served (their own pool), and the
    # questions beyond the two admitted say they wait.
    assert [shown(slack.thread(f"C{n}", asked[n - 1])[0])[0] for n in (3, 4)] == [
        messages.ADMISSION,
        messages.ADMISSION,
    ]
    assert sorted(customgpt.prompts()) == ["question 1", "question 2"]
    # One place frees at a time: the question that waited longest takes it.
    first.release.set()
    await customgpt.wait_for(lambda: len(customgpt.prompts()) == 3)
    assert customgpt.prompts()[2] == "question 3"
    second.release.set()
    await bot.idle()

    finals = sorted(final_text(slack.thread(f"C{n}", asked[n - 1])[0]) for n in range(1, 5))
    assert finals == ["Four done.", "One done.", "Three done.", "Two done."]
    assert customgpt.prompts()[2:] == ["question 3", "question 4"]  # the waiting, in order


async def test_stopped_while_looking_up_the_project_the_question_gets_the_restart_notice(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot()
    lookup = customgpt.hold_next(r"^/projects/42$")
    ts = await bot.mention("q")
    await lookup.reached.wait()
    await bot.close()
    lookup.release.set()

    (reply,) = slack.thread("C1", ts)
    assert final_text(reply) == messages.SHUTTING_DOWN
    assert customgpt.prompts() == []


async def test_stopped_while_waiting_for_a_place_the_waiting_reply_says_the_bot_restarted(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(max_concurrent_answers=1)
    held = customgpt.queue_answer(["Busy ", "answer."], hold_after=1)
    first = await bot.mention("first", channel="C1")
    await held.reached_hold.wait()
    second = await bot.mention("second", channel="C2")
    await slack.wait_for(lambda: len(slack.thread("C2", second)) == 1)
    await bot.close()

    assert final_text(slack.thread("C2", second)[0]) == messages.SHUTTING_DOWN
    assert "restarted while answering" in slack.thread("C1", first)[0].text


async def test_shutdown_ends_within_its_grace_even_while_slack_keeps_refusing(
    start_bot: StartBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    bot = await start_bot(shutdown_grace=0.2)
    held = customgpt.queue_answer(["Half ", "an answer"], hold_after=2)
    ts = await bot.mention("q")
    await held.reached_hold.wait()
    await slack.wait_for(lambda: any("Half" in t for t in shown(slack.thread("C1", ts)[0])))
    slack.rate_limit("chat.update", times=1000, retry_after=30)
    # Before, shutdown waited out every Retry-After; a hang here fails the test.
    async with asyncio.timeout(20):
        await bot.close()

    (reply,) = slack.thread("C1", ts)
    assert TYPING_MARKER in final_text(reply) or "restarted" in final_text(reply)
