"""`/customgpt <verb> …`: the slash command that manages which knowledge base answers where.

Parsing and replying only; creating and watching projects lives in `bot.indexing`. Slack
wants an answer within 3 seconds, so each verb acks at once: with its whole reply when no
CustomGPT call is needed, else with nothing (or "creating…"), and reports later through the
command's response URL. Every reply is ephemeral: only the person who typed it sees it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from bot import bindings, home, key_modal, keys, messages
from bot.admins import AdminCheckFailed
from bot.answer import DM_THREAD, PROJECT_NAME_TTL
from bot.customgpt import CustomGPTError, failure_log_level
from bot.customgpt_keys import Account, NoKey
from bot.indexing import Indexer, InvalidNewProject, check_new_project
from bot.runtime import Runtime
from bot.store import StoreUnavailable

log = logging.getLogger(__name__)

COMMAND = "/customgpt"
NO_BIND = "--no-bind"
# Seconds a create is remembered: Slack accepts a signed request for 5 minutes, so a replay
# (or a double submit) comes within this and is answered with the first project.
RECENT_CREATE_TTL = 6 * 60
DEFAULT = "default"
KEY = "key"
_PROJECT_ID = re.compile(r"[0-9]{1,18}")
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}  # straight, curly


@dataclass(frozen=True)
class Invocation:
    """One `/customgpt` request: who, where, and the words after the command."""

    team: str
    channel: str
    user: str
    verb: str
    args: list[str]
    response_url: str | None
    is_dm: bool = False
    trigger_id: str | None = None  # opens a modal (`/customgpt key`) for 3 seconds

    @classmethod
    def from_payload(cls, command: dict[str, Any], team: str) -> Invocation:
        """`team`: the workspace the request is served as (bot/app.py decides it once for
        every request), not the payload's `team_id`: in Slack Connect and Enterprise Grid the
        two can differ, and the data read and written must be the served workspace's."""
        verb, args = parse(str(command.get("text") or ""))
        channel = str(command.get("channel_id") or "")
        return cls(
            team=team,
            channel=channel,
            user=str(command.get("user_id") or ""),
            verb=verb,
            args=args,
            response_url=command.get("response_url") or None,
            # A DM with the bot: Slack names it "directmessage"; its id starts with D.
            is_dm=command.get("channel_name") == "directmessage" or channel.startswith("D"),
            trigger_id=command.get("trigger_id") or None,
        )


def parse(text: str) -> tuple[str, list[str]]:
    """The verb (lower-cased; "help" when there is none) and the words after it."""
    words = text.split()
    if not words:
        return "help", []
    return words[0].lower(), words[1:]


def unwrap_link(word: str) -> str:
    """Slack may send a typed URL as `<https://…>` or `<https://…|label>`: the URL itself."""
    if word.startswith("<") and word.endswith(">"):
        return word[1:-1].split("|", 1)[0]
    return word


def unquote(text: str) -> str:
    """`"Acme Docs"` → `Acme Docs` (people quote names with spaces out of habit)."""
    text = text.strip()
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        return text[1:-1].strip()
    return text


def _created_id(recent: str | None) -> str | None:
    """The project a remembered create made; None while it is still being created."""
    if recent is None or not recent.startswith("{"):
        return None
    return str(json.loads(recent).get("project_id") or "") or None


