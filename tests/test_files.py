"""Messages with files attached (`subtype: file_share`): CustomGPT does not get the files yet,
so the text is answered and the answer says the files were not read; a file alone gets a
reply asking for the question in words. Neither is met with silence."""

from __future__ import annotations

from typing import Any

from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.views import final_text

FILES = [{"id": "F1", "name": "report.pdf", "mimetype": "application/pdf"}]


def context_notes(message: FakeMessage) -> list[str]:
    return [
        element["text"]
        for block in message.blocks or []
        if block.get("type") == "context"
        for element in block.get("elements", [])
        if element.get("type") == "mrkdwn"
    ]


async def dm_with_file(bot: RunningBot, text: str, **extra: Any) -> str:
    return await bot.message(
        text, channel="D1", channel_type="im", subtype="file_share", files=FILES, **extra
    )


async def test_a_dm_with_a_file_is_answered_from_its_text_with_a_note(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(["Refunds take ", "14 days."])
    await dm_with_file(bot, "what does this say about refunds?")
    await bot.idle()

    (reply,) = [m for m in slack.messages if m.channel == "D1"]
    assert final_text(reply).startswith("Refunds take 14 days.")
    assert any("can't read attached files yet" in note for note in context_notes(reply))
    assert "can't read attached files yet" in reply.text  # the notification says it too
    assert customgpt.prompts() == ["what does this say about refunds?"]


async def test_a_file_without_text_gets_asked_for_the_question(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    await dm_with_file(bot, "")
    await bot.idle()

    (reply,) = [m for m in slack.messages if m.channel == "D1"]
    assert "write your question as text" in final_text(reply)
    assert customgpt.requests == []


async def test_a_thread_reply_with_a_file_is_answered_like_any_follow_up(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    customgpt.queue_answer(["First answer."])
    customgpt.queue_answer(["Second answer."])
    ts = await bot.mention("first question")
    await bot.idle()
    await bot.message(
        "and this screenshot?",
        channel="C1",
        channel_type="channel",
        thread_ts=ts,
        subtype="file_share",
        files=FILES,
    )
    await bot.idle()

    first, second = slack.thread("C1", ts)
    assert not any("files" in n for n in context_notes(first))
    assert final_text(second).startswith("Second answer.")
    assert any("can't read attached files yet" in n for n in context_notes(second))
    assert customgpt.prompts() == ["first question", "and this screenshot?"]


async def test_other_subtypes_are_still_not_questions(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    await bot.message("edited text", channel="D1", channel_type="im", subtype="message_changed")
    await bot.message("joined", channel="D1", channel_type="im", subtype="channel_join")
    await bot.idle()
    assert [m for m in slack.messages if m.channel == "D1"] == []
    assert customgpt.requests == []
