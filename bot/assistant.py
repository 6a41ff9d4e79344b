"""Slack's assistant pane (Bolt's AsyncAssistant): a greeting and starter questions when a
thread opens, and each question in a thread answered like any other.

Every assistant thread is its own CustomGPT conversation (`Question.conversation_thread`),
streamed and rated through the same answer flow as mentions and DMs. The thread's first
question names it: Slack's thread title and the CustomGPT conversation's name both become
that question, so the two histories read alike.

Bolt routes every message in a DM thread here (it cannot tell an assistant thread from any
other DM thread) and does not pass it on to the app's `message` listener, so a question is
never answered twice. None of Bolt's own helpers (`say`, `set_title`, the thread context
store) is used: they call Slack directly, and every Slack write here goes through the
workspace's scheduler (bot/slack_calls.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncAssistant, AsyncBoltContext

from bot import keys, log_setup, messages
from bot.answer import Question, question_from_event
from bot.customgpt import CONVERSATION_NAME_LIMIT, CustomGPTError, failure_log_level
from bot.customgpt_keys import NoKey
from bot.runtime import Runtime
from bot.slack_calls import Content, SlackCalls, SlackUnavailable
from bot.store import StoreUnavailable

log = logging.getLogger(__name__)

MAX_PROMPTS = 4  # Slack shows up to four suggested prompts
PROMPT_TITLE_LIMIT = 75  # characters of a prompt's label; the whole question is sent
TITLE_LIMIT = 100  # characters of a thread title (and conversation name): well within 255


def thread_title(question: str) -> str:
    """A thread's title from its first question: one line, cut at a word when too long."""
    text = " ".join(question.split())
    if len(text) <= TITLE_LIMIT:
        return text
    cut = text[: TITLE_LIMIT - 1].rsplit(" ", 1)[0] or text[: TITLE_LIMIT - 1]
    return cut + "…"


def suggested_prompts(questions: list[str]) -> list[dict[str, str]]:
    """Slack's {title, message} prompts: the project's own questions, else generic ones."""
    chosen = questions[:MAX_PROMPTS] or list(messages.GENERIC_PROMPTS)
    return [{"title": _label(q), "message": q} for q in chosen]


def _label(question: str) -> str:
    text = " ".join(question.split())
    return text if len(text) <= PROMPT_TITLE_LIMIT else text[: PROMPT_TITLE_LIMIT - 1] + "…"


