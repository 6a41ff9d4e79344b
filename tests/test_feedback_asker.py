"""👍 / 👎 record the asker's verdict: anybody else's click changes nothing in CustomGPT or on
the message and earns a short note only they see. Buttons posted before they named the asker
still accept anyone's click."""

from __future__ import annotations

import json

from tests.driver import RunningBot
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.test_answer_presentation import blocks_of, click, selected_button


def button_value(reply: FakeMessage, action_id: str) -> str:
    (actions,) = blocks_of(reply, "actions")
    return str(next(e for e in actions["elements"] if e["action_id"] == action_id)["value"])


async def answered(bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT) -> FakeMessage:
    customgpt.queue_answer(["An answer."], message_id=77)
    ts = await bot.mention("q", user="UASKER")
    await bot.idle()
    (reply,) = slack.thread("C1", ts)
    return reply


async def test_someone_elses_click_records_nothing_and_gets_a_note(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    reply = await answered(bot, slack, customgpt)
    edits_before = len(slack.calls_to("chat.update"))

    await bot.action(click(reply, "feedback_disliked", slack.response_url("other"), user="UOTHER"))
    await bot.idle()

    assert customgpt.feedback == []
    assert len(slack.calls_to("chat.update")) == edits_before
    assert selected_button(slack.message("C1", reply.ts)) is None
    ((name, body),) = slack.responses
    assert name == "other" and body["response_type"] == "ephemeral"
    assert "Only the person who asked" in body["text"]


async def test_another_persons_click_does_not_take_back_the_askers_verdict(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    reply = await answered(bot, slack, customgpt)
    await bot.action(click(reply, "feedback_disliked", slack.response_url("asker"), user="UASKER"))
    await bot.idle()
    shown = slack.message("C1", reply.ts)
    await bot.action(click(shown, "feedback_disliked", slack.response_url("other"), user="UOTHER"))
    await bot.idle()

    assert [f[3] for f in customgpt.feedback] == ["disliked"]  # never "neutral"
    assert selected_button(slack.message("C1", reply.ts)) == "feedback_disliked"
    assert [name for name, _ in slack.responses] == ["other"]
    # The buttons still name the asker after the edit: the asker can still change it.
    assert json.loads(button_value(slack.message("C1", reply.ts), "feedback_liked"))["u"] == (
        "UASKER"
    )


async def test_buttons_posted_before_they_named_the_asker_accept_anyone(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    reply = await answered(bot, slack, customgpt)
    old = json.loads(button_value(reply, "feedback_liked"))
    del old["u"]

    await bot.action(
        click(
            reply, "feedback_liked", slack.response_url("x"), user="UOTHER", value=json.dumps(old)
        )
    )
    await bot.idle()

    assert [f[3] for f in customgpt.feedback] == ["liked"]
    assert selected_button(slack.message("C1", reply.ts)) == "feedback_liked"
    assert slack.responses == []