def register_commands(
    app: AsyncApp, runtime: Runtime, workspace_of: Callable[[AsyncBoltContext], str]
) -> None:
    """`workspace_of`: the workspace a request is served as (bot/app.py's middleware set it)."""
    commands = Commands(runtime, Indexer(runtime))

    @app.command(COMMAND)
    async def on_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        invocation = Invocation.from_payload(command, workspace_of(context))
        async with runtime.tasks.track():
            await commands.handle(invocation, Reply(ack, respond))

    @app.view(key_modal.CALLBACK_ID)
    async def on_key_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        user = str((body.get("user") or {}).get("id") or "")
        async with runtime.tasks.track():
            await commands.key_modal.submitted(workspace_of(context), user, view, ack)

    @app.action(home.KEY_BUTTON)
    async def on_home_button(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        user = str((body.get("user") or {}).get("id") or "")
        trigger_id = str(body.get("trigger_id") or "")
        async with runtime.tasks.track():
            await commands.key_modal.from_home(workspace_of(context), user, trigger_id)


Verb = Callable[["Invocation", "Reply", Account], Awaitable[None]]


class Reply:
    """The two ways a command answers, both ephemeral: the ack (at once) and the response
    URL (later, any number of times up to Slack's limit)."""

    def __init__(self, ack: AsyncAck, respond: AsyncRespond) -> None:
        self._ack = ack
        self._respond = respond
        self._acked = False

    async def now(self, text: str | None = None) -> None:
        self._acked = True
        if text is None:
            await self._ack()
        else:
            await self._ack(text=text, response_type="ephemeral")

    async def later(self, text: str) -> None:
        await self._respond(text=text, response_type="ephemeral")

    async def anyhow(self, text: str) -> None:
        """Say it in the ack if that has not gone out yet, else through the response URL."""
        if self._acked:
            await self.later(text)
        else:
            await self.now(text)


class Commands:
    def __init__(self, runtime: Runtime, indexer: Indexer) -> None:
        self._runtime = runtime
        self._store = runtime.store
        self._keys = runtime.customgpt_keys
        self._indexer = indexer
        self._admins = runtime.admins
        self.key_modal = key_modal.KeyModal(runtime)

    async def handle(self, invocation: Invocation, reply: Reply) -> None:
        verbs: dict[str, Verb] = {
            "create": self._create,
            "use": self._use,
            "status": self._status,
            "list": self._list,
            "new": self._new,
        }
        verb = verbs.get(invocation.verb)
        if invocation.verb == "help":
            await reply.now(messages.HELP)
        elif invocation.verb != KEY and verb is None:
            await reply.now(messages.unknown_verb(invocation.verb))
        else:
            log.info(
                "/customgpt %s in %s by %s", invocation.verb, invocation.channel, invocation.user
            )
            try:
                await self._run(invocation, reply, verb)
            except StoreUnavailable as error:
                log.error("/customgpt %s: store unreachable: %s", invocation.verb, error)
                await reply.anyhow(messages.STORE_DOWN)
            except AdminCheckFailed as error:
                log.warning("/customgpt %s: admin check failed: %s", invocation.verb, error)
                await reply.anyhow(
                    messages.admin_not_checked(missing_scope=error.code == "missing_scope")
                )

    async def _run(self, invocation: Invocation, reply: Reply, verb: Verb | None) -> None:
        """`key` (None here) manages the workspace's CustomGPT key; every other verb runs with
        that key, and without one CustomGPT is not asked."""
        if verb is None:
            await self.key_modal.command(invocation, reply)
            return
        try:
            account = await self._keys.account_for(invocation.team)
        except NoKey:
            await reply.now(messages.NO_KEY_FOR_COMMAND)
            return
        await verb(invocation, reply, account)

    async def _create(self, invocation: Invocation, reply: Reply, account: Account) -> None:
        if not await self._admins.may_administer(invocation.team, invocation.user):
            await reply.now(messages.NOT_ADMIN)
            return
        words = [w for w in invocation.args if w.lower() != NO_BIND]
        bind = len(words) == len(invocation.args)
        if len(words) < 2 or any(w.startswith("--") for w in words):
            await reply.now(messages.CREATE_USAGE)
            return
        name, sitemap_url = unquote(" ".join(words[:-1])), unwrap_link(words[-1])
        try:
            check_new_project(name, sitemap_url)
        except InvalidNewProject as error:
            await reply.now(str(error))
            return
        recent = keys.recent_create(invocation.team, invocation.user, name, sitemap_url)
        if not await self._store.claim(recent, RECENT_CREATE_TTL):
            await reply.now(
                messages.created_recently(name, _created_id(await self._store.get(recent)))
            )
            return
        await reply.now(messages.creating(name, sitemap_url))
        try:
            project = await self._indexer.create(
                account.client,
                team=invocation.team,
                channel=invocation.channel,
                user=invocation.user,
                name=name,
                sitemap_url=sitemap_url,
                bind=bind,
                response_url=invocation.response_url,
            )
        except CustomGPTError as error:
            log.log(failure_log_level(error), "creating a project failed: %s", error)
            await self._store.delete(recent)  # nothing was created: asking again must work
            await reply.later(messages.for_command_error(error))
            return
        await self._store.set(recent, json.dumps({"project_id": project.id}), ttl=RECENT_CREATE_TTL)

    async def _use(self, invocation: Invocation, reply: Reply, account: Account) -> None:
        if not await self._admins.may_administer(invocation.team, invocation.user):
            await reply.now(messages.NOT_ADMIN)
            return
        if len(invocation.args) != 1:
            await reply.now(messages.USE_USAGE)
            return
        (project_id,) = invocation.args
        if project_id.lower() == DEFAULT:
            await bindings.unbind(self._store, invocation.team, invocation.channel)
            kept = await self._indexer.keep_binding(invocation.team, invocation.channel)
            text = messages.unbound(account.default_project)
            await reply.now(text + messages.binding_kept([(w.name, w.project_id) for w in kept]))
            return
        if not _PROJECT_ID.fullmatch(project_id):
            await reply.now(messages.bad_project_id(project_id))
            return
        await reply.now()
        try:
            # Asked with the workspace's key: a project of another account is not found.
            project = await account.client.get_project(project_id)
        except CustomGPTError as error:
            await reply.later(messages.for_command_error(error, project_id=project_id))
            return
        if not project.is_chat_active:
            await reply.later(messages.not_ready(project))
            return
        # Pending projects first give up the channel, then it is bound: a watch finishing in
        # between reads its record again before binding and leaves the channel alone.
        kept = await self._indexer.keep_binding(invocation.team, invocation.channel)
        await bindings.bind(self._store, invocation.team, invocation.channel, project_id)
        await self._store.set(
            keys.project_name(invocation.team, project_id), project.name, ttl=PROJECT_NAME_TTL
        )
        text = messages.bound(project)
        await reply.later(text + messages.binding_kept([(w.name, w.project_id) for w in kept]))

    async def _status(self, invocation: Invocation, reply: Reply, account: Account) -> None:
        role: str | None = None
        if invocation.args:
            project_id: str | None = invocation.args[0]
            if not _PROJECT_ID.fullmatch(invocation.args[0]):
                await reply.now(messages.bad_project_id(invocation.args[0]))
                return
        else:
            project_id = await self._store.get(keys.binding(invocation.team, invocation.channel))
            role = "bound to this channel"
            if project_id is None:
                project_id = account.default_project
                role = "the default project (nothing is bound here)"
        if project_id is None:
            await reply.now(messages.NO_PROJECT_HERE)
            return
        await reply.now()
        try:
            project = await account.client.get_project(project_id)
            stats = await account.client.project_stats(project_id)
        except CustomGPTError as error:
            await reply.later(messages.for_command_error(error, project_id=project_id))
            return
        watching = await self._indexer.is_pending(invocation.team, project_id)
        await reply.later(messages.project_status(project, stats, role=role, watching=watching))

    async def _list(self, invocation: Invocation, reply: Reply, account: Account) -> None:
        page = 1
        if invocation.args:
            if len(invocation.args) > 1 or not invocation.args[0].isdecimal():
                await reply.now(messages.LIST_USAGE)
                return
            page = max(1, int(invocation.args[0]))
        await reply.now()
        try:
            result = await account.client.list_projects(page)
        except CustomGPTError as error:
            await reply.later(messages.for_command_error(error))
            return
        current = await self._runtime.answerer.project_for(
            invocation.team, invocation.channel, account.default_project
        )
        await reply.later(messages.project_list(result, current=current))

    async def _new(self, invocation: Invocation, reply: Reply, account: Account) -> None:
        """A DM is one conversation, so starting over means a new one, made right here: the
        DM keeps its old one if that fails. In a channel every mention already starts a new
        conversation (and Slack runs no commands inside threads): nothing to reset there."""
        if not invocation.is_dm:
            await reply.now(messages.NEW_IN_A_CHANNEL)
            return
        answerer = self._runtime.answerer
        project_id = await answerer.project_for(
            invocation.team, invocation.channel, account.default_project
        )
        if project_id is None:
            await reply.now(messages.NO_PROJECT_HERE)
            return
        await reply.now()
        try:
            await answerer.start_conversation(
                account.client, invocation.team, invocation.channel, DM_THREAD, project_id
            )
        except CustomGPTError as error:
            log.warning("/customgpt new: no new conversation: %s", error)
            await reply.later(messages.for_command_error(error, project_id=project_id))
            return
        await reply.later(messages.FRESH_START)
