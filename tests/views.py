"""How a person sees the messages the fake Slack holds."""

from __future__ import annotations

from typing import Any

from tests.fakes.slack import FakeMessage


def visible(text: str, blocks: list[dict[str, Any]] | None) -> str:
    """What a user reads: the section blocks when there are any, else the text."""
    sections = [b["text"]["text"] for b in blocks or [] if b.get("type") == "section"]
    return "\n".join(sections) if sections else text


def shown(message: FakeMessage) -> list[str]:
    """Every version of the message as a user saw it, placeholder first."""
    return [visible(text, blocks) for text, blocks in message.edits]


def final_text(message: FakeMessage) -> str:
    return visible(message.text, message.blocks)