def build_assistant(runtime: Runtime, team_of: Callable[[AsyncBoltContext], str]) -> AsyncAssistant:
    """The assistant's listeners; `team_of` tells the workspace a request is served as."""
    assistant = AsyncAssistant()

    @assistant.thread_started
    async def on_thread_started(payload: dict[str, Any], context: AsyncBoltContext) -> None:
        thread = payload.get("assistant_thread") or {}
        channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
        if not channel or not thread_ts:
            log.warning("an assistant thread started without its channel or thread: ignored")
            return
        async with runtime.tasks.track():
            await _greet(runtime, team_of(context), str(channel), str(thread_ts))

    @assistant.user_message
    async def on_user_message(
        body: dict[str, Any], payload: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        question = question_from_event(
            team_of(context), body, payload, context.bot_user_id, is_dm=True
        )
        async with runtime.tasks.track():
            await _answer(runtime, question)

    @assistant.thread_context_changed
    async def on_context_changed(payload: dict[str, Any]) -> None:
        # The channel the user now views: nothing the answers depend on (a thread asks the
        # project of the DM it lives in), so only acknowledged (Bolt acks on return).
        thread = payload.get("assistant_thread") or {}
        log.debug("assistant thread %s: context changed", thread.get("thread_ts"))

    return assistant


async def _greet(runtime: Runtime, team: str, channel: str, thread_ts: str) -> None:
    log_setup.bind(team=team, channel=channel, thread=thread_ts)
    if not await _claimed(runtime, keys.assistant_greeted(team, channel, thread_ts)):
        return  # greeted already: a retry, or the same start under another event id
    calls = runtime.slack_writes.for_team(team)
    try:
        account = await runtime.customgpt_keys.account_for(team)
    except NoKey:
        await _post(calls, channel, thread_ts, messages.NO_KEY)
        return
    except StoreUnavailable as error:
        log.warning("assistant thread: the workspace's key unknown, store unreachable: %s", error)
        await _post(calls, channel, thread_ts, messages.STORE_DOWN)
        return
    try:
        project_id = await runtime.answerer.project_for(team, channel, account.default_project)
    except StoreUnavailable as error:
        log.warning("assistant thread: store unreachable, default project assumed: %s", error)
        project_id = account.default_project
    if project_id is None:
        await _post(calls, channel, thread_ts, messages.NO_PROJECT)
        return
    name = await runtime.answerer.project_name(team, project_id, account.client)
    await _post(calls, channel, thread_ts, messages.assistant_greeting(name))
    try:
        questions = await account.client.example_questions(project_id)
    except CustomGPTError as error:
        log.log(failure_log_level(error), "no starter questions from CustomGPT: %s", error)
        questions = []
    prompts = suggested_prompts(questions)
    try:
        await calls.set_suggested_prompts(channel, thread_ts, prompts, messages.PROMPTS_TITLE)
    except SlackUnavailable as error:
        log.warning("could not offer suggested prompts: %s", error)


async def _claimed(runtime: Runtime, key: str) -> bool:
    """True for the one delivery that claims `key`; also True when the store cannot say (a
    thread greeted twice beats one never greeted)."""
    try:
        return await runtime.store.claim(key, runtime.settings.store_ttl_seconds)
    except StoreUnavailable as error:
        log.warning("assistant thread greeted without checking for repeats: %s", error)
        return True


async def _post(calls: SlackCalls, channel: str, thread_ts: str, text: str) -> None:
    try:
        await calls.post(channel, thread_ts, Content(text))
    except SlackUnavailable as error:
        log.warning("could not greet in an assistant thread: %s", error)


async def _answer(runtime: Runtime, question: Question) -> None:
    """Answer through the usual flow; the thread's first question also names the thread and
    its CustomGPT conversation."""
    thread_ts, title = question.thread_ts, thread_title(question.text)
    first = bool(title) and thread_ts is not None and await _first(runtime, question, thread_ts)
    if first and thread_ts is not None:
        try:
            calls = runtime.slack_writes.for_team(question.team)
            await calls.set_title(question.channel, thread_ts, title)
        except SlackUnavailable as error:
            log.warning("could not title an assistant thread: %s", error)
    await runtime.answerer.handle(question)
    if first:
        await _rename_conversation(runtime, question, title)


async def _first(runtime: Runtime, question: Question, thread_ts: str) -> bool:
    """True for the one delivery of the thread's first titled question."""
    key = keys.assistant_titled(question.team, question.channel, thread_ts)
    try:
        return await runtime.store.claim(key, runtime.settings.store_ttl_seconds)
    except StoreUnavailable as error:
        log.warning("assistant thread left untitled: store unreachable: %s", error)
        return False


async def _rename_conversation(runtime: Runtime, question: Question, title: str) -> None:
    """The thread's CustomGPT conversation takes the thread's title (if the answer got as
    far as starting one)."""
    key = keys.conversation(question.team, question.channel, question.conversation_thread)
    try:
        stored = await runtime.store.get(key)
    except StoreUnavailable as error:
        log.warning("conversation not renamed: store unreachable: %s", error)
        return
    if stored is None:
        return
    data = json.loads(stored)
    try:
        customgpt = await runtime.customgpt_keys.client_for(question.team)
    except NoKey:
        return  # removed while the answer streamed: the conversation keeps its name
    try:
        await customgpt.rename_conversation(
            str(data["project_id"]), str(data["session_id"]), title[:CONVERSATION_NAME_LIMIT]
        )
    except CustomGPTError as error:
        log.log(failure_log_level(error), "conversation not renamed: %s", error)
