"""`/customgpt key` and the Home tab's "Connect CustomGPT key" button: a workspace admin
connects the workspace's own CustomGPT API key, or removes it (`/customgpt key remove`).

The key is typed into a modal, never into a channel or the command's text: the modal's
submission reaches only the bot. It is checked with CustomGPT before it is stored (a wrong key
gets its error inside the modal, where it was typed), stored encrypted (bot/customgpt_keys.py),
and never shown again: not in the modal, a message or a log line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck

from bot import home, messages
from bot.admins import AdminCheckFailed
from bot.customgpt import AuthError, CustomGPTError
from bot.customgpt_keys import MAX_KEY_LENGTH, CannotSeal
from bot.runtime import Runtime
from bot.slack_calls import SlackUnavailable
from bot.store import StoreUnavailable

if TYPE_CHECKING:
    from bot.commands import Invocation, Reply

log = logging.getLogger(__name__)

CALLBACK_ID = "customgpt_key"
BLOCK_ID = "api_key"
ACTION_ID = "value"
REMOVE = "remove"
FROM_HOME = "home"  # the modal's private_metadata when the Home tab opened it


def key_view(*, connected: bool, shared: bool, from_home: bool = False) -> dict[str, Any]:
    """The modal the key is typed into. Opened `from_home`, its submission shows the Home
    tab again, now saying the key is connected."""
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": FROM_HOME if from_home else "",
        "title": {"type": "plain_text", "text": "CustomGPT key"},
        "submit": {"type": "plain_text", "text": "Connect"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": messages.key_modal_intro(connected=connected, shared=shared),
                },
            },
            {
                "type": "input",
                "block_id": BLOCK_ID,
                "label": {"type": "plain_text", "text": "CustomGPT API key"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": ACTION_ID,
                    "max_length": MAX_KEY_LENGTH,
                },
                "hint": {"type": "plain_text", "text": messages.KEY_MODAL_HINT},
            },
        ],
    }


def connected_view(projects: int) -> dict[str, Any]:
    """What the modal turns into once the key is stored (it shows nothing of the key)."""
    return notice_view(messages.key_connected(projects), close="Done")


def notice_view(text: str, close: str = "Close") -> dict[str, Any]:
    """A modal that only tells something (a click the bot refuses, a key stored): no field,
    no submit."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "CustomGPT key"},
        "close": {"type": "plain_text", "text": close},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


def typed_key(view: dict[str, Any]) -> str:
    """The key as typed into the modal ("" when the field is missing or empty)."""
    values = (view.get("state") or {}).get("values") or {}
    value = ((values.get(BLOCK_ID) or {}).get(ACTION_ID) or {}).get("value")
    return value.strip() if isinstance(value, str) else ""


def _looks_like_a_key(text: str) -> bool:
    """A CustomGPT key is printable ASCII without spaces. Anything else pasted with it (a
    control or zero-width character) cannot travel in an HTTP header: refused here, beside
    the field, rather than failing the check without an answer."""
    return (
        0 < len(text) <= MAX_KEY_LENGTH
        and text.isascii()
        and text.isprintable()
        and " " not in text
    )


