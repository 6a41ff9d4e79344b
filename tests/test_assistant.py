"""Slack's assistant pane against the fakes: a thread opens (greeting, starter questions from
the project's settings, else generic ones), a question in it is answered once through the
usual flow, and the first question titles the thread and names its CustomGPT conversation."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from bot import messages
from tests.driver import RunningBot, next_ts
from tests.fakes.customgpt import FakeCustomGPT
from tests.fakes.slack import FakeSlack
from tests.views import final_text

StartBot = Callable[..., Awaitable[RunningBot]]
DM = "D1"


async def start_thread(bot: RunningBot, user: str = "U1") -> str:
    """The user opens a new assistant thread (Slack posts its root and sends this event)."""
    thread = next_ts()
    event = {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": user,
            "context": {"channel_id": "C1", "team_id": bot.team, "enterprise_id": None},
            "channel_id": DM,
            "thread_ts": thread,
        },
        "event_ts": next_ts(),
    }
    status, _ = await bot.event(event)
    assert status == 200
    return thread


async def ask(bot: RunningBot, text: str, thread: str) -> str:
    return await bot.message(text, channel=DM, channel_type="im", thread_ts=thread)


def sessions(customgpt: FakeCustomGPT) -> list[str]:
    """The conversations the bot created, in order."""
    return list(customgpt.conversations)


async def test_a_new_thread_is_greeted_with_the_projects_own_starter_questions(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    questions = [f"Starter question {i}?" for i in range(1, 6)]
    customgpt.set_example_questions(42, ["  ", *questions])
    thread = await start_thread(bot)
    await bot.idle()

    (greeting,) = slack.thread(DM, thread)
    assert "Acme Docs" in greeting.text and ":wave:" in greeting.text
    title, prompts = slack.suggested_prompts[(DM, thread)]
    assert title == messages.PROMPTS_TITLE
    assert [p["message"] for p in prompts] == questions[:4]  # Slack shows four at most
    assert any(r.path == "/projects/42/settings" for r in customgpt.requests)


@pytest.mark.parametrize("customgpt_says", ["no questions", "an error"])
async def test_generic_prompts_when_the_project_has_none_or_customgpt_fails(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT, customgpt_says: str
) -> None:
    if customgpt_says == "an error":
        customgpt.set_example_questions(42, ["Never shown?"])
        customgpt.fail_next(r"/settings$", 503)
    thread = await start_thread(bot)
    await bot.idle()
    _, prompts = slack.suggested_prompts[(DM, thread)]
    assert [p["message"] for p in prompts] == list(messages.GENERIC_PROMPTS)
    assert len(slack.thread(DM, thread)) == 1  # greeted all the same


async def test_a_question_in_a_thread_is_answered_once_and_names_the_thread(
    bot: RunningBot,
    slack: FakeSlack,
    customgpt: FakeCustomGPT,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    question = "How do refunds work for annual plans?"
    customgpt.queue_answer(["Refunds take ", "5 days."])
    thread = await start_thread(bot)
    await bot.idle()
    await ask(bot, question, thread)
    await bot.idle()

    assert customgpt.prompts() == [question]  # asked once
    replies = slack.thread(DM, thread)[1:]  # after the greeting
    assert [final_text(m) for m in replies] == ["Refunds take 5 days."]
    # The DM `message` listener never saw it: nothing was skipped as already answered.
    assert "already answered" not in caplog.text
    assert slack.thread_titles[(DM, thread)] == question
    (session,) = sessions(customgpt)
    assert customgpt.conversation_names[session] == question
    renames = [r for r in customgpt.requests if r.method == "PUT"]
    assert [(r.path, r.body) for r in renames] == [
        (f"/projects/42/conversations/{session}", {"name": question})
    ]

    # A follow-up continues the conversation and keeps the title.
    customgpt.queue_answer(["Yes."])
    await ask(bot, "Also for monthly plans?", thread)
    await bot.idle()
    assert customgpt.prompts(session) == [question, "Also for monthly plans?"]
    assert len(slack.calls_to("assistant.threads.setTitle")) == 1
    assert len([r for r in customgpt.requests if r.method == "PUT"]) == 1


async def test_each_thread_is_its_own_conversation_and_the_top_level_dm_keeps_its_own(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    first, second = await start_thread(bot), await start_thread(bot)
    await ask(bot, "One?", first)
    await bot.idle()
    await ask(bot, "Two?", second)
    await bot.idle()
    await bot.message("At the top?", channel=DM, channel_type="im")
    await bot.idle()
    await ask(bot, "One again?", first)
    await bot.idle()

    one, two, top = sessions(customgpt)
    assert customgpt.prompts(one) == ["One?", "One again?"]
    assert customgpt.prompts(two) == ["Two?"]
    assert customgpt.prompts(top) == ["At the top?"]
    assert customgpt.conversation_names[one] == "One?"
    assert customgpt.conversation_names[top] != "At the top?"  # not an assistant thread title


async def test_a_long_first_question_gives_a_short_title_to_both(
    bot: RunningBot, slack: FakeSlack, customgpt: FakeCustomGPT
) -> None:
    question = "Why " + "really " * 80 + "?"
    thread = await start_thread(bot)
    await ask(bot, question, thread)
    await bot.idle()
    title = slack.thread_titles[(DM, thread)]
    assert title.endswith("…") and len(title) <= 100 and question.startswith(title[:-1])
    (session,) = sessions(customgpt)
    assert customgpt.conversation_names[session] == title


async def test_a_context_change_is_acknowledged_and_changes_nothing(
    bot: RunningBot, slack: FakeSlack
) -> None:
    event = {
        "type": "assistant_thread_context_changed",
        "assistant_thread": {
            "user_id": "U1",
            "context": {"channel_id": "C2", "team_id": bot.team},
            "channel_id": DM,
            "thread_ts": next_ts(),
        },
        "event_ts": next_ts(),
    }
    status, _ = await bot.event(event)
    await bot.idle()
    assert status == 200
    assert [c.method for c in slack.calls if c.method != "auth.test"] == []


async def test_without_assistant_write_the_greeting_still_arrives(
    bot: RunningBot, slack: FakeSlack
) -> None:
    slack.scopes = [s for s in slack.scopes if s != "assistant:write"]
    thread = await start_thread(bot)
    await bot.idle()
    assert len(slack.thread(DM, thread)) == 1
    (call,) = slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert call.error == "missing_scope" and (DM, thread) not in slack.suggested_prompts


async def test_the_fake_renames_conversations_only_as_documented(
    customgpt: FakeCustomGPT,
) -> None:
    headers = {"Authorization": "Bearer test-key"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(
            f"{customgpt.api_url}/projects/42/conversations", json={"name": "x"}
        ) as r:
            session = (await r.json())["data"]["session_id"]
        url = f"{customgpt.api_url}/projects/42/conversations/{session}"
        refused = [
            {"data": {"name": "form"}},
            {"json": {"name": "x", "extra": 1}},
            {"json": {"name": ""}},
            {"json": {"name": "n" * 256}},
            {"json": {"title": "x"}},
        ]
        for kwargs in refused:
            async with http.put(url, **kwargs) as r:
                assert r.status in (400, 415), kwargs
        async with http.put(url, json={"name": "n" * 255}) as r:
            assert r.status == 200
        async with http.put(
            f"{customgpt.api_url}/projects/42/conversations/nope", json={"name": "x"}
        ) as r:
            assert r.status == 404
    assert customgpt.conversation_names[session] == "n" * 255


async def test_with_no_project_anywhere_the_thread_says_how_to_bind_one(
    start_bot: StartBot, slack: FakeSlack
) -> None:
    bot = await start_bot(customgpt_project_id=None)
    thread = await start_thread(bot)
    await bot.idle()
    assert [m.text for m in slack.thread(DM, thread)] == [messages.NO_PROJECT]
    assert not slack.calls_to("assistant.threads.setSuggestedPrompts")
