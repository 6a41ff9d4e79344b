"""👍 / 👎 on an answer: tell CustomGPT, then show on the message what was recorded.

The buttons carry the project, conversation and message id themselves (see
`answer.feedback_value`), so a click needs no store look-up and survives any restart.
Clicking the recorded reaction again takes it back (`neutral`).

The buttons are on a message everyone in the channel sees, but what CustomGPT records is the
asker's verdict: they also carry who asked, and anybody else's click only earns a note.
Buttons posted before they carried it accept any click, as they always did. (Why these are
not Slack's native `feedback_buttons`: see `slack_format.feedback_block`.)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from bot import messages
from bot.customgpt import CustomGPTError
from bot.customgpt_keys import CustomGPTKeys, NoKey
from bot.slack_format import feedback_block
from bot.store import StoreUnavailable

log = logging.getLogger(__name__)

ACTIONS = {"feedback_liked": "liked", "feedback_disliked": "disliked"}


@dataclass(frozen=True)
class FeedbackTarget:
    project_id: str
    session_id: str
    message_id: str | None
    asker: str | None = None  # None on buttons posted before they named the asker

    def may_rate(self, user: str) -> bool:
        return self.asker is None or self.asker == user


def parse_value(value: str) -> FeedbackTarget | None:
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or not data.get("p") or not data.get("s"):
        return None
    message_id, asker = data.get("m"), data.get("u")
    return FeedbackTarget(
        str(data["p"]),
        str(data["s"]),
        None if message_id is None else str(message_id),
        str(asker) if asker else None,
    )


def selected_reaction(blocks: list[dict[str, Any]]) -> str | None:
    """The reaction the message currently shows as recorded."""
    for block in blocks:
        if block.get("block_id") != "feedback":
            continue
        for element in block.get("elements", []):
            if element.get("style") == "primary":
                return ACTIONS.get(str(element.get("action_id")))
    return None


def with_selection(
    blocks: list[dict[str, Any]], value: str, selected: str | None
) -> list[dict[str, Any]]:
    """The message's blocks with the feedback buttons showing `selected`."""
    return [
        feedback_block(value, selected) if block.get("block_id") == "feedback" else block
        for block in blocks
    ]


@dataclass(frozen=True)
class FeedbackOutcome:
    """What to do with the message: new blocks to show, or a note for the clicker alone."""

    blocks: list[dict[str, Any]] | None = None
    note: str | None = None


async def record(
    customgpt_keys: CustomGPTKeys,
    team: str,
    action_id: str,
    value: str,
    blocks: list[dict[str, Any]],
    clicker: str,
) -> FeedbackOutcome:
    """Record `clicker`'s click on an answer's buttons (`blocks`: the message as it is),
    with the workspace's CustomGPT key (the answer came from its account)."""
    reaction = ACTIONS.get(action_id)
    target = parse_value(value)
    if reaction is None or target is None:
        return FeedbackOutcome(note=messages.FEEDBACK_UNREADABLE)
    if not target.may_rate(clicker):
        return FeedbackOutcome(note=messages.FEEDBACK_NOT_YOURS)
    if target.message_id is None:
        return FeedbackOutcome(note=messages.FEEDBACK_NO_MESSAGE_ID)
    current = selected_reaction(blocks)
    new = "neutral" if current == reaction else reaction
    try:
        customgpt = await customgpt_keys.client_for(team)
    except NoKey:
        return FeedbackOutcome(note=messages.FEEDBACK_NO_KEY)
    except StoreUnavailable as error:
        log.warning("feedback not recorded: store unreachable: %s", error)
        return FeedbackOutcome(note=messages.FEEDBACK_STORE_DOWN)
    try:
        await customgpt.feedback(target.project_id, target.session_id, target.message_id, new)
    except CustomGPTError as error:
        log.warning("feedback not recorded: %s %s", type(error).__name__, error.status)
        return FeedbackOutcome(note=messages.feedback_failed(error))
    return FeedbackOutcome(blocks=with_selection(blocks, value, None if new == "neutral" else new))
