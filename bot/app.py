"""The Bolt app: listeners only. Each one reads the event, decides whether it is a question,
and hands off to a use case; none talks to CustomGPT itself.

Bolt acks events at once (`process_before_response=False`) and runs these listeners in the
background, which keeps within Slack's 3-second rule however long an answer streams.
The assistant pane's events go to bot/assistant.py (Bolt's AsyncAssistant middleware, which
also takes every DM thread message), the Home tab's to bot/home.py.

In single-token mode the bot holds one workspace's token. Slack signs requests for every
workspace the app is installed in alike, so a global middleware lets through only what
belongs to this one. With OAuth (bot/oauth.py) every installed workspace is served, each with
its own installation's token; Bolt refuses requests from workspaces without one.
`app_uninstalled` and `tokens_revoked` are the exception: Bolt authorizes them for the team
they name without asking Slack (the token may be dead already), so they reach the listeners
for any workspace, and delete that workspace's data, never another's (bot/uninstall.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.authorization import AuthorizeResult

from bot import feedback, home, log_setup, messages, oauth, uninstall
from bot.answer import question_from_event
from bot.assistant import build_assistant
from bot.commands import register_commands
from bot.log_throttle import ThrottledLog
from bot.oauth_stores import RedisInstallationStore
from bot.runtime import Runtime, slack_client
from bot.slack_calls import Content, MessageGone, MessageTooLong, SlackCalls, SlackUnavailable
from bot.store import StoreUnavailable

log = logging.getLogger(__name__)

FOREIGN_WARNING_EVERY = 60.0  # seconds between two log lines about other workspaces
WORKSPACE = "workspace"  # context key: the team this request is served as


def build_app(runtime: Runtime) -> AsyncApp:
    settings = runtime.settings

    async def authorize(**_: Any) -> AuthorizeResult:
        identity = await runtime.identity()
        return AuthorizeResult(
            enterprise_id=identity.enterprise_id,
            team_id=identity.team_id,
            bot_user_id=identity.bot_user_id,
            bot_id=identity.bot_id,
            bot_token=settings.slack_bot_token,
        )

    # Token-less: Bolt gives each request a client carrying `authorize`'s token.
    client = slack_client(runtime.session, replace(settings, slack_bot_token=""))
    installations, state = runtime.installations, runtime.oauth_state
    if installations is not None and state is not None:
        app = AsyncApp(
            client=client,
            signing_secret=settings.slack_signing_secret,
            process_before_response=False,
            oauth_settings=oauth.oauth_settings(settings, installations, state),
            # Bolt takes its own AsyncAuthorize here too, though the hint names a function.
            authorize=oauth.authorize(settings, installations, client),  # type: ignore[arg-type]
        )
    else:
        app = AsyncApp(
            client=client,
            signing_secret=settings.slack_signing_secret,
            process_before_response=False,
            authorize=authorize,
        )

    foreign = ThrottledLog(log, FOREIGN_WARNING_EVERY, runtime.clock)

    @app.middleware
    async def log_context(
        context: AsyncBoltContext, body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> None:
        # Every line logged for this request, in its listeners' tasks too, says what it is.
        log_setup.new_request(
            team=context.team_id, channel=context.channel_id, event_id=body.get("event_id")
        )
        await next()

    @app.middleware
    async def only_this_workspace(
        context: AsyncBoltContext, body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        if installations is not None:  # OAuth: Bolt found this workspace's installation
            context[WORKSPACE] = oauth.workspace_of(context, body)
            await _note_org_team(installations, context, body)
            await next()
            return None
        workspace = _served_workspace(body, context.team_id, context.authorize_result)
        if workspace is None:
            foreign.warning(
                "ignored a request for another workspace (team %s); this bot's token is for %s",
                context.team_id,
                context.authorize_result.team_id if context.authorize_result else None,
            )
            return BoltResponse(status=200, body="")
        context[WORKSPACE] = workspace
        await next()
        return None

    # After the workspace check: assistant threads are served for this workspace only.
    app.assistant(build_assistant(runtime, _team))

    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any], context: AsyncBoltContext) -> None:
        if event.get("tab") != "home" or not event.get("user"):
            return  # the Messages tab is the DM: nothing to publish there (nor for no one)
        async with runtime.tasks.track():
            await home.publish_home(runtime, _team(context), str(event.get("user") or ""))

    @app.event("app_mention")
    async def on_mention(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        if _is_from_a_bot(event) or not _is_written_by_a_person(event):
            return
        async with runtime.tasks.track():
            await _ask(runtime, body, event, context, is_dm=False)

    @app.event("message")
    async def on_message(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        # Edits, joins, deletions and the bot's own messages all arrive here as subtypes.
        if _is_from_a_bot(event) or not _is_written_by_a_person(event):
            return
        async with runtime.tasks.track():
            if event.get("channel_type") == "im":
                await _ask(runtime, body, event, context, is_dm=True)
            else:
                await _maybe_follow_up(runtime, body, event, context)

    @app.action(re.compile(r"^feedback_(liked|disliked)$"))
    async def on_feedback(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        async with runtime.tasks.track():
            await _feedback(runtime, str(context[WORKSPACE]), body, action, respond)

    @app.event("app_uninstalled")
    async def on_uninstalled(context: AsyncBoltContext) -> None:
        async with runtime.tasks.track():
            await _forget(runtime, context, "app uninstalled")

    @app.event("tokens_revoked")
    async def on_tokens_revoked(event: dict[str, Any], context: AsyncBoltContext) -> None:
        if not uninstall.revokes_bot_token(event):
            return  # users' tokens only: the bot still works there, its data stays
        async with runtime.tasks.track():
            await _forget(runtime, context, "bot token revoked")

    register_commands(app, runtime, _team)

    return app


async def _feedback(
    runtime: Runtime,
    team: str,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
) -> None:
    message = body.get("message") or {}
    outcome = await feedback.record(
        runtime.customgpt_keys,
        team,
        str(action.get("action_id")),
        str(action.get("value") or ""),
        list(message.get("blocks") or []),
        clicker=str((body.get("user") or {}).get("id") or ""),
    )
    if outcome.blocks is not None:
        if await _show_feedback(runtime.slack_writes.for_team(team), body, outcome.blocks):
            return
        outcome = feedback.FeedbackOutcome(note=messages.FEEDBACK_RECORDED_NOT_SHOWN)
    if outcome.note:
        await respond(text=outcome.note, response_type="ephemeral", replace_original=False)


async def _show_feedback(
    calls: SlackCalls, body: dict[str, Any], blocks: list[dict[str, Any]]
) -> bool:
    """Show the recorded reaction on the answer (an edit like any other: it waits its turn
    in the workspace's scheduler); False when Slack would not take the edit."""
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id"))
    content = Content(str(message.get("text") or ""), blocks)
    try:
        await calls.update(channel, str(message.get("ts")), content)
    except (SlackUnavailable, MessageTooLong, MessageGone) as error:
        log.warning("could not show recorded feedback: %s", error)
        return False
    return True


def _is_from_a_bot(event: dict[str, Any]) -> bool:
    return bool(event.get("bot_id") or event.get("bot_profile"))


def _is_written_by_a_person(event: dict[str, Any]) -> bool:
    """A plain message, or one with files attached (`file_share`): every other subtype is
    an edit, a deletion, a join or the like, not a question."""
    return event.get("subtype") in (None, "file_share")


def _served_workspace(
    body: dict[str, Any], request_team: str | None, own: AuthorizeResult | None
) -> str | None:
    """The team a request is served as, or None when it is not for this bot's workspace.

    A request is ours when it names the token's team (`auth.test`) as its own or, for events,
    among its `authorizations`: a Slack Connect channel or an Enterprise Grid org delivers
    events whose `team_id` is another workspace's, authorized for ours. With an org-wide token
    (no team of its own), the org must match instead."""
    if own is None:  # Bolt answers URL checks before any middleware; nothing else lacks one
        return request_team or "unknown"
    teams, enterprises = _named_workspaces(body)
    if own.team_id:
        return own.team_id if own.team_id in teams else None
    if own.enterprise_id and own.enterprise_id in enterprises:
        return request_team or "unknown"
    return None


def _named_workspaces(body: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Teams and orgs a request names: an event's `team_id` and `authorizations`, a
    command's `team_id`/`enterprise_id`, an action's `team.id`/`enterprise.id`, a modal's
    `app_installed_team_id` (submitted from a Slack Connect partner, its `team` is the
    partner's)."""
    teams: set[str] = set()
    enterprises: set[str] = set()
    view = body.get("view")
    installed = view.get("app_installed_team_id") if isinstance(view, dict) else None
    if isinstance(installed, str) and installed:
        teams.add(installed)
    for holder in [body, *(a for a in body.get("authorizations") or [] if isinstance(a, dict))]:
        for ids, key in ((teams, "team"), (enterprises, "enterprise")):
            named = holder.get(f"{key}_id") or holder.get(key)
            if isinstance(named, dict):
                named = named.get("id")
            if isinstance(named, str) and named:
                ids.add(named)
    return teams, enterprises


async def _forget(runtime: Runtime, context: AsyncBoltContext, reason: str) -> None:
    """The workspace's data, and with OAuth its installation; an org-wide installation's
    uninstall (it names the enterprise) takes every workspace of the org with it."""
    if runtime.installations is None:
        await uninstall.forget_workspace(runtime.store, _team(context), reason)
    elif context.is_enterprise_install and context.enterprise_id:
        await uninstall.forget_org(
            runtime.store, runtime.installations, context.enterprise_id, reason
        )
    else:
        await uninstall.forget_install(runtime.store, runtime.installations, _team(context), reason)


_NO_INSTALL_EVENTS = ("app_uninstalled", "tokens_revoked")


async def _note_org_team(
    installations: RedisInstallationStore, context: AsyncBoltContext, body: dict[str, Any]
) -> None:
    """Index a workspace an org-wide installation serves (not on the events that remove
    it: they must not write it back)."""
    event = body.get("event")
    kind = event.get("type") if isinstance(event, dict) else None
    workspace = context.get(WORKSPACE)
    if not (context.is_enterprise_install and context.enterprise_id) or kind in _NO_INSTALL_EVENTS:
        return
    if not isinstance(workspace, str) or workspace == "unknown":
        return
    try:
        await installations.note_org_team(context.enterprise_id, workspace)
    except StoreUnavailable as error:
        log.warning("org-wide install's workspace %s not indexed now (%s)", workspace, error)


def _team(context: AsyncBoltContext) -> str:
    return str(context.get(WORKSPACE) or "unknown")


async def _ask(
    runtime: Runtime,
    body: dict[str, Any],
    event: dict[str, Any],
    context: AsyncBoltContext,
    *,
    is_dm: bool,
) -> None:
    question = question_from_event(_team(context), body, event, context.bot_user_id, is_dm=is_dm)
    # The answer runs in a task of its own, so this listener ends here: Bolt's request, its
    # parsed body and its context (several KiB) are let go at once instead of being held for
    # the whole answer, for every answer in flight.
    runtime.tasks.spawn(
        runtime.answerer.handle(question),
        name=f"answer {question.channel}:{question.message_ts}",
    )


async def _maybe_follow_up(
    runtime: Runtime, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
) -> None:
    """A thread reply without a mention is a question when the bot owns that thread.

    Replies that mention the bot arrive as `app_mention` too and are answered there."""
    thread_ts = event.get("thread_ts")
    if not runtime.settings.slack_thread_followups or not thread_ts or thread_ts == event["ts"]:
        return
    bot_user_id = context.bot_user_id
    if bot_user_id and f"<@{bot_user_id}" in str(event.get("text") or ""):
        return
    if not await runtime.answerer.owns_thread(_team(context), str(event["channel"]), thread_ts):
        return
    await _ask(runtime, body, event, context, is_dm=False)
