"""👍 / 👎 on an answer: tell CustomGPT, then show on the message what was recorded.

The buttons carry the project, conversation and message id themselves (see
`answer.feedback_value`), so a click needs no store look-up and survives any restart.
Clicking the recorded reaction again takes it back (`neutral`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from bot import messages
from bot.customgpt import CustomGPTClient, CustomGPTError
from bot.slack_format import feedback_block

log = logging.getLogger(__name__)

ACTIONS = {"feedback_liked": "liked", "feedback_disliked": "disliked"}


@dataclass(frozen=True)
class FeedbackTarget:
    project_id: str
    session_id: str
    message_id: str | None


def parse_value(value: str) -> FeedbackTarget | None:
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or not data.get("p") or not data.get("s"):
        return None
    message_id = data.get("m")
    return FeedbackTarget(
        str(data["p"]), str(data["s"]), None if message_id is None else str(message_id)
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
    customgpt: CustomGPTClient, action_id: str, value: str, blocks: list[dict[str, Any]]
) -> FeedbackOutcome:
    reaction = ACTIONS.get(action_id)
    target = parse_value(value)
    if reaction is None or target is None:
        return FeedbackOutcome(note=messages.FEEDBACK_UNREADABLE)
    if target.message_id is None:
        return FeedbackOutcome(note=messages.FEEDBACK_NO_MESSAGE_ID)
    current = selected_reaction(blocks)
    new = "neutral" if current == reaction else reaction
    try:
        await customgpt.feedback(target.project_id, target.session_id, target.message_id, new)
    except CustomGPTError as error:
        log.warning("feedback not recorded: %s %s", type(error).__name__, error.status)
        return FeedbackOutcome(note=messages.feedback_failed(error))
    return FeedbackOutcome(blocks=with_selection(blocks, value, None if new == "neutral" else new))