class KeyModal:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._keys = runtime.customgpt_keys
        self._admins = runtime.admins

    async def command(self, invocation: Invocation, reply: Reply) -> None:
        """`/customgpt key` opens the modal; `/customgpt key remove` disconnects the key.
        AdminCheckFailed (Slack could not say who is an admin) reaches the command's caller."""
        if not await self._admins.may_administer(invocation.team, invocation.user):
            await reply.now(messages.KEY_NOT_ADMIN)
            return
        words = [w.lower() for w in invocation.args]
        if words == [REMOVE]:
            removed = await self._keys.remove(invocation.team, invocation.user)
            await reply.now(messages.key_removed(removed, shared=self._keys.shared is not None))
            return
        if words:
            # Perhaps the key itself: it is not used, and the reply does not repeat it.
            await reply.now(messages.KEY_USAGE)
            return
        if not self._keys.can_connect:
            await reply.now(messages.KEY_CANNOT_BE_STORED)
            return
        if invocation.trigger_id is None:
            await reply.now(messages.KEY_MODAL_FAILED)
            return
        view = key_view(
            connected=await self._keys.has_own_key(invocation.team),
            shared=self._keys.shared is not None,
        )
        await reply.now()
        try:
            await self._runtime.slack_writes.for_team(invocation.team).open_view(
                invocation.trigger_id, view
            )
        except SlackUnavailable as error:
            log.warning("/customgpt key: the modal did not open: %s", error)
            await reply.later(messages.KEY_MODAL_FAILED)

    async def from_home(self, team: str, user: str, trigger_id: str) -> None:
        """The Home tab's button opens the same modal. It is drawn for admins only, so a click
        from anyone else is forged (or the admin list changed since the tab was drawn): it
        opens a modal saying only admins can, and is logged; nothing else happens."""
        if not trigger_id:
            log.warning("the Home tab's key button came without a trigger id: no modal")
            return
        try:
            if not await self._admins.may_administer(team, user):
                log.warning("the Home tab's key button pressed by %s, not an admin: refused", user)
                view = notice_view(messages.KEY_NOT_ADMIN_SHORT)
            elif not self._keys.can_connect:
                view = notice_view(messages.KEY_CANNOT_BE_STORED)
            else:
                view = key_view(
                    connected=await self._keys.has_own_key(team),
                    shared=self._keys.shared is not None,
                    from_home=True,
                )
        except StoreUnavailable as error:
            log.error("the Home tab's key button: store unreachable: %s", error)
            view = notice_view(messages.STORE_DOWN)
        except AdminCheckFailed as error:
            log.warning("the Home tab's key button: admin check failed: %s", error)
            view = notice_view(
                messages.admin_not_checked(missing_scope=error.code == "missing_scope")
            )
        try:
            await self._runtime.slack_writes.for_team(team).open_view(trigger_id, view)
        except SlackUnavailable as error:
            log.warning("the Home tab's key button: the modal did not open: %s", error)

    async def submitted(self, team: str, user: str, view: dict[str, Any], ack: AsyncAck) -> None:
        """Check the typed key with CustomGPT, store it, and show the outcome in the modal:
        an error beside the field, or the confirmation. Within Slack's 3 seconds (whoever
        opened the modal was just found an admin: that answer is usually still kept)."""
        try:
            admin = await self._admins.may_administer(team, user)
        except AdminCheckFailed as error:
            log.warning("/customgpt key: admin check failed for the submission: %s", error)
            missing_scope = error.code == "missing_scope"
            await self._refuse(ack, messages.admin_not_checked_short(missing_scope=missing_scope))
            return
        if not admin:
            await self._refuse(ack, messages.KEY_NOT_ADMIN_SHORT)
            return
        api_key = typed_key(view)
        if not _looks_like_a_key(api_key):
            await self._refuse(ack, messages.KEY_MALFORMED)
            return
        try:
            projects = await self._keys.check(api_key)
        except AuthError:
            log.info("/customgpt key: CustomGPT rejected the key typed by %s", user)
            await self._refuse(ack, messages.KEY_REJECTED)
            return
        except CustomGPTError as error:
            log.warning("/customgpt key: the key could not be checked: %s", error)
            await self._refuse(ack, messages.key_not_checked(error))
            return
        try:
            await self._keys.connect(team, api_key, user)
        except (StoreUnavailable, CannotSeal) as error:
            log.error("/customgpt key: the key could not be stored: %s", error)
            await self._refuse(ack, messages.KEY_NOT_STORED)
            return
        await ack(response_action="update", view=connected_view(projects))
        if view.get("private_metadata") == FROM_HOME:
            await home.publish_home(self._runtime, team, user)  # now says the key is connected

    @staticmethod
    async def _refuse(ack: AsyncAck, text: str) -> None:
        await ack(response_action="errors", errors={BLOCK_ID: text})
