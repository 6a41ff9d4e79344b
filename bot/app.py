"""The Bolt app: listeners only. Each one reads the event, decides whether it is a question,
and hands off to a use case; none talks to CustomGPT itself.

Bolt acks events at once (`process_before_response=False`) and runs these listeners in the
background, which keeps within Slack's 3-second rule however long an answer streams.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError

from bot import feedback, messages
from bot.answer import Question, question_text
from bot.commands import register_commands
from bot.runtime import Runtime
from bot.slack_calls import NETWORK_ERRORS

log = logging.getLogger(__name__)


def build_app(runtime: Runtime) -> AsyncApp:
    settings = runtime.settings
    app = AsyncApp(
        client=runtime.slack,
        signing_secret=settings.slack_signing_secret,
        process_before_response=False,
    )

    @app.event("app_mention")
    async def on_mention(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        if _is_from_a_bot(event) or event.get("subtype"):
            return
        async with runtime.tasks.track():
            await _ask(runtime, body, event, context.bot_user_id, is_dm=False)

    @app.event("message")
    async def on_message(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        # Edits, joins, deletions and the bot's own messages all arrive here as subtypes.
        if _is_from_a_bot(event) or event.get("subtype"):
            return
        async with runtime.tasks.track():
            if event.get("channel_type") == "im":
                await _ask(runtime, body, event, context.bot_user_id, is_dm=True)
            else:
                await _maybe_follow_up(runtime, body, event, context.bot_user_id)

    @app.action(re.compile(r"^feedback_(liked|disliked)$"))
    async def on_feedback(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        async with runtime.tasks.track():
            await _feedback(runtime, body, action, respond)

    register_commands(app, runtime)

    return app


async def _feedback(
    runtime: Runtime, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
) -> None:
    message = body.get("message") or {}
    outcome = await feedback.record(
        runtime.customgpt,
        str(action.get("action_id")),
        str(action.get("value") or ""),
        list(message.get("blocks") or []),
    )
    if outcome.blocks is not None:
        try:
            await runtime.slack.chat_update(
                channel=str((body.get("channel") or {}).get("id")),
                ts=str(message.get("ts")),
                text=str(message.get("text") or ""),
                blocks=outcome.blocks,
            )
            return
        except (SlackApiError, *NETWORK_ERRORS) as error:
            log.warning("could not show recorded feedback: %s", type(error).__name__)
            outcome = feedback.FeedbackOutcome(note=messages.FEEDBACK_RECORDED_NOT_SHOWN)
    if outcome.note:
        await respond(text=outcome.note, response_type="ephemeral", replace_original=False)


def _is_from_a_bot(event: dict[str, Any]) -> bool:
    return bool(event.get("bot_id") or event.get("bot_profile"))


def _team(body: dict[str, Any], event: dict[str, Any]) -> str:
    return str(body.get("team_id") or event.get("team") or "unknown")


async def _ask(
    runtime: Runtime,
    body: dict[str, Any],
    event: dict[str, Any],
    bot_user_id: str | None,
    *,
    is_dm: bool,
) -> None:
    question = Question(
        team=_team(body, event),
        channel=str(event["channel"]),
        user=str(event.get("user") or ""),
        text=question_text(str(event.get("text") or ""), bot_user_id),
        message_ts=str(event["ts"]),
        thread_ts=event.get("thread_ts"),
        is_dm=is_dm,
        event_id=body.get("event_id"),
    )
    await runtime.answerer.handle(question)


async def _maybe_follow_up(
    runtime: Runtime, body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None
) -> None:
    """A thread reply without a mention is a question when the bot owns that thread.

    Replies that mention the bot arrive as `app_mention` too and are answered there."""
    thread_ts = event.get("thread_ts")
    if not runtime.settings.slack_thread_followups or not thread_ts or thread_ts == event["ts"]:
        return
    if bot_user_id and f"<@{bot_user_id}" in str(event.get("text") or ""):
        return
    if not await runtime.answerer.owns_thread(_team(body, event), str(event["channel"]), thread_ts):
        return
    await _ask(runtime, body, event, bot_user_id, is_dm=False)
